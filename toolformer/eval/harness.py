"""The evaluation harness: load a model and its tools, run tasks, score, write the report.

``evaluate(EvalConfig(...))`` runs every task zero-shot with tool-calling generation (the
generator's top-k ``[`` rule, at most ``max_calls`` calls per output), scores each output with
the task's lenient metric, and writes ``results.json`` plus ``samples/<task>.jsonl`` under
``output_dir``. Samples are appended batch by batch, so an interrupted run resumes where it
stopped (same settings only).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from toolformer.atomic import TMP_GLOB
from toolformer.errors import UserError, ensure_dir
from toolformer.eval import report
from toolformer.eval.loaders import Example
from toolformer.eval.metrics import (
    LOGLIKELIHOOD_ROLLING,
    METRICS,
    answer_text,
    call_statistics,
    merge_call_statistics,
)
from toolformer.eval.tasks import TaskSpec, default_data_dir, load_examples, resolve_tasks
from toolformer.eval.voting import majority_record, voting_summary
from toolformer.generation.trigger import resolve_trigger
from toolformer.generation.types import GenerationConfig
from toolformer.models import manifest_tools
from toolformer.output_lock import check_not_input, hold_output
from toolformer.tools.assembly import (
    DEFAULT_TOOLS,
    check_tool_options,
    create_tools,
    run_tool_options,
)

DEFAULT_EVAL_TOOLS = tuple(DEFAULT_TOOLS["eval"])


def eval_generation() -> GenerationConfig:
    """Decoding for evaluation: greedy with the paper's call rule (top-10 ``[``, one call), EOS
    blocked for the first output token (an instruct model's end of turn right after ``A:`` is no
    answer), 8 prompts per batch, seed 0. ``max_new_tokens``, ``stop_strings`` and
    ``tools_enabled`` are set per task."""
    return GenerationConfig(min_new_tokens=1, batch_size=8, seed=0)


@dataclass
class EvalConfig:
    """Settings of one evaluation run: what to evaluate, and how to decode (``generation``).

    ``generation.seed`` is the run's one seed (sampling and torch); ``generation.batch_size``
    also batches perplexity windows.
    """

    model: str = field(default="smollm2-135m", metadata={"help": "model alias, folder or HF id"})
    tasks: Any = field(
        default="all",
        metadata={
            "help": "comma-separated task names or a list; 'all' = every built-in; jsonl:PATH"
        },
    )
    data_dir: Optional[str] = field(
        default=None,
        metadata={"help": "evaluation data folder (default $TOOLFORMER_DATA or ../shared/data)"},
    )
    limit: Optional[int] = field(
        default=None, metadata={"help": "first N examples per task (perplexity: first N windows)"}
    )
    tools_enabled: bool = field(
        default=True,
        metadata={"help": "False = 'Toolformer (disabled)': the model cannot open a call"},
    )
    tools: Optional[List[str]] = field(
        default=None,
        metadata={
            "help": "tools to offer (default: the checkpoint's toolformer.json, else "
            "Calculator, Calendar, WikiSearch, QA)"
        },
    )
    tool_options: Dict[str, Dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "help": "constructor options per tool, e.g. {'WikiSearch': {'corpus': 'x.jsonl'}}"
        },
    )
    output_dir: Optional[str] = field(
        default=None,
        metadata={"help": "where results.json and samples/ go (None: nothing is written)"},
    )
    generation: GenerationConfig = field(
        default_factory=eval_generation,
        metadata={
            "help": "decoding settings (see eval_generation); per task the harness sets "
            "max_new_tokens, stop_strings and tools_enabled"
        },
    )
    max_new_tokens: Optional[int] = field(
        default=None, metadata={"help": "override every task's generation budget"}
    )
    num_return_sequences: int = field(
        default=1,
        metadata={
            "help": "sampled outputs per question (needs do_sample); the answer is their "
            "majority (self-consistency, Wang et al. 2023); 1: one output, the paper's protocol"
        },
    )
    dtype: str = field(
        default="fp32", metadata={"help": "fp32, bf16 or fp16", "choices": ("fp32", "bf16", "fp16")}
    )
    device: Optional[str] = field(default=None, metadata={"help": "e.g. cuda, cpu (default: cpu)"})
    threads: Optional[int] = field(
        default=None,
        metadata={
            "help": "torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)"
        },
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "perplexity window in tokens (capped at the model's context)"},
    )
    stride: Optional[int] = field(
        default=None,
        metadata={
            "help": "perplexity stride (default max_length/2; = max_length: disjoint chunks)"
        },
    )
    resume: bool = field(
        default=True,
        metadata={"help": "reuse the samples already in output_dir (same settings only)"},
    )
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})
    name: Optional[str] = field(default=None, metadata={"help": "run label in comparisons"})
    call_trigger: str = field(
        default="manifest",
        metadata={
            "help": "manifest: decode with the model's calibrated call trigger (toolformer.json "
            "call_trigger) when it has one; config: generation.call_top_k/call_threshold "
            "as given",
            "choices": ("manifest", "config"),
        },
    )

    def __post_init__(self) -> None:
        if self.generation.seed is None:  # an evaluation is reproducible unless told otherwise
            self.generation = replace(self.generation, seed=0)


# --------------------------------------------------------------------------- tools


def resolve_tool_names(config: EvalConfig) -> List[str]:
    """The tool names this run offers (canonical spelling), checked against the registry."""
    from toolformer.tools.base import get_tool_class

    names = config.tools if config.tools is not None else manifest_tools(config.model)
    if names is None:
        names = list(DEFAULT_EVAL_TOOLS)
    if not config.tools_enabled:  # nothing will be called: do not import the tools
        return list(names)
    return [get_tool_class(n).name for n in names]


def allowed_tools(task: TaskSpec, names: Sequence[str]) -> List[str]:
    """The run's tools minus those the task disables (``*`` disables all)."""
    if "*" in task.disabled_tools:
        return []
    off = {t.lower() for t in task.disabled_tools}
    return [n for n in names if n.lower() not in off]


