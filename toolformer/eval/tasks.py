"""The evaluation tasks: one small declarative :class:`TaskSpec` per task, in a registry.

Prompts are zero-shot, as in the paper: math and QA questions as ``Q: ...\\nA:``, LAMA as the
cloze statement cut at the mask, which the model continues. Tools the paper disables per task:
WikiSearch on LAMA, QA on NQ. (The shared ``wiki_corpus`` holds the LAMA evidence sentences
verbatim, sources ``gre-*``/``trex-*``: a QA tool reading that corpus leaks LAMA answers too; the
default WikiSearch corpus, gensim's Wikipedia sample, does not.)
``jsonl:PATH`` names a generic task over any JSONL with ``question`` and ``answer``.

Each task names the tools that fit it (``expected_tools``; ``()``: none does), which the report's
call precision, recall and confusion table measure against: math -> Calculator, LAMA and NQ ->
QA and WikiSearch, the generated Dateset -> Calendar. The BIG-bench date tasks state their own
reference date ("Today is 12/24/1937") and the Calendar returns another one, so no tool fits
them. ``dateset`` and ``notool`` are generated (:mod:`toolformer.datasets`), not read from files.

Multiple choice (the date tasks) is scored from the generated text, by the option the output
names first (see :func:`toolformer.eval.metrics.choice_prediction`), not by option
log-likelihood: tools act only during generation (a Calendar call may answer a date question),
so one protocol serves a model with and without tools.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from toolformer.errors import EmptyInputError, UserError
from toolformer.eval.loaders import GENERATED_N, GENERATED_SEED, LOADERS, Example
from toolformer.eval.metrics import GENERATE_UNTIL, LOGLIKELIHOOD_ROLLING, METRICS, OUTPUT_TYPES
from toolformer.registry import Registry

QA_TEMPLATE = "Q: {question}\nA:"
CLOZE_TEMPLATE = "{text}"
GENERIC_PREFIX = "jsonl:"
GENERATED_PREFIX = "generated:"
MATH_TOOLS = ("Calculator",)
FACT_TOOLS = ("QA", "WikiSearch")
DATE_TOOLS = ("Calendar",)


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """How to load, prompt and score one task (built with keywords only)."""

    name: str = field(metadata={"help": "registry name, also the samples file name"})
    path: str = field(metadata={"help": "data path, relative to the data dir unless absolute"})
    format: str = field(metadata={"help": "loader name in loaders.LOADERS"})
    metric: str = field(metadata={"help": "a name in metrics.METRICS, or auto (math or qa)"})
    output_type: str = field(
        default="",
        metadata={
            "help": "generate_until (generate, score each output) or loglikelihood_rolling "
            "(perplexity of the text); default: the metric's"
        },
    )
    template: str = field(default=QA_TEMPLATE, metadata={"help": "zero-shot prompt; {fields}"})
    disabled_tools: Tuple[str, ...] = field(
        default=(), metadata={"help": "tools the model may not call on this task (paper)"}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "generation budget per example"})
    stop: Tuple[str, ...] = field(default=("\n",), metadata={"help": "generation stop strings"})
    description: str = field(default="", metadata={"help": "one line for `--list-tasks`"})
    paper_task: str = field(default="", metadata={"help": "the paper's benchmark it stands for"})
    expected_tools: Tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "the tools that fit the task (() = none does): call precision and recall"
        },
    )

    def __post_init__(self) -> None:
        if self.metric == "auto":  # settled on the data: math or qa, both generate
            metric_output = GENERATE_UNTIL
        elif self.metric in METRICS:
            metric_output = METRICS.get(self.metric).output_type
        else:
            raise ValueError(f"task {self.name}: {METRICS.unknown(self.metric)}")
        if isinstance(self.expected_tools, str):  # ("QA") is a string, not a tuple
            raise ValueError(
                f"task {self.name}: expected_tools must be a tuple of tool names, "
                f"e.g. ({self.expected_tools!r},)"
            )
        if not self.output_type:
            object.__setattr__(self, "output_type", metric_output)
        if self.output_type not in OUTPUT_TYPES:
            raise ValueError(f"task {self.name}: output_type must be one of {OUTPUT_TYPES}")
        if self.output_type != metric_output:
            raise ValueError(
                f"task {self.name}: metric {self.metric} scores {metric_output}, "
                f"not {self.output_type}"
            )

    @property
    def generates(self) -> bool:
        """Whether the model generates (and may call tools); --limit then counts examples."""
        return self.output_type == GENERATE_UNTIL

    def data_path(self, data_dir: Union[str, Path]) -> Path:
        if self.path.startswith(GENERATED_PREFIX):  # made by code: no file to find
            return Path(self.path)
        path = Path(os.path.expanduser(self.path))
        return path if path.is_absolute() else Path(data_dir) / path

    def prompt(self, example: Example) -> str:
        """The task's template filled with the example's fields."""
        return self.template.format(**example.fields)

    @property
    def file_stem(self) -> str:
        """A file-name-safe form of the name (``jsonl:/a/b.jsonl`` -> ``jsonl_b``)."""
        if self.name.startswith(GENERIC_PREFIX):
            return "jsonl_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.name[6:]).stem)
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)


TASKS: Registry[TaskSpec] = Registry("task")


def register_task(spec: TaskSpec, overwrite: bool = False) -> TaskSpec:
    """Add a task (a plugin or a user's own) to the registry."""
    LOADERS.get(spec.format)  # fail now on an unknown loader
    return TASKS.register(spec.name, spec, overwrite=overwrite)


def _math(name: str, path: str, format: str, description: str, paper_task: str = "") -> TaskSpec:
    # Only the first number is scored, and small models go on after the answer line with more
    # "B: ..." lines: the answer line is the output.
    return TaskSpec(
        name=name,
        path=path,
        format=format,
        metric="math",
        max_new_tokens=48,
        description=description,
        paper_task=paper_task,
        expected_tools=MATH_TOOLS,
    )


def _lama(name: str, path: str, format: str, description: str, paper_task: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        path=path,
        format=format,
        metric="lama",
        template=CLOZE_TEMPLATE,
        disabled_tools=("WikiSearch",),
        max_new_tokens=24,
        description=description,
        paper_task=paper_task,
        expected_tools=FACT_TOOLS,
    )


def _multiple_choice(name: str, path: str, format: str, description: str) -> TaskSpec:
    # after a list of options a model may start its answer on a new line: stop at a blank line
    return TaskSpec(
        name=name,
        path=path,
        format=format,
        metric="multiple_choice",
        template=QA_TEMPLATE,
        max_new_tokens=32,
        stop=("\n\n", "\nQ:"),
        description=description,
        paper_task="Dateset (stand-in)",
    )


for _spec in (
    _math("svamp", "svamp/SVAMP.json", "svamp", "SVAMP math word problems (1000)", "SVAMP"),
    _math(
        "mawps",
        "mawps/mawps_demasked_from_svamp_cv.jsonl",
        "mawps_jsonl",
        "MAWPS, union of the 5 CV dev folds (1920)",
        "MAWPS",
    ),
    _math(
        "mawps_addsub",
        "mawps/mawps_subsets_zero_shot_cot/AddSub.json",
        "mawps_subset",
        "MAWPS AddSub (395)",
        "MAWPS",
    ),
    _math(
        "mawps_multiarith",
        "mawps/mawps_subsets_zero_shot_cot/MultiArith.json",
        "mawps_subset",
        "MAWPS MultiArith (600)",
        "MAWPS",
    ),
    _math(
        "mawps_singleeq",
        "mawps/mawps_subsets_zero_shot_cot/SingleEq.json",
        "mawps_subset",
        "MAWPS SingleEq (508)",
        "MAWPS",
    ),
    _math("gsm8k", "gsm8k/test.jsonl", "gsm8k", "GSM8K test (1319), harder math", ""),
    _lama(
        "lama_squad",
        "lama/Squad/test.jsonl",
        "lama_squad",
        "LAMA SQuAD, mask-final sentences (210 of 305)",
        "LAMA SQuAD",
    ),
    _lama(
        "lama_google_re",
        "lama/Google_RE",
        "lama_google_re",
        "LAMA Google-RE, LAMA templates (5528)",
        "LAMA Google-RE",
    ),
    _lama(
        "lama_trex",
        "lama",
        "lama_trex",
        "LAMA T-REx, mask-final templates (23 of 28 relations here, 18601 facts)",
        "LAMA T-REx",
    ),
    TaskSpec(
        name="nq_open",
        path="nq_open/NQ-open.dev.jsonl",
        format="nq_open",
        metric="qa",
        disabled_tools=("QA",),
        max_new_tokens=48,
        description="Natural Questions open, test set (3610)",
        paper_task="NQ",
        expected_tools=FACT_TOOLS,
    ),
    _multiple_choice(
        "date_understanding",
        "date_understanding_bbh/date_understanding.json",
        "bbh_mc",
        "BIG-Bench-Hard date understanding (250), multiple choice",
    ),
    _multiple_choice(
        "date_understanding_bigbench",
        "date_understanding_bigbench/task.json",
        "bigbench_mc",
        "BIG-bench date understanding (369), options shuffled, multiple choice",
    ),
    _multiple_choice(
        "temporal_sequences",
        "date_understanding_bbh/temporal_sequences.json",
        "bbh_mc",
        "BIG-Bench-Hard temporal sequences (250), multiple choice",
    ),
    TaskSpec(
        name="dateset",
        path=GENERATED_PREFIX + "dateset",
        format="dateset",
        metric="contains",
        max_new_tokens=48,
        expected_tools=DATE_TOOLS,
        description="generated date questions, each with its own date for the Calendar "
        f"(eval split, {GENERATED_N}, seed {GENERATED_SEED})",
        paper_task="Dateset",
    ),
    TaskSpec(
        name="notool",
        path=GENERATED_PREFIX + "notool",
        format="notool",
        metric="no_call",
        max_new_tokens=32,
        expected_tools=(),
        description=f"generated prompts where no tool helps (eval split, {GENERATED_N}, "
        f"seed {GENERATED_SEED}); score: share of outputs without a call",
    ),
    TaskSpec(
        name="wikitext2",
        path="wikitext2_raw/wiki.test.raw",
        format="text",
        metric="perplexity",
        output_type=LOGLIKELIHOOD_ROLLING,
        template="{text}",
        disabled_tools=("*",),
        max_new_tokens=0,
        stop=(),
        description="WikiText-2 raw test, token-level perplexity, tools disabled",
        paper_task="WikiText",
    ),
):
    register_task(_spec)


def generic_task(spec: str) -> TaskSpec:
    """The task for ``jsonl:PATH`` (PATH relative to the current directory, or absolute)."""
    path = spec[len(GENERIC_PREFIX) :].strip()
    if not path:
        raise UserError(
            "jsonl: needs a path, e.g. EvalConfig.tasks jsonl:my_questions.jsonl",
            field="EvalConfig.tasks",
        )
    if not Path(path).expanduser().is_file():  # the user's own file: data_dir is no help here
        raise UserError(f"EvalConfig.tasks {spec}: no such file {path}", field="EvalConfig.tasks")
    return TaskSpec(
        name=f"{GENERIC_PREFIX}{path}",
        path=str(Path(path).expanduser().resolve()),
        format="jsonl",
        metric="auto",
        max_new_tokens=64,
        description=f"questions from {path} (math when every answer is a number, else QA)",
    )


def get_task(name: str) -> TaskSpec:
    """A registered task, or the generic task for ``jsonl:PATH``."""
    if name.startswith(GENERIC_PREFIX):
        return generic_task(name)
    if name not in TASKS:
        raise TASKS.unknown(name, extra_hint=", or jsonl:PATH for your own JSONL")
    return TASKS.get(name)


def resolve_tasks(tasks: Union[str, Sequence[str], None]) -> List[TaskSpec]:
    """Task names (a list, or a comma-separated string; "all" for every built-in) as specs."""
    if tasks is None:
        names: List[str] = ["all"]
    elif isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",") if t.strip()]
    else:
        names = [t.strip() for t in tasks if t.strip()]
    if not names:
        raise UserError(
            "no task given; set EvalConfig.tasks to svamp,lama_trex,... or all",
            field="EvalConfig.tasks",
        )
    out: List[TaskSpec] = []
    for n in names:
        specs = [TASKS.get(k) for k in TASKS.names()] if n.lower() == "all" else [get_task(n)]
        for spec in specs:
            if spec.name not in {s.name for s in out}:
                out.append(spec)
    return out


