"""``toolformer serve``: the real ``openai`` client against the server on 127.0.0.1 (a free port,
uvicorn in a thread), on a tiny random model scripted to call ``Calculator(3*4)`` after ':'."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from conftest import make_tiny_model
from test_generation import CALC_CALL, Calc, ScriptedLlama, chain, sharpen

from toolformer.generation import GenerationConfig, ToolGenerator
from toolformer.serve import create_app, serve_in_thread
from toolformer.tools.base import Tool
from toolformer.tools.executor import ToolExecutor

MODEL = "tiny-calc"


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def scripted_model(smol_tokenizer):
    base = make_tiny_model(len(smol_tokenizer), seed=3)
    model = ScriptedLlama(base.config)
    model.load_state_dict(base.state_dict())
    sharpen(model).eval()
    model.set_script(chain(smol_tokenizer, *CALC_CALL) + chain(smol_tokenizer, "]", " so", " that"))
    return model


def _generator(model, tok, tools, **executor_kw):
    config = GenerationConfig(max_new_tokens=16)
    return ToolGenerator(model, tok, ToolExecutor(tools, **executor_kw), config)


@pytest.fixture(scope="module")
def server(scripted_model, smol_tokenizer):
    """``(base_url, app)`` of a server with plain ``Q:``/``A:`` chat turns (as the adapter)."""
    gen = _generator(scripted_model, smol_tokenizer, [Calc()])
    app = create_app(gen, MODEL, roles=("Q", "A"), batch_wait_ms=20)
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="none", max_retries=0, timeout=60)


def _health(server):
    return httpx.get(server[0] + "/health").json()


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    assert _health(server)["status"] == "ok"


def test_chat_runs_the_call_on_the_server_and_reports_it(client):
    r = client.chat.completions.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "What is 3 times 4?"}]
    )
    msg = r.choices[0].message
    assert "[Calculator(3*4) -> 12]" in msg.content
    calls = msg.toolformer_calls  # the documented extension field
    assert len(calls) == 1 and calls[0]["tool"] == "Calculator" and calls[0]["result"] == "12"
    assert calls[0]["error"] is None
    assert msg.content[calls[0]["start"] : calls[0]["end"]] == "[Calculator(3*4) -> 12]"
    assert r.usage.completion_tokens <= 16 and r.usage.prompt_tokens > 0
    assert r.choices[0].finish_reason in ("stop", "length")


def test_chat_stream_adds_up_to_the_same_answer(client):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 3 times 4?"},
    ]
    whole = client.chat.completions.create(model=MODEL, max_tokens=16, messages=messages)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            max_tokens=16,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    streamed = [
        call
        for c in chunks
        if c.choices
        for call in (c.choices[0].delta.model_extra or {}).get("toolformer_calls", [])
    ]
    assert streamed == whole.choices[0].message.toolformer_calls
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[
        0
    ].finish_reason
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_completions_with_several_prompts_stream_and_not(client):
    prompts = ["Compute:", "Hello there", "Q: 3 by 4?\nA:"]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=12)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert "[Calculator(3*4)" in r.choices[0].text and "-> 12" in r.choices[0].text
    assert r.choices[0].toolformer_calls[0]["result"] == "12"
    texts = {i: "" for i in range(3)}
    for chunk in client.completions.create(model=MODEL, prompt=prompts, max_tokens=12, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert [texts[i] for i in range(3)] == [c.text for c in r.choices]


def test_decoding_settings_reach_the_engine(client):
    r = client.completions.create(model=MODEL, prompt="Hello there", max_tokens=3)
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    full = client.completions.create(model=MODEL, prompt="Compute:", max_tokens=16).choices[0].text
    cut = client.completions.create(
        model=MODEL, prompt="Compute:", max_tokens=16, stop=[" so", "->"]
    )
    # stop strings are searched outside calls: "->" inside the call does not stop it
    assert cut.choices[0].text == full[: full.index(" so")] and "-> 12]" in cut.choices[0].text
    sampled = [
        client.completions.create(
            model=MODEL, prompt="Hello", max_tokens=8, temperature=1.0, top_p=0.9, seed=7
        )
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]  # a seed makes sampling repeatable


def test_concurrent_requests_are_batched_and_never_mixed(client, server):
    prompts = [
        f"Note {i}: the word is {w}."
        for i, w in enumerate(["apple", "river", "stone", "cloud", "lamp", "tiger", "mint", "jazz"])
    ]
    alone = [
        client.completions.create(model=MODEL, prompt=p, max_tokens=10).choices[0].text
        for p in prompts
    ]
    before = _health(server)["batching"]["batches"]
    barrier = threading.Barrier(len(prompts))

    def ask(p):
        barrier.wait()
        return client.completions.create(model=MODEL, prompt=p, max_tokens=10).choices[0].text

    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(ask, prompts))
    assert together == alone
    batching = _health(server)["batching"]
    assert batching["max_batch_seen"] > 1 and batching["batches"] - before < len(prompts)


# --------------------------------------------------------------------------- bad input


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"]
    return body


def test_bad_input_gets_an_openai_error_and_the_server_keeps_serving(client, server):
    url = server[0]
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    broken = httpx.post(
        url + "/v1/chat/completions",
        content=b'{"model": "x", "mess',
        headers={"content-type": "application/json"},
    )
    assert _error(broken, 400)["code"] == "json_invalid"
    assert (
        _error(httpx.post(url + "/v1/chat/completions", json={**chat, "model": "gpt-4"}), 404)[
            "param"
        ]
        == "model"
    )
    assert (
        _error(httpx.post(url + "/v1/chat/completions", json={**chat, "messages": []}), 400)[
            "param"
        ]
        == "messages"
    )
    assert (
        _error(httpx.post(url + "/v1/chat/completions", json={**chat, "max_tokens": -5}), 400)[
            "param"
        ]
        == "max_tokens"
    )
    assert (
        _error(httpx.post(url + "/v1/chat/completions", json={**chat, "max_tokens": 10**9}), 400)[
            "param"
        ]
        == "max_tokens"
    )
    long = {"model": MODEL, "prompt": "word " * 1100, "max_tokens": 8}
    assert (
        _error(httpx.post(url + "/v1/completions", json=long), 400)["code"]
        == "context_length_exceeded"
    )
    last = {**chat, "messages": [{"role": "assistant", "content": "hi"}]}
    assert _error(httpx.post(url + "/v1/chat/completions", json=last), 400)["param"] == "messages"
    empty = {**chat, "messages": [{"role": "user"}]}  # no content: nothing to answer
    assert _error(httpx.post(url + "/v1/chat/completions", json=empty), 400)["param"] == "messages"
    no_prompt = httpx.post(url + "/v1/completions", json={"model": MODEL})
    assert _error(no_prompt, 400)["param"] == "prompt"
    _error(httpx.post(url + "/v1/completions", json=[1, 2]), 400)
    _error(httpx.get(url + "/v1/nothing"), 404)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=chat["messages"])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    assert client.completions.create(model=MODEL, prompt="Compute:", max_tokens=8).choices[0].text


def test_finished_requests_are_not_counted_as_cancelled_batches(client, server):
    before = _health(server)["batching"].get("cancelled_batches", 0)
    for _ in range(3):
        client.completions.create(model=MODEL, prompt="Compute:", max_tokens=4)
    assert _health(server)["batching"].get("cancelled_batches", 0) == before


def test_a_client_that_disconnects_mid_stream_cancels_its_request(client, server):
    url = server[0]
    before = _health(server)["stats"].get("cancelled_requests", 0)
    body = {"model": MODEL, "prompt": "Hello there", "max_tokens": 900, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk read, then the connection closes
    deadline = time.monotonic() + 20
    while _health(server)["stats"].get("cancelled_requests", 0) == before:
        assert time.monotonic() < deadline, "the stream was not cancelled"
        time.sleep(0.05)
    assert client.completions.create(model=MODEL, prompt="Compute:", max_tokens=8).choices[0].text


# --------------------------------------------------------------------------- tool faults


class Broken(Tool):
    name = "Calculator"
    description = "always fails"

    def run(self, args, context=None):
        raise RuntimeError("the calculator is on fire")


class Hanging(Tool):
    name = "Calculator"
    description = "never answers in time"

    def run(self, args, context=None):
        time.sleep(3)
        return "12"


@pytest.mark.parametrize("tool, error", [(Broken, "on fire"), (Hanging, "timed out")])
def test_a_tool_that_fails_or_hangs_is_a_counted_tool_error(
    scripted_model, smol_tokenizer, tool, error
):
    gen = _generator(scripted_model, smol_tokenizer, [tool()], timeout=0.3)
    gen.config = GenerationConfig(max_new_tokens=16, constrained=False)
    with serve_in_thread(create_app(gen, MODEL)) as url:
        r = httpx.post(
            url + "/v1/completions",
            timeout=30,
            json={"model": MODEL, "prompt": "Compute:", "max_tokens": 16},
        )
        assert r.status_code == 200, r.text
        call = r.json()["choices"][0]["toolformer_calls"][0]
        assert call["result"] is None and error in call["error"]
        health = httpx.get(url + "/health").json()
        assert health["stats"]["tool_errors"] == 1 and health["executor"]["failed"] == 1
        assert r.json()["toolformer"]["tool_errors"] == 1


# --------------------------------------------------------------------------- the command


def test_serve_command_builds_the_app_as_generate_builds_its_generator(
    scripted_model, smol_tokenizer, monkeypatch, tmp_path
):
    """`toolformer serve` loads like `generate`, takes the manifest's chat roles and tools, and
    hands uvicorn the app on a socket bound before the model loads."""
    import uvicorn
    from click.testing import CliRunner

    from toolformer.cli import generate_cmd
    from toolformer.cli.main import cli
    from toolformer.tools import base as tool_base

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "toolformer.json").write_text(
        json.dumps(
            {
                "base_model": "smollm2-135m",
                "tools": ["TestCalculator"],
                "chat_roles": {"user": "Q", "assistant": "A"},
            }
        )
    )
    monkeypatch.setitem(tool_base.TOOLS, "TestCalculator", Calc)
    monkeypatch.setattr(generate_cmd, "load", lambda *a, **k: (scripted_model, smol_tokenizer))
    seen = {}

    def fake_run(self, sockets=None):
        seen["app"], seen["port"] = self.config.app, sockets[0].getsockname()[1]
        sockets[0].close()

    real_run = uvicorn.Server.run
    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            str(folder),
            "--port",
            "0",
            "--served-name",
            "calc",
            "--tool-timeout",
            "2",
            "--max-new-tokens",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"on http://127.0.0.1:{seen['port']}/v1" in result.output
    state = seen["app"].state.toolformer
    assert state.model_id == "calc" and state.roles == ("Q", "A")
    executor = state.generator.executor
    assert executor.timeout == 2 and list(executor.tools) == ["Calculator"]
    monkeypatch.setattr(uvicorn.Server, "run", real_run)
    with serve_in_thread(seen["app"]) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        r = client.chat.completions.create(
            model="calc", messages=[{"role": "user", "content": "What is 3 times 4?"}]
        )
        assert r.choices[0].message.toolformer_calls[0]["result"] == "12"


@pytest.mark.slow
def test_the_shipped_adapter_answers_a_word_problem_through_the_openai_client():
    from toolformer.cli.generate_cmd import build_generator
    from toolformer.models import manifest_chat_roles

    name = "smollm2-135m-calculator"
    opts = dict(
        max_new_tokens=48,
        do_sample=False,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=None,
        call_top_k=10,
        max_calls=1,
        max_call_tokens=64,
        constrained=True,
        tool_names=None,
        no_tools=False,
        date=None,
        dtype="fp32",
        device=None,
        threads=None,
        stop_strings=(),
    )
    gen, names, context = build_generator(name, opts)
    app = create_app(gen, name, roles=manifest_chat_roles(name), context=lambda: context)
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)
        r = client.chat.completions.create(
            model=name,
            messages=[
                {
                    "role": "user",
                    "content": (
                        "A baker made 24 muffins and sold 9 of them. How many muffins are left?"
                    ),
                }
            ],
        )
    msg = r.choices[0].message
    calls = msg.toolformer_calls
    assert names == ["Calculator"] and calls, msg.content
    assert calls[0]["tool"] == "Calculator" and calls[0]["error"] is None and calls[0]["result"]
    assert f"-> {calls[0]['result']}]" in msg.content


def test_serve_without_fastapi_says_how_to_install_it(monkeypatch):
    import sys

    from click.testing import CliRunner

    from toolformer.cli.main import cli

    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(cli, ["serve", "smollm2-135m"])
    assert result.exit_code != 0 and "[serve]" in str(result.exception)