# --------------------------------------------------------------------------- helpers


def _to_dict(obj: Any) -> Dict[str, Any]:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj):
        return asdict(obj)
    return dict(obj) if isinstance(obj, Mapping) else dict(vars(obj))


def versions() -> Dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("toolformer", "torch", "transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fingerprint(config: EvalConfig, tool_names: Sequence[str], data_dir: Path) -> str:
    """A hash of every setting that changes an output (not limit, batch size or tasks).

    The keys are those of the flat config this replaced, so that a run folder made before
    resumes; decoding settings added since count only when they differ from their default.
    """
    gen = config.generation
    blob: Dict[str, Any] = {
        "model": config.model,
        "tools_enabled": config.tools_enabled,
        "tool_options": config.tool_options,
        "max_new_tokens": config.max_new_tokens,
        "call_top_k": gen.call_top_k,
        "max_calls": gen.max_calls,
        "min_new_tokens": gen.min_new_tokens,
        "do_sample": gen.do_sample,
        "temperature": gen.temperature,
        "seed": gen.seed,
        "dtype": config.dtype,
        "ppl_max_length": config.max_length,
        "ppl_stride": config.stride,
    }
    if config.num_return_sequences != 1:  # absent at 1: folders made before it resume
        blob["num_return_sequences"] = config.num_return_sequences
    for name in ("top_k", "top_p", "max_call_tokens", "call_threshold"):
        if getattr(gen, name) != getattr(GenerationConfig, name):
            blob[name] = getattr(gen, name)
    blob.update(tools=list(tool_names), data_dir=str(data_dir.resolve()))
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_samples(path: Path) -> Dict[int, Dict[str, Any]]:
    done: Dict[int, Dict[str, Any]] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interrupted write
                continue
            if isinstance(rec, dict) and isinstance(rec.get("idx"), int):
                done[rec["idx"]] = rec
    return done


# --------------------------------------------------------------------------- scoring


def score_sample(
    task: TaskSpec, idx: int, ex: Example, prompt: str, out: Any, seconds: float
) -> Dict[str, Any]:
    """One ``samples/<task>.jsonl`` record for an example and its generation output."""
    calls = [_to_dict(c) for c in out.calls]
    scored = METRICS.get(task.metric).score(out.text, ex.gold, ex.choices, calls)
    return {
        "idx": idx,
        "id": ex.id,
        "prompt": prompt,
        "output": out.text,
        "answer_text": answer_text(out.text, calls),
        "extracted": scored.extracted,
        "gold": ex.gold,
        "choices": ex.choices,
        "correct": scored.correct,
        "calls": calls,
        "num_tokens": out.num_tokens,
        "finish_reason": out.finish_reason,
        "seconds": seconds,
    }


def rescore(task: TaskSpec, ex: Example, rec: Dict[str, Any]) -> Dict[str, Any]:
    """A resumed record scored again with the current metric (outputs are kept, not rerun); a
    voted record's samples are each scored again and voted again."""
    if isinstance(rec.get("samples"), list):
        base = {k: v for k, v in rec.items() if k not in ("samples", "votes")}
        again = [rescore(task, ex, {**base, **s, "seconds": 0.0}) for s in rec["samples"]]
        return {**majority_record(again), "seconds": rec.get("seconds", 0.0)}
    scored = METRICS.get(task.metric).score(rec["output"], ex.gold, ex.choices, rec["calls"])
    return {
        **rec,
        "answer_text": answer_text(rec["output"], rec["calls"]),
        "extracted": scored.extracted,
        "gold": ex.gold,
        "choices": ex.choices,
        "correct": scored.correct,
    }


def summarize(
    task: TaskSpec, samples: Sequence[Dict[str, Any]], disabled: Sequence[str]
) -> Dict[str, Any]:
    """A task's scores and tool statistics from its sample records."""
    n = len(samples)
    calls = [c for s in samples for c in s["calls"]]
    failed = [c for c in calls if c.get("error")]
    off = {t.lower() for t in disabled}
    correct = sum(bool(s["correct"]) for s in samples)
    return {
        "task": task.name,
        "metric": task.metric,
        "score": correct / n if n else 0.0,
        "correct": correct,
        "n": n,
        "tool_call_rate": sum(bool(s["calls"]) for s in samples) / n if n else 0.0,
        "calls": len(calls),
        "tool_counts": dict(Counter(c.get("tool") or "(no name)" for c in calls).most_common()),
        "failed_calls": len(failed),
        "call_failure_rate": len(failed) / len(calls) if calls else 0.0,
        "call_errors": dict(Counter((c.get("error") or "")[:60] for c in failed).most_common(5)),
        "disabled_tool_calls": sum(1 for c in calls if (c.get("tool") or "").lower() in off),
        "mean_output_tokens": sum(s["num_tokens"] for s in samples) / n if n else 0.0,
        "empty_outputs": sum(1 for s in samples if not s["answer_text"].strip()),
        "finish_reasons": dict(Counter(s["finish_reason"] for s in samples)),
        "seconds": sum(s.get("seconds", 0.0) for s in samples),
        # when and which tool: call rate, precision, recall, confusion, accuracy split by call
        "when": call_statistics(samples, task.expected_tools),
        **({"voting": voting} if (voting := voting_summary(samples)) else {}),
    }


def example_contexts(examples: Sequence[Example]) -> Optional[List[Any]]:
    """Per example, what its tools may know: the Calendar returns ``meta["date"]`` (a generated
    date question's own "today") instead of the real date. None when no example has a date."""
    if not any(ex.meta.get("date") for ex in examples):
        return None
    from toolformer.tools.base import ToolContext
    from toolformer.tools.calendar import as_date

    return [
        ToolContext(date=as_date(ex.meta["date"])) if ex.meta.get("date") else None
        for ex in examples
    ]


# --------------------------------------------------------------------------- running


GeneratorFactory = Callable[[Any, Any, Any, Any], Any]


def _default_generator(model: Any, tokenizer: Any, executor: Any, gen_config: Any) -> Any:
    from toolformer.generation import ToolGenerator

    return ToolGenerator(model, tokenizer, executor, gen_config)


class _Run:
    """The state of one :func:`evaluate` call: model, tools, output folder."""

    def __init__(
        self,
        config: EvalConfig,
        model: Any,
        tokenizer: Any,
        generator_factory: GeneratorFactory,
        tools: Optional[Mapping[str, Any]],
    ):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.factory = generator_factory
        self.tool_objects: Dict[str, Any] = dict(tools or {})
        self.out = Path(config.output_dir) if config.output_dir else None

    def tools_for(self, names: Sequence[str]) -> Dict[str, Any]:
        """Instances of ``names``, built once per run (a search index is not rebuilt per task).

        QA shares the run's WikiSearch unless its own corpus is set, and reads with the evaluated
        model itself when that is the reader it asks for (no second copy in memory).
        """
        return create_tools(
            names,
            self.config.tool_options,
            model=self.model,
            tokenizer=self.tokenizer,
            model_name=self.config.model,
            dtype=self.config.dtype,
            built=self.tool_objects,
        )

    def samples_path(self, task: TaskSpec) -> Optional[Path]:
        return None if self.out is None else self.out / "samples" / f"{task.file_stem}.jsonl"

    # -- generation tasks ------------------------------------------------------------------
    def run_generation(
        self, task: TaskSpec, examples: List[Example], tool_names: List[str]
    ) -> Dict[str, Any]:
        from tqdm.auto import tqdm

        from toolformer.tools.executor import ToolExecutor

        cfg = self.config
        allowed = allowed_tools(task, tool_names) if cfg.tools_enabled else []
        disabled = [n for n in tool_names if n not in allowed] if cfg.tools_enabled else []
        gen_config = replace(
            cfg.generation,
            max_new_tokens=cfg.max_new_tokens or task.max_new_tokens,
            tools_enabled=bool(allowed),
            stop_strings=task.stop,
        )
        executor = ToolExecutor(self.tools_for(allowed)) if allowed else None
        prompts = [task.prompt(ex) for ex in examples]
        contexts = example_contexts(examples)
        path = self.samples_path(task)
        done = _read_samples(path) if (path is not None and cfg.resume) else {}
        done = {
            i: rescore(task, examples[i], r)
            for i, r in done.items()
            if i < len(examples) and r.get("prompt") == prompts[i]
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # rewrite what is kept, so the file holds exactly this run's samples
            with path.open("w", encoding="utf-8") as fh:
                for i in sorted(done):
                    fh.write(json.dumps(done[i], ensure_ascii=False) + "\n")
        todo = sorted(
            (i for i in range(len(examples)) if i not in done), key=lambda i: (len(prompts[i]), i)
        )
        generator = self.factory(self.model, self.tokenizer, executor, gen_config)
        bar = tqdm(
            total=len(examples),
            initial=len(done),
            desc=task.name,
            unit="ex",
            disable=not cfg.progress,
            dynamic_ncols=True,
        )
        k = cfg.num_return_sequences  # k rows per question, voted (self-consistency)
        per_batch = max(1, gen_config.batch_size // k)
        try:
            for b in range(0, len(todo), per_batch):
                batch = todo[b : b + per_batch]
                rows = [i for i in batch for _ in range(k)]
                start = time.perf_counter()
                # only where an example has a date: a generator may not take contexts
                extra = {} if contexts is None else {"contexts": [contexts[i] for i in rows]}
                outs = generator.generate([prompts[i] for i in rows], gen_config, **extra)
                share = (time.perf_counter() - start) / len(rows)
                records = [
                    score_sample(task, i, examples[i], prompts[i], o, share)
                    for i, o in zip(rows, outs)
                ]
                if k > 1:
                    records = [majority_record(records[j : j + k]) for j in range(0, len(rows), k)]
                for rec in records:
                    done[rec["idx"]] = rec
                if path is not None:
                    with path.open("a", encoding="utf-8") as fh:
                        for rec in records:
                            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                bar.update(len(batch))
                bar.set_postfix(acc=f"{sum(r['correct'] for r in done.values()) / len(done):.3f}")
        finally:
            bar.close()
            if executor is not None:
                executor.close()
        samples = [done[i] for i in range(len(examples))]
        if path is not None:  # in example order, for people reading the file
            with path.open("w", encoding="utf-8") as fh:
                for rec in samples:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        result = summarize(task, samples, disabled)
        result.update(
            tools_offered=allowed,
            disabled_tools=disabled,
            max_new_tokens=gen_config.max_new_tokens,
            stop=list(task.stop),
            template=task.template,
            paper_task=task.paper_task,
        )
        return result

    # -- perplexity ------------------------------------------------------------------------
    def run_perplexity(self, task: TaskSpec, examples: List[Example]) -> Dict[str, Any]:
        from toolformer.eval.perplexity import perplexity

        cfg = self.config
        path = self.samples_path(task)
        settings = {"limit": cfg.limit, "max_length": cfg.max_length, "stride": cfg.stride}
        if path is not None and cfg.resume and path.exists():
            old = _read_samples(path).get(0)
            if old is not None and old.get("settings") == settings:
                return old["result"]
        text = "\n".join(ex.fields["text"] for ex in examples)
        res = perplexity(
            self.model,
            self.tokenizer,
            text,
            max_length=cfg.max_length,
            stride=cfg.stride,
            batch_size=cfg.generation.batch_size,
            limit=cfg.limit,
            progress=cfg.progress,
        )
        metric = METRICS.get(task.metric)
        better = {} if metric.higher_is_better else {"lower_is_better": True}
        result = {
            "task": task.name,
            "metric": task.metric,
            "score": res["perplexity"],
            "n": res["tokens_scored"],
            **better,
            "tool_call_rate": 0.0,
            "calls": 0,
            "tool_counts": {},
            "failed_calls": 0,
            "call_failure_rate": 0.0,
            "mean_output_tokens": 0.0,
            "tools_offered": [],
            "disabled_tools": ["*"],
            "paper_task": task.paper_task,
            **res,
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps({"idx": 0, "settings": settings, "result": result}) + "\n",
                encoding="utf-8",
            )
        return result


def _has_samples(out: Path) -> bool:
    """Whether an earlier run in ``out`` finished at least one sample (then it is worth keeping)."""
    folder = out / "samples"
    return folder.is_dir() and any(p.is_file() and p.stat().st_size > 0 for p in folder.iterdir())


def _check_output_dir(
    out: Path,
    fingerprint: str,
    resume: bool,
    model_files: Optional[Dict[str, Any]] = None,
    model: str = "the model",
) -> None:
    """Refuse a folder holding samples made with other settings, or with the same model name
    whose files changed since (``model_files``: :func:`toolformer.fingerprint.model_fingerprint`);
    called before any loading.

    The settings are recorded only by :func:`_record_settings`, once the data and the model have
    loaded, so that a run that failed on a bad ``--model`` does not lock its folder; a folder
    whose earlier run produced no sample is simply reused.
    """
    ensure_dir(out, "the output folder")
    state = out / "run_state.json"
    if resume and state.exists() and _has_samples(out):
        try:
            old = json.loads(state.read_text(encoding="utf-8")).get("fingerprint")
        except (json.JSONDecodeError, AttributeError):
            old = None
        if old != fingerprint:
            raise UserError(
                f"{out} holds a run with different settings; give another EvalConfig.output_dir, "
                "or EvalConfig.resume=False to overwrite its samples",
                field=("EvalConfig.output_dir", "EvalConfig.resume=False"),
            )
        if model_files is not None:  # a folder recorded before model fingerprints: trusted
            from toolformer.fingerprint import check_same_model

            recorded = json.loads(state.read_text(encoding="utf-8")).get("model_files")
            check_same_model(
                recorded,
                model_files,
                model,
                out,
                "give another "
                "EvalConfig.output_dir, or EvalConfig.resume=False to evaluate it "
                "afresh over its samples",
            )


def _record_settings(
    out: Path, fingerprint: str, model_files: Optional[Dict[str, Any]] = None
) -> None:
    state = {"fingerprint": fingerprint}
    if model_files is not None:
        state["model_files"] = model_files
    (out / "run_state.json").write_text(json.dumps(state), encoding="utf-8")


# what eval writes in its output folder (a --tasks file there would be overwritten)
EVAL_WRITES = ("samples", report.RESULTS_FILE, "run_state.json", TMP_GLOB)


def evaluate(
    config: EvalConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    generator_factory: Optional[GeneratorFactory] = None,
    tools: Optional[Mapping[str, Any]] = None,
    command: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Run ``config.tasks`` and return the results (also written to ``config.output_dir``).

    ``model``/``tokenizer`` skip loading ``config.model``; ``generator_factory(model, tokenizer,
    executor, generation_config)`` replaces :class:`~toolformer.generation.ToolGenerator` (tests
    use a fake); ``tools`` supplies ready tool instances by name. ``command``: the command line
    that asked for the run (``toolformer eval`` passes its own), recorded beside the settings;
    a caller of this function leaves it None (the settings say what it was called with).
    Raises :class:`UserError` (one line) when another run holds ``output_dir``, or when a
    ``jsonl:`` task file lies where the run writes its samples or results.
    """
    kwargs = dict(
        model=model,
        tokenizer=tokenizer,
        generator_factory=generator_factory,
        tools=tools,
        command=command,
    )
    if not config.output_dir:
        return _evaluate(config, **kwargs)
    specs = resolve_tasks(config.tasks)
    check_not_input(
        config.output_dir,
        {f"EvalConfig.tasks {s.name}": s.path for s in specs if s.name.startswith("jsonl:")},
        EVAL_WRITES,
        option="EvalConfig.output_dir",
    )
    # one run per output folder: two would append to the same samples files
    with hold_output(config.output_dir, option="EvalConfig.output_dir"):
        return _evaluate(config, **kwargs)


def _evaluate(
    config: EvalConfig,
    *,
    model: Any,
    tokenizer: Any,
    generator_factory: Optional[GeneratorFactory],
    tools: Optional[Mapping[str, Any]],
    command: Optional[Sequence[str]],
) -> Dict[str, Any]:
    """:func:`evaluate` once the output folder (if any) is this process's: check and load the
    inputs, then the model, run every task and write the results."""
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    specs = resolve_tasks(config.tasks)
    data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
    tool_names = resolve_tool_names(config)
    config = _resolve_settings(config)
    # load every task's data before the model: a bad path fails in a second, not after loading
    # --limit counts examples of a generation task, windows of a perplexity text
    loaded = [
        load_examples(spec, data_dir, config.limit if spec.generates else None) for spec in specs
    ]
    out = Path(config.output_dir) if config.output_dir else None
    fingerprint = _fingerprint(config, tool_names, data_dir)
    model_files = _check_output(config, out, fingerprint) if out is not None else None
    model, tokenizer = _load_model(config, model, tokenizer)
    if out is not None:  # the inputs and the model checked out: now the folder is this run's
        _record_settings(out, fingerprint, model_files)
    run = _Run(config, model, tokenizer, generator_factory or _default_generator, tools)
    results = _run_tasks(run, loaded, tool_names, data_dir)
    summary = _summary(config, tokenizer, tool_names, data_dir, results, command, started, t0)
    if out is not None:
        report.write_results(summary, out)
    return summary


def _resolve_settings(config: EvalConfig) -> EvalConfig:
    """``config`` with its call trigger resolved (the checkpoint's calibrated one unless
    ``call_trigger='config'``) and, with tools enabled, the checkpoint's tool options under the
    user's, every one checked. Raises :class:`UserError` for a bad ``call_trigger`` or tool
    option, before any data or model loads."""
    if config.call_trigger not in ("manifest", "config"):
        raise UserError(f"call_trigger must be 'manifest' or 'config', not {config.call_trigger!r}")
    k = config.num_return_sequences
    if not isinstance(k, int) or k < 1:
        raise UserError(
            f"EvalConfig.num_return_sequences must be an integer >= 1, got {k!r}",
            field="EvalConfig.num_return_sequences",
        )
    if k > 1 and not config.generation.do_sample:  # k greedy outputs would be one output k times
        raise UserError(
            f"EvalConfig.num_return_sequences {k} votes over sampled outputs: set "
            "GenerationConfig.do_sample (and a temperature), or EvalConfig.num_return_sequences "
            "1",
            field=("EvalConfig.num_return_sequences", "GenerationConfig.do_sample"),
        )
    config = replace(
        config,
        generation=resolve_trigger(
            config.generation, config.model, explicit=config.call_trigger == "config"
        ),
    )
    if config.tools_enabled:  # the checkpoint's safe tool options (selftrain's), then the user's
        config = replace(config, tool_options=run_tool_options(config.model, config.tool_options))
    if config.tools_enabled:  # every tool option checked before any data or model loads
        check_tool_options(config.tool_options)
    return config


def _check_output(config: EvalConfig, out: Path, fingerprint: str) -> Dict[str, Any]:
    """Check that ``out`` may take this run (see :func:`_check_output_dir`) and return the
    model's file fingerprint, with the tools' option files when there are any."""
    # the model's files, not only its name: a retrained adapter is another
    from toolformer.fingerprint import model_fingerprint, options_fingerprint

    model_files = model_fingerprint(config.model)
    tool_files = options_fingerprint(config.tool_options) if config.tools_enabled else {}
    if tool_files:  # a corpus file or reader model the tools use (left out when none)
        model_files = {**model_files, "tool_options": tool_files}
    _check_output_dir(out, fingerprint, config.resume, model_files, config.model)
    return model_files


def _load_model(config: EvalConfig, model: Any, tokenizer: Any) -> Tuple[Any, Any]:
    """Seed torch, set its CPU threads, and return ``(model, tokenizer)``: those given, else
    ``config.model`` loaded."""
    import torch

    torch.manual_seed(config.generation.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    if model is None:
        from toolformer.models import load_model

        model, tokenizer = load_model(config.model, dtype=config.dtype, device=config.device)
    return model, tokenizer


def _run_tasks(
    run: _Run,
    loaded: Sequence[Tuple[TaskSpec, List[Example]]],
    tool_names: Sequence[str],
    data_dir: Path,
) -> Dict[str, Any]:
    """Every task's result by name, in task order, each with the data file it read."""
    results: Dict[str, Any] = {}
    for spec, examples in loaded:
        if spec.output_type == LOGLIKELIHOOD_ROLLING:
            results[spec.name] = run.run_perplexity(spec, examples)
        else:
            results[spec.name] = run.run_generation(spec, examples, tool_names)
        results[spec.name]["data_path"] = str(spec.data_path(data_dir))
    return results


def _summary(
    config: EvalConfig,
    tokenizer: Any,
    tool_names: Sequence[str],
    data_dir: Path,
    results: Dict[str, Any],
    command: Optional[Sequence[str]],
    started: _dt.datetime,
    t0: float,
) -> Dict[str, Any]:
    """The run's report (what ``results.json`` holds): its settings, versions, timings, every
    task's result and the call statistics over all generating tasks. ``started``: the UTC start
    time; ``t0``: its ``time.perf_counter()``."""
    return {
        "name": config.name or report.default_label(config.model, config.tools_enabled),
        "model": config.model,
        "tokenizer": getattr(tokenizer, "name_or_path", None),
        "tools": tool_names,
        "tools_enabled": config.tools_enabled,
        "seed": config.generation.seed,
        "limit": config.limit,
        "data_dir": str(data_dir),
        "started": started.isoformat(timespec="seconds"),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t0,  # this invocation (a resumed run: the rest)
        # every task's own time, kept across resumes: the run's cost
        "task_seconds": sum(float(r.get("seconds") or 0.0) for r in results.values()),
        "versions": versions(),
        "command": None if command is None else " ".join(command),
        "settings": asdict(config),
        "tasks": results,
        # over every generating task: calls, precision, the summed confusion table
        "when": merge_call_statistics([r["when"] for r in results.values() if "when" in r]),
    }