def load_examples(
    task: TaskSpec, data_dir: Union[str, Path], limit: Optional[int] = None
) -> Tuple[TaskSpec, List[Example]]:
    """Load a task's examples (the first ``limit`` of them); an ``auto`` metric is settled here.

    A generic task scores with ``math`` when every answer is a number and ``qa`` otherwise (its
    numeric answers then become one-alias lists).
    """
    examples = LOADERS.get(task.format)(task.data_path(data_dir))
    if not examples:
        raise EmptyInputError(
            f"{task.data_path(data_dir)} holds no examples for task {task.name}; "
            "check the file or give another EvalConfig.data_dir",
            field="EvalConfig.data_dir",
        )
    if task.metric == "auto":
        shared = {tuple(ex.meta["tools"]) for ex in examples if "tools" in ex.meta}
        declared = (
            shared.pop()
            if len(shared) == 1 and all("tools" in ex.meta for ex in examples)
            else None
        )
        if all(ex.meta.get("no_tool") for ex in examples):
            task = replace(task, metric="no_call", expected_tools=())
        elif all(ex.meta.get("numeric") for ex in examples):
            task = replace(task, metric="math", expected_tools=declared or MATH_TOOLS)
        elif any(ex.meta.get("no_tool") for ex in examples):
            raise UserError(
                f"{task.name}: rows with no answer (no-tool prompts) and rows with answers "
                "mixed in one file; put them in two files",
                field="EvalConfig.tasks",
            )
        else:
            task = replace(task, metric="qa", expected_tools=declared or FACT_TOOLS)
            for ex in examples:
                if ex.meta.get("numeric"):
                    ex.gold = [str(ex.meta["answer"])]
    if limit is not None:
        if limit < 1:
            raise UserError(
                f"EvalConfig.limit must be at least 1, got {limit}", field="EvalConfig.limit"
            )
        examples = examples[:limit]
    return task, examples


def default_data_dir() -> Path:
    """``$TOOLFORMER_DATA`` if set, else ``../shared/data`` relative to the current directory."""
    env = os.environ.get("TOOLFORMER_DATA")
    return Path(env) if env else Path("..") / "shared" / "data"


def describe_tasks() -> List[Dict[str, str]]:
    """One row per built-in task (name, metric, disabled tools, description) for listings."""
    rows = []
    for name in TASKS.names():
        t = TASKS.get(name)
        rows.append(
            {
                "name": t.name,
                "metric": t.metric,
                "path": t.path,
                "disabled_tools": ",".join(t.disabled_tools) or "-",
                "expected_tools": (",".join(t.expected_tools) or "none") if t.generates else "n/a",
                "description": t.description,
            }
        )
    return rows
