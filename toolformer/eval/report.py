"""Reports of evaluation runs: ``results.json``, ``report.md``, terminal tables, a PNG chart.

A run folder holds ``results.json`` (see :func:`toolformer.eval.harness.evaluate`) and
``samples/<task>.jsonl``. :func:`when_table` and :func:`confusion_table` say when and which
tool the model called. :func:`comparison_table` puts several runs side by side (rows = tasks,
columns = runs); :func:`bar_chart` draws the same as grouped bars.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from toolformer.atomic import atomic_write_text
from toolformer.errors import UserError
from toolformer.eval.metrics import GENERATE_UNTIL, METRICS, NO_TOOL, MetricSpec

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"


def default_label(model: str, tools_enabled: bool = True) -> str:
    """A short run label: the model's last path part, with ``(no tools)`` when disabled."""
    base = Path(str(model).rstrip("/")).name or str(model)
    return base if tools_enabled else f"{base} (no tools)"


def write_results(results: Dict[str, Any], out_dir: Union[str, Path]) -> Path:
    """Write ``results.json`` into ``out_dir``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    atomic_write_text(path, json.dumps(results, indent=2, ensure_ascii=False, default=str))
    (out / REPORT_FILE).write_text(markdown_report(results), encoding="utf-8")
    return path


def load_run(path: Union[str, Path]) -> Dict[str, Any]:
    """A run's results from its folder (or from a ``results.json`` path)."""
    p = Path(path)
    file = p / RESULTS_FILE if p.is_dir() else p
    if not file.is_file():
        raise UserError(
            f"no {RESULTS_FILE} in {p}; pass the EvalConfig.output_dir folder of an eval run",
            field="EvalConfig.output_dir",
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))  # a BOM is no error
    except json.JSONDecodeError as exc:
        raise UserError(f"{file} is not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{file} is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte "
            f"{exc.start}); convert it to UTF-8"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise UserError(f"{file} is not an eval results file (no 'tasks')")
    data.setdefault(
        "name", default_label(data.get("model", p.name), data.get("tools_enabled", True))
    )
    data["_path"] = str(p)
    return data


def run_labels(runs: Sequence[Dict[str, Any]]) -> List[str]:
    """Column labels: each run's name, with its folder added where two names collide."""
    names = [str(r.get("name") or r.get("model") or f"run{i}") for i, r in enumerate(runs)]
    out = []
    for i, n in enumerate(names):
        if names.count(n) > 1:
            n = f"{n} [{Path(runs[i].get('_path', str(i))).name or i}]"
        out.append(n)
    return out


def metric_of(task: Dict[str, Any]) -> MetricSpec:
    """The registered spec of a task result's metric; for a metric not registered here (a
    plugin's, in someone else's results file) a spec built from the result itself."""
    name = str(task.get("metric", "?"))
    spec = METRICS.get(name, None)
    if spec is not None:
        return spec
    higher = not task.get("lower_is_better", False)
    return MetricSpec(name, higher_is_better=higher, percent=higher)


def format_score(task: Dict[str, Any]) -> str:
    """The score as its metric shows it: accuracy in percent with one decimal, perplexity with
    two decimals."""
    return metric_of(task).format(task["score"])


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def summary_rows(results: Dict[str, Any]) -> Tuple[List[str], List[List[str]], str]:
    """``(header, rows, note)`` of :func:`summary_table`."""
    header = ["task", "metric", "score", "n", "calls%", "failed", "tools", "tokens", "seconds"]
    rows = []
    for name, t in results["tasks"].items():
        tools = ",".join(f"{k}:{v}" for k, v in (t.get("tool_counts") or {}).items()) or "-"
        rows.append(
            [
                name,
                t.get("metric", "?"),
                format_score(t),
                str(t.get("n", "")),
                f"{100 * t.get('tool_call_rate', 0.0):.0f}",
                str(t.get("failed_calls", 0)),
                tools,
                f"{t.get('mean_output_tokens', 0.0):.1f}",
                f"{t.get('seconds', 0.0):.1f}",
            ]
        )
    note = "scores: accuracy in % (lenient, zero-shot); perplexity: lower is better"
    voted = {n: t["voting"] for n, t in results["tasks"].items() if t.get("voting")}
    if voted:  # another protocol than the paper's one greedy output: say so under the table
        k = max(v["k"] for v in voted.values())
        each = ", ".join(
            f"{n} pass@{v['k']} {100 * v['pass_at_k']:.1f}% agreement "
            f"{100 * v['mean_agreement']:.0f}%"
            for n, v in voted.items()
        )
        note += (
            f"\nvoted: each score is the majority answer of {k} sampled outputs per question "
            f"(self-consistency), not one greedy output; {each}; tokens and seconds are the "
            f"{k} outputs' sums, calls those of the output whose answer won"
        )
    return header, rows, note


def summary_table(results: Dict[str, Any]) -> str:
    """One run: per task the score, n, tool use, failures, output length and time."""
    header, rows, note = summary_rows(results)
    return _table(header, rows) + "\n" + note


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _acc(cell: Optional[Dict[str, Any]]) -> str:
    if not cell or not cell.get("n"):
        return "- (0)"
    return f"{_pct(cell.get('accuracy'))} ({cell['n']})"


def when_rows(results: Dict[str, Any]) -> Tuple[List[str], List[List[str]], str]:
    """``(header, rows, note)`` of :func:`when_table`; no rows for a run without call
    statistics (no generating task, or a results file from before them)."""
    rows = []
    for name, t in results["tasks"].items():
        w = t.get("when")
        if not w:
            continue
        rows.append(
            [
                name,
                ",".join(w["expected_tools"]) or "none",
                _pct(w["call_rate"]),
                str(w["calls"]),
                _pct(w["precision"]),
                _pct(w["recall"]),
                _acc(w.get("called")),
                _acc(w.get("not_called")),
                ",".join(f"{k}:{v}" for k, v in w["failed_calls_by_tool"].items()) or "0",
            ]
        )
    header = [
        "task",
        "expected",
        "calls%",
        "calls",
        "prec%",
        "recall%",
        "acc called (n)",
        "acc not called (n)",
        "failed",
    ]
    note = (
        "prec: calls of a fitting tool / all calls; recall: examples with a call of a "
        "fitting tool / examples (- where no tool fits)"
    )
    return header, rows, note


def when_table(results: Dict[str, Any]) -> str:
    """One run, per generating task: the tools that fit it, the call rate, call precision and
    recall, accuracy with / without a call (the paper's Table 9) and failed calls; empty text
    when no task has call statistics."""
    header, rows, note = when_rows(results)
    return _table(header, rows) + "\n" + note if rows else ""


def confusion_rows(confusion: Dict[str, Dict[str, int]]) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)`` of a confusion table: rows = expected tools, columns = called tools,
    ``none`` last on both axes."""

    def order(names: Sequence[str]) -> List[str]:
        return sorted(n for n in set(names) if n != NO_TOOL) + (
            [NO_TOOL] if NO_TOOL in names else []
        )

    expected = order(list(confusion))
    called = order([c for row in confusion.values() for c in row] + [NO_TOOL])
    rows = [[e] + [str(confusion[e].get(c, 0)) for c in called] for e in expected]
    return ["expected \\ called", *called], rows


def confusion_parts(results: Dict[str, Any]) -> Tuple[List[str], List[List[str]], str]:
    """``(header, rows, note)`` of :func:`confusion_table`; no rows without call statistics."""
    when = results.get("when")
    if not when or not when.get("confusion"):
        return [], [], ""
    header, rows = confusion_rows(when["confusion"])
    note = (
        f"cells: examples (one that called a tool counts under it, one without a call "
        f"under none); calls: {when['calls']}, to a fitting tool: {when['expected_calls']}"
        f" (precision {_pct(when['precision'])}%)"
    )
    return header, rows, note


def confusion_table(results: Dict[str, Any]) -> str:
    """The run's confusion table (summed over tasks; rows: expected tools, columns: called
    tools; cells count examples) with its call precision; empty text without statistics."""
    header, rows, note = confusion_parts(results)
    return _table(header, rows) + "\n" + note if rows else ""


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def markdown_report(results: Dict[str, Any]) -> str:
    """The run as Markdown: scores, when and which tool per task, the confusion table."""
    parts = [
        f"# {results.get('name', 'eval')}",
        "",
        f"model: `{results.get('model')}`, tools: {', '.join(results.get('tools') or [])}"
        f", limit: {results.get('limit')}, seed: {results.get('seed')}",
        "",
    ]
    for title, (header, rows, note) in (
        ("Scores", summary_rows(results)),
        ("When and which tool", when_rows(results)),
        ("Confusion (expected x called)", confusion_parts(results)),
    ):
        if rows:
            parts += [f"## {title}", "", _md_table(header, rows), "", note, ""]
    return "\n".join(parts)


def comparison_table(runs: Sequence[Dict[str, Any]], show_calls: bool = True) -> str:
    """Rows = tasks (in first-seen order), columns = runs; a cell is ``score`` (with the share of
    examples that called a tool when ``show_calls``); ``-`` where a run lacks the task."""
    if not runs:
        raise UserError("nothing to compare: pass one or more run folders")
    labels = run_labels(runs)
    tasks: List[str] = []
    for r in runs:
        tasks.extend(t for t in r["tasks"] if t not in tasks)
    rows = []
    for t in tasks:
        first = next(r["tasks"][t] for r in runs if t in r["tasks"])
        metric = metric_of(first)
        cells = [t, first.get("metric", "?")]
        for r in runs:
            res = r["tasks"].get(t)
            if res is None:
                cells.append("-")
            elif show_calls and metric.output_type == GENERATE_UNTIL:  # tools act in generation
                calls = 100 * res.get("tool_call_rate", 0)
                cells.append(f"{format_score(res)} ({calls:.0f}% calls, n={res.get('n')})")
            else:
                cells.append(format_score(res))
        rows.append(cells)
    note = "cells: accuracy % (share of examples with a tool call, n); perplexity: lower is better"
    return _table(["task", "metric", *labels], rows) + "\n" + note


def when_comparison_table(runs: Sequence[Dict[str, Any]]) -> str:
    """Rows = generating tasks, columns = runs; a cell is ``call rate / precision / recall`` in
    percent (``-`` where undefined or the run lacks the task); empty text when no run has call
    statistics."""
    labels = run_labels(runs)
    tasks: List[str] = []
    for r in runs:
        tasks.extend(t for t, res in r["tasks"].items() if res.get("when") and t not in tasks)
    rows = []
    for t in tasks:
        cells = [t]
        for r in runs:
            w = (r["tasks"].get(t) or {}).get("when")
            cells.append(
                "-"
                if not w
                else f"{_pct(w['call_rate'])} / {_pct(w['precision'])} / {_pct(w['recall'])}"
            )
        rows.append(cells)
    if not rows:
        return ""
    note = "cells: call rate / call precision / call recall, in % (- where undefined)"
    return _table(["task", *labels], rows) + "\n" + note


def bar_chart(
    runs: Sequence[Dict[str, Any]], path: Union[str, Path], title: Optional[str] = None
) -> Path:
    """A grouped bar chart (tasks on x, one bar per run) written as PNG to ``path``.

    Accuracy tasks share one panel (percent); perplexity tasks, if any, get a second panel
    (another metric shown as a plain value: one panel each).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise UserError("nothing to plot: pass one or more run folders")
    labels = run_labels(runs)
    tasks: List[str] = []
    for r in runs:
        tasks.extend(t for t in r["tasks"] if t not in tasks)
    metric = {t: metric_of(next(r["tasks"][t] for r in runs if t in r["tasks"])) for t in tasks}
    # accuracy-like metrics share a percent panel; every other metric gets a panel of its own
    groups = [("accuracy (%)", [t for t in tasks if metric[t].percent], 100.0)]
    for name in dict.fromkeys(m.name for m in metric.values() if not m.percent):
        way = (
            "higher"
            if next(m for m in metric.values() if m.name == name).higher_is_better
            else "lower"
        )
        groups.append(
            (f"{name} ({way} is better)", [t for t in tasks if metric[t].name == name], 1.0)
        )
    groups = [g for g in groups if g[1]]
    widths = [max(2, len(g[1])) for g in groups]
    size = (min(20.0, 2 + 0.6 * sum(widths) * len(runs) ** 0.5), 4.5)
    fig, axes = plt.subplots(
        1, len(groups), figsize=size, gridspec_kw={"width_ratios": widths}, squeeze=False
    )
    width = 0.8 / len(runs)
    for ax, (ylabel, names, scale) in zip(axes[0], groups):
        for j, (run, label) in enumerate(zip(runs, labels)):
            xs = [i + (j - (len(runs) - 1) / 2) * width for i in range(len(names))]
            ys = [run["tasks"][t]["score"] * scale if t in run["tasks"] else 0.0 for t in names]
            bars = ax.bar(xs, ys, width=width, label=label)
            for bar, t, y in zip(bars, names, ys):
                if t in run["tasks"]:
                    ax.annotate(
                        f"{y:.1f}",
                        (bar.get_x() + bar.get_width() / 2, y),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or "toolformer eval: " + " vs ".join(labels), fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
