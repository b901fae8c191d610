"""The executor: timeouts, caching, sanitising, failures as results, batching, counters."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.syntax import APICall, find_calls, format_call, parse_call
from toolformer.tools.base import Tool, ToolContext, ToolError, ToolInputError
from toolformer.tools.calculator import Calculator
from toolformer.tools.executor import DEFAULT_MAX_RESULT_CHARS, ToolExecutor, sanitize_result


class Counting(Tool):
    """Echoes its argument and counts how often it really ran."""

    name = "Counting"
    description = "Echo with a counter."

    def __init__(self, delay: float = 0.0):
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def run(self, args, context=None):
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return "echo " + self.parse_args(args)


class Hanging(Tool):
    name = "Hanging"
    description = "Never answers (until released)."

    def __init__(self):
        self.release = threading.Event()

    def run(self, args, context=None):
        self.release.wait()
        return "late"


class Raising(Tool):
    name = "Raising"
    description = "Fails in different ways."

    def run(self, args, context=None):
        if args == "input":
            raise ToolInputError("bad input for Raising")
        if args == "tool":
            raise ToolError("service down")
        if args == "bug":
            raise ValueError("line one\nline two")
        if args == "empty":
            return "   "
        if args == "none-message":
            raise ToolError()
        return self.parse_args(args)


class Dated(Tool):
    name = "Dated"
    description = "Depends on the document's date."
    uses_context = True

    def run(self, args, context=None):
        return str(context.date if context else None)


class Nasty(Tool):
    name = "Nasty"
    description = "Returns whatever it is asked to."

    def run(self, args, context=None):
        return NASTY_OUTPUTS[args]


NASTY_OUTPUTS = {
    "brackets": "see [1] and [Calculator(1+1) -> 2] -> done",
    "arrows": "a->b --> c ->-> d",
    "newlines": "line one\n\n  line two\tend",
    "long": "word " * 500,
    "backslash": "ends with a backslash \\",
    "escapes": "C:\\dir\\(x\\) and \\\\[y]",
    "number": 42,
}


@pytest.fixture
def hanging():
    tool = Hanging()
    yield tool
    tool.release.set()  # let the abandoned thread finish


# --------------------------------------------------------------------------- timeouts


def test_timeout_on_a_hanging_tool_returns_quickly(hanging):
    with ToolExecutor([hanging, Counting()], timeout=0.2) as ex:
        start = time.perf_counter()
        res = ex.run(("Hanging", "x"))
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0
        assert res.timed_out and not res.ok
        assert res.error == "Hanging timed out after 0.2s"
        assert ex.stats["timeouts"] == 1 and ex.stats["failed"] == 1
        # a timeout is not cached: the next call tries again
        again = ex.run(("Hanging", "x"))
        assert again.timed_out and not again.cached
        # other tools still work while the hung thread is abandoned
        assert ex.run(("Counting", "ok")).output == "echo ok"


def test_a_hanging_tool_does_not_block_process_exit():
    script = textwrap.dedent(
        """
        import time
        from toolformer.tools.base import Tool
        from toolformer.tools.executor import ToolExecutor

        class Forever(Tool):
            name = "Forever"
            description = "Sleeps forever."
            def run(self, args, context=None):
                while True:
                    time.sleep(1)

        ex = ToolExecutor([Forever()], timeout=0.2)
        print(ex.run(("Forever", "x")).error, flush=True)
        """
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Forever timed out after 0.2s"
    assert time.perf_counter() - start < 30


def test_no_timeout_runs_inline():
    tool = Counting()
    with ToolExecutor([tool], timeout=None) as ex:
        assert ex.run(("Counting", "a")).output == "echo a"


@pytest.mark.parametrize("timeout", [0, -1])
def test_bad_timeout(timeout):
    with pytest.raises(ValueError, match="timeout"):
        ToolExecutor([Counting()], timeout=timeout)


def test_non_tools_are_rejected():
    with pytest.raises(TypeError, match="Tool instances"):
        ToolExecutor([Counting])


# --------------------------------------------------------------------------- caching


def test_cache_hits_do_not_run_the_tool_again():
    tool = Counting()
    with ToolExecutor({"Counting": tool}) as ex:
        first = ex.run(APICall("Counting", "a"))
        second = ex.run(("counting", "  a "))  # case-insensitive name, stripped args
        assert tool.calls == 1
        assert not first.cached and second.cached
        assert second.output == first.output == "echo a" and second.seconds == 0.0
        assert second.args == "  a " and second.tool == "Counting"
        assert ex.stats["calls"] == 2 and ex.stats["cached"] == 1 and ex.stats["executed"] == 1


def test_cache_is_lru_and_bounded():
    tool = Counting()
    with ToolExecutor([tool], cache_size=2) as ex:
        for args in ("a", "b", "a", "c", "a", "b"):
            ex.run(("Counting", args))
    # a, b, (a hit), c evicts b, (a hit), b again
    assert tool.calls == 4


def test_cache_can_be_disabled_and_cleared():
    tool = Counting()
    with ToolExecutor([tool], cache_size=0) as ex:
        ex.run(("Counting", "a"))
        ex.run(("Counting", "a"))
    assert tool.calls == 2
    tool = Counting()
    with ToolExecutor([tool]) as ex:
        ex.run(("Counting", "a"))
        ex.clear_cache()
        ex.run(("Counting", "a"))
    assert tool.calls == 2


def test_context_is_part_of_the_key_only_for_tools_that_use_it():
    counting = Counting()
    with ToolExecutor([counting, Dated()]) as ex:
        d1, d2 = ToolContext(dt.date(2023, 1, 30)), ToolContext(dt.date(2024, 1, 1))
        assert ex.run(("Dated", ""), d1).output == "2023-01-30"
        assert ex.run(("Dated", ""), d2).output == "2024-01-01"
        assert ex.run(("Dated", ""), d1).cached
        ex.run(("Counting", "x"), d1)
        assert ex.run(("Counting", "x"), d2).cached
    assert counting.calls == 1


def test_failures_are_cached_and_counted():
    with ToolExecutor([Raising()]) as ex:
        ex.run(("Raising", "tool"))
        hit = ex.run(("Raising", "tool"))
        assert hit.cached and hit.error == "service down"
        assert ex.stats["failed"] == 2


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "args, error",
    [
        ("input", "bad input for Raising"),
        ("tool", "service down"),
        ("bug", "Raising failed: ValueError: line one line two"),
        ("empty", "Raising returned an empty result"),
        ("none-message", "ToolError"),
        ("", "Raising needs an argument"),
    ],
)
def test_exceptions_become_error_results(args, error):
    with ToolExecutor([Raising()]) as ex:
        res = ex.run(("Raising", args))
    assert not res.ok and res.output is None
    assert res.error.startswith(error) and "\n" not in res.error


def test_unknown_tool_is_a_result_not_an_exception():
    with ToolExecutor([Calculator()]) as ex:
        res = ex.run(("Calculater", "1+1"))
        assert not res.ok
        assert (
            res.error
            == "unknown tool 'Calculater'. Did you mean 'Calculator'? Known tools: Calculator."
        )
        assert ex.stats["unknown_tool"] == 1 and ex.stats["failed"] == 1


def test_resolve():
    with ToolExecutor([Calculator()]) as ex:
        assert ex.resolve("CALCULATOR").name == "Calculator"
        with pytest.raises(KeyError):
            ex.resolve("QA")


# --------------------------------------------------------------------------- sanitising


@pytest.mark.parametrize("key", sorted(NASTY_OUTPUTS))
def test_outputs_are_sanitised(key):
    with ToolExecutor([Nasty()]) as ex:
        res = ex.run(("Nasty", key))
    assert res.ok
    out = res.output
    assert "[" not in out and "]" not in out and "->" not in out and "\n" not in out
    assert len(out) <= DEFAULT_MAX_RESULT_CHARS
    # the result can be written into a call raw (as generation does) and read back unchanged
    raw = "x [Nasty(" + key + ") -> " + out + "] y"
    assert [m.call for m in find_calls(raw)] == [APICall("Nasty", key, out)]
    assert format_call(APICall("Nasty", key, out)) == "[Nasty(" + key + ") -> " + out + "]"


def test_sanitise_examples():
    assert sanitize_result("see [1] -> done") == "see (1) - done"
    assert sanitize_result("a\n\n b\t c") == "a b c"
    assert sanitize_result(" x ") == "x"
    assert sanitize_result(3.5) == "3.5"
    capped = sanitize_result("word " * 100, max_chars=50)
    assert len(capped) <= 50 and capped.endswith("…") and capped.startswith("word word")
    assert sanitize_result("x" * 100, max_chars=10) == "x" * 9 + "…"
    assert sanitize_result("0\r\\", max_chars=3) == "0"  # hypothesis found: "0 " before


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=2, max_value=120))
def test_sanitise_never_leaks_markers(text, max_chars):
    out = sanitize_result(text, max_chars)
    assert "[" not in out and "]" not in out and "->" not in out
    assert len(out) <= max_chars
    assert out == out.strip() and "\n" not in out
    call = APICall("T", "q", out)
    assert parse_call("[T(q) -> " + out + "]") == call
    assert format_call(call) == "[T(q) -> " + out + "]"


def test_result_cap_is_configurable():
    with ToolExecutor([Nasty()], max_result_chars=20) as ex:
        assert len(ex.run(("Nasty", "long")).output) <= 20


# --------------------------------------------------------------------------- batches


def test_run_many_dedups_and_keeps_order():
    tool = Counting()
    with ToolExecutor([tool]) as ex:
        calls = [
            ("Counting", "a"),
            APICall("Counting", "b"),
            ("counting", " a"),
            ("Counting", "a"),
            ("Nope", "a"),
        ]
        results = ex.run_many(calls)
    assert tool.calls == 2
    assert [r.output for r in results] == ["echo a", "echo b", "echo a", "echo a", None]
    assert [r.cached for r in results] == [False, False, True, True, False]
    assert [r.args for r in results] == ["a", "b", " a", "a", "a"]
    assert "unknown tool 'Nope'" in results[4].error
    assert ex.stats["calls"] == 5 and ex.stats["cached"] == 2 and ex.stats["executed"] == 2


def test_run_many_runs_independent_calls_in_parallel():
    tool = Counting(delay=0.3)
    with ToolExecutor([tool], max_workers=4) as ex:
        start = time.perf_counter()
        results = ex.run_many([("Counting", str(i)) for i in range(4)])
        elapsed = time.perf_counter() - start
    assert [r.output for r in results] == [f"echo {i}" for i in range(4)]
    assert elapsed < 0.9  # 4 x 0.3 s serially


def test_run_many_with_contexts():
    with ToolExecutor([Dated()]) as ex:
        d1, d2 = ToolContext(dt.date(2023, 1, 30)), ToolContext(dt.date(2024, 1, 1))
        out = ex.run_many([("Dated", ""), ("Dated", ""), ("Dated", "")], [d1, d2, d1])
        assert [r.output for r in out] == ["2023-01-30", "2024-01-01", "2023-01-30"]
        assert [r.cached for r in out] == [False, False, True]
        with pytest.raises(ValueError, match="differ in length"):
            ex.run_many([("Dated", "")], [d1, d2])


def test_run_many_with_a_hanging_call(hanging):
    with ToolExecutor([hanging, Counting()], timeout=0.2) as ex:
        start = time.perf_counter()
        out = ex.run_many([("Hanging", "x"), ("Counting", "y")])
        assert time.perf_counter() - start < 1.0
    assert out[0].timed_out and out[1].output == "echo y"


def test_stats_are_exact_under_concurrency():
    tool = Counting()
    with ToolExecutor([tool], max_workers=8) as ex:
        for _ in range(3):
            ex.run_many([("Counting", str(i)) for i in range(100)])
    assert tool.calls == 100
    assert ex.stats["calls"] == 300 and ex.stats["executed"] == 100 and ex.stats["cached"] == 200
    assert ex.stats["seconds"] > 0
