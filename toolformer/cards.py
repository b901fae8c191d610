"""Model cards: an adapter folder's ``README.md`` in the Hugging Face model-card format, written
from its manifest (``toolformer.json``), peft's ``adapter_config.json`` and evaluation results.

Results come from ``eval_results.json`` in the folder (several runs: ``{"runs": [{"name",
"tools_enabled", "tasks": {task: {"metric", "correct", "n", ...}}}], "protocol", "source",
"limitations"}``) or from ``toolformer eval`` run folders (``results.json``, one run each). An
accuracy's 95% interval is Wilson's, from ``correct`` and ``n``. Nothing is measured here: a
number the files do not hold is not in the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from toolformer.errors import UserError
from toolformer.manifest import read_manifest
from toolformer.selftrain.loop import wilson_interval

RESULTS_FILE = "eval_results.json"
CARD_FILE = "README.md"
# the Hugging Face model each offline alias was converted from (see toolformer.models.ALIASES)
HF_BASE = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gemma3-270m": "google/gemma-3-270m",
}

PathLike = Union[str, Path]


def load_results(paths: Sequence[PathLike]) -> Dict[str, Any]:
    """The runs of ``paths`` merged: each an ``eval_results.json``-style file, an eval run's
    ``results.json`` or its folder. Raises :class:`UserError` for a missing or unreadable file."""
    merged: Dict[str, Any] = {"runs": [], "protocol": [], "source": [], "limitations": []}
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "results.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(
                f"{path} does not exist; pass an eval run folder or a results file"
            ) from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable JSON results file ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("runs"), list):
            merged["runs"] += data["runs"]
            for key in ("protocol", "source"):
                if data.get(key):
                    merged[key].append(str(data[key]))
            merged["limitations"] += [str(x) for x in data.get("limitations") or []]
        elif isinstance(data, dict) and isinstance(data.get("tasks"), dict):  # toolformer eval
            merged["runs"].append(data)
            merged["source"].append(f"`toolformer eval` run: {path}")
        else:
            raise UserError(f"{path} holds no evaluation runs (expected 'runs' or 'tasks')")
    return merged


def _cell_score(task: Dict[str, Any]) -> Dict[str, str]:
    """Score, n and interval cells of one task result."""
    correct, n = task.get("correct"), task.get("n")
    if task.get("metric") == "perplexity":
        windows = task.get("windows")
        size = f"{windows} windows" if windows else (f"{n} tokens" if n else "—")
        return {"score": f"{float(task['score']):.2f} (perplexity)", "n": size, "ci": "—"}
    if isinstance(correct, int) and isinstance(n, int) and n > 0:
        lo, hi = wilson_interval(correct, n)
        return {
            "score": f"{100 * correct / n:.1f}%",
            "n": str(n),
            "ci": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        }
    if "score" in task:
        return {"score": f"{100 * float(task['score']):.1f}%", "n": str(n or "—"), "ci": "—"}
    return {"score": "—", "n": str(n or "—"), "ci": "—"}


def results_table(runs: Sequence[Dict[str, Any]]) -> str:
    """A Markdown table: model, task, score, n, 95% interval, share of outputs with a call."""
    lines = [
        "| model | task | score | n | 95% CI | outputs with a call |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        label = str(run.get("name") or run.get("model") or "?")
        for name, task in (run.get("tasks") or {}).items():
            cells = _cell_score(task)
            rate = task.get("tool_call_rate")
            calls = "—" if rate is None else f"{100 * float(rate):.0f}%"
            if task.get("failed_calls") is not None and task.get("calls"):
                ran = task["calls"] - task["failed_calls"]
                calls += f" ({ran} of {task['calls']} calls ran)"
            lines.append(
                f"| {label} | {name} | {cells['score']} | {cells['n']} | {cells['ci']} | {calls} |"
            )
    return "\n".join(lines)


def _front_matter(base: Optional[str], tools: List[str], license: str) -> str:
    tags = ["toolformer", "tool-use", "lora", "peft"] + [t.lower() for t in tools]
    lines = ["---"]
    if base:
        lines.append(f"base_model: {base}")
    lines += (
        ["library_name: peft", f"license: {license}", "pipeline_tag: text-generation", "tags:"]
        + [f"- {t}" for t in tags]
        + ["---"]
    )
    return "\n".join(lines)


def render_card(
    folder: PathLike, results: Optional[Dict[str, Any]] = None, license: str = "apache-2.0"
) -> str:
    """The card's Markdown for the adapter in ``folder`` (with ``results`` from
    :func:`load_results`, or none). Raises :class:`UserError` when ``folder`` has no manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise UserError(
            f"{folder} has no toolformer.json; write one (see toolformer/adapters/README.md)"
        )
    peft_cfg: Dict[str, Any] = {}
    if (folder / "adapter_config.json").exists():
        peft_cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    name = folder.resolve().name
    alias = str(manifest.get("base_model") or "")
    hf_base = HF_BASE.get(alias, alias or None)
    tools = [str(t) for t in manifest.get("tools") or []]
    # the tool options it was trained with (the CLI applies the safe ones from the manifest)
    options = {
        str(k): dict(v)
        for k, v in (manifest.get("tool_options") or {}).items()
        if isinstance(v, dict)
    }
    roles = manifest.get("chat_roles") or {}
    tool_list = ", ".join(tools) or "none"
    example = "[Calculator(24 - 9) -> 15]" if "Calculator" in tools else "[Tool(args) -> result]"

    out = [
        _front_matter(hf_base, tools, license),
        "",
        f"# {name}",
        "",
        f"A LoRA adapter for `{alias}`"
        + (f" ({hf_base})" if hf_base != alias else "")
        + f" that writes calls to its tools ({tool_list}) inline, as in Toolformer (Schick et "
        f"al. 2023): `{example}`. A runtime executes each call when the model writes `->` and "
        "inserts the result; the model then goes on writing.",
        "",
    ]

    out += ["## Training data and method", ""]
    facts = [
        ("corpus", manifest.get("corpus")),
        ("training texts", manifest.get("training_texts")),
        ("plain paragraphs mixed in (rehearsal)", manifest.get("plain_paragraphs")),
        ("filter", manifest.get("filter")),
        ("self-training round", manifest.get("selftrain_round")),
        (
            "tool options",
            json.dumps(manifest["tool_options"]) if manifest.get("tool_options") else None,
        ),
        ("chat turns", f"`{roles['user']}:` / `{roles['assistant']}:`" if roles else None),
        ("weights", manifest.get("weights_dtype")),
        ("reproduce", manifest.get("reproduce")),
    ]
    if peft_cfg:
        modules = ", ".join(sorted(peft_cfg.get("target_modules") or []))
        facts.append(
            (
                "LoRA",
                f"r = {peft_cfg.get('r')}, alpha = {peft_cfg.get('lora_alpha')}, "
                f"dropout = {peft_cfg.get('lora_dropout')}, on {modules} "
                f"(peft {peft_cfg.get('peft_version', '?')})",
            )
        )
    out += [f"- {k}: {v}" for k, v in facts if v not in (None, "", [])]
    out += [
        "",
        "Method: the model writes its own calls (constrained to each tool's argument "
        "grammar); outputs whose calls ran and that pass the filter are kept, and a LoRA "
        "adapter is fine-tuned on them (`toolformer selftrain`, `toolformer finetune`).",
        "",
    ]

    out += ["## Evaluation", ""]
    if results and results.get("runs"):
        out += [p for p in results.get("protocol", [])] + [""]
        out += [results_table(results["runs"]), ""]
        out += [f"Source: {s}" for s in results.get("source", [])] + [""]
    else:
        out += [
            "No evaluation results were given (`toolformer models card DIR --results EVAL_RUN`).",
            "",
        ]

    out += ["## Limitations", ""]
    out += [f"- {x}" for x in (results or {}).get("limitations", [])]
    out += [
        f"- It knows only these tools: {tool_list}. Plain `transformers` generation runs no "
        "tool: the model writes `[Tool(args) ->` and a runtime must insert the result "
        "(this project's `generate`, `chat`, `serve` or `ToolGenerator`).",
        f"- A small model ({alias}), trained on a narrow corpus; English only.",
    ]
    trigger = manifest.get("call_trigger")
    if isinstance(trigger, dict):
        out.append(
            f"- When it calls: a trigger calibrated on {trigger.get('n')} held-out items "
            f"(call_top_k {trigger.get('call_top_k')}, call_threshold "
            f"{trigger.get('call_threshold')}; call F1 {trigger.get('f1')}, the paper's "
            f"top-10 rule {trigger.get('paper_f1')}), stored in toolformer.json."
        )
    else:
        out.append(
            "- It has no calibrated call trigger: with the paper's top-10 rule it may call "
            "a tool on questions no tool helps."
        )
    if alias in HF_BASE:
        out.append(
            f"- It was trained on the weights of the `{alias}` alias ({hf_base} as a "
            "quantised GGUF file, dequantised); on the original weights its outputs "
            "can differ slightly."
        )
    out.append("")

    question = "A baker made 24 muffins and sold 9. How many are left?"
    turn = (
        f"{roles['user']}: {question}\\n{roles['assistant']}:"
        if roles
        else "The shop sold 12 boxes of 8 eggs, that is"
    )
    out += [
        "## How to load",
        "",
        "With this project (the tools run while the model writes):",
        "",
        "```bash",
        f"toolformer chat {name}",
        f"toolformer serve {name}   # OpenAI-compatible API",
        "```",
        "",
        "```python",
        "from toolformer import GenerationConfig, ToolGenerator, create_tools, load_model",
        "",
        f'model, tokenizer = load_model("{name}")  # or the folder\'s path',
        f"generator = ToolGenerator(model, tokenizer, create_tools({tools!r}, {options!r}),",
        "                          GenerationConfig(max_new_tokens=48))",
        f'print(generator.generate("{turn}")[0].text)',
        "```",
        "",
        "With peft alone (no tool runs: the model writes `[Tool(args) ->` and goes on "
        "without a result unless your code inserts one):",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'base = AutoModelForCausalLM.from_pretrained("{hf_base or "BASE_MODEL"}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{hf_base or "BASE_MODEL"}")',
        'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
        "```",
        "",
    ]
    if alias in HF_BASE:
        out += [
            f"For the exact base weights it was trained on, `toolformer models load {alias}` "
            f"converts them once into `~/.cache/toolformer/models/{alias}` (a transformers "
            "folder); load that folder instead of the Hugging Face id.",
            "",
        ]
    out += [
        "This card was written by `toolformer models card` from the folder's `toolformer.json`"
        + (
            f", `adapter_config.json` and `{RESULTS_FILE}`."
            if results
            else " and `adapter_config.json`."
        ),
        "",
    ]
    return "\n".join(out)


def write_card(
    folder: PathLike,
    results: Sequence[PathLike] = (),
    output: Optional[PathLike] = None,
    license: str = "apache-2.0",
) -> Path:
    """Write the card of the adapter in ``folder`` to ``output`` (default ``folder/README.md``);
    ``results``: result files or eval run folders (default: ``folder/eval_results.json`` when it
    exists). Returns the path written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{folder} is not a folder; pass an adapter folder (toolformer.json inside)"
        )
    paths = list(results) or ([folder / RESULTS_FILE] if (folder / RESULTS_FILE).exists() else [])
    text = render_card(folder, load_results(paths) if paths else None, license)
    target = Path(output) if output else folder / CARD_FILE
    target.write_text(text, encoding="utf-8")
    return target
