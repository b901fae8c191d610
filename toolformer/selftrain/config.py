"""``SelfTrainConfig``: the settings behind ``toolformer selftrain`` and ``selftrain()``, in
groups as :class:`~toolformer.eval.harness.EvalConfig` holds its decoding:

- ``data`` (:class:`CorpusConfig`): the training corpus, its templates and the contamination guard;
- ``grow`` (:class:`GrowConfig`): Grow's sampling (a :class:`GenerationConfig`), its extra
  samples, the demonstrations and how many prompts a round takes;
- ``improve`` (:class:`ImproveConfig`): the filter, its thresholds and what is kept, and the
  opt-in preference training on right-vs-wrong samples (``preference``, ``dpo``);
- ``dev`` (:class:`DevEvalConfig`): the dev split and its decoding (a :class:`GenerationConfig`);
- ``calibration`` (:class:`CalibrationConfig`): the call trigger's calibration after the run;
- ``annotator`` (round 0) and ``finetune`` (every round's LoRA fine-tuning);
- the run's own settings (output, model, tools, seed, rounds, ...) at the top level.

Defaults are sized for a 2-core CPU: a round (Grow + Improve + LoRA fine-tuning + dev eval)
takes well under 90 minutes on SmolLM2-135M; every subset size is a setting. Why the defaults
are what they are (measured): RESULTS.md, "Self-training settings: why the defaults".

A config written with the flat keys of before the grouping (``{"temperature": 0.5}``) still
loads through :meth:`SelfTrainConfig.from_dict`, and run folders record and compare the
settings in that flat form (:mod:`toolformer.selftrain.flat_keys`).
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
import warnings
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from toolformer.config_types import check_field_types, describe_type, fits
from toolformer.data_aug.types import AnnotatorConfig
from toolformer.errors import UserError
from toolformer.finetune import FinetuneConfig
from toolformer.generation.trigger import OBJECTIVES
from toolformer.generation.types import GenerationConfig
from toolformer.preference import PREFERENCES, DPOSettings
from toolformer.registry import closest
from toolformer.selftrain import flat_keys

# The answer alone after "A:": round 0 annotates the place before it, so a kept call comes first,
# as the math metric needs (it reads the first number of the answer, a call's result included; a
# rationale before the call would make an operand the first number).
DOC_TEMPLATE = "Q: {question}\nA: {answer}"
PROMPT_TEMPLATE = "Q: {question}\nA:"  # the eval harness's zero-shot math prompt
KEEP_MODELS = ("best", "all")


def default_finetune() -> FinetuneConfig:
    """LoRA on CPU sized for a round's tens to hundreds of kept texts of ~70 tokens (and as many
    plain paragraphs): lr 2e-4 (LoRA needs more than the paper's full-model 1e-5), blocks of 128
    tokens, 8 per step, 12 epochs capped at 100 steps (at most ~100k tokens, ~15 min on 2 cores).
    The cap was 4 epochs / 60 steps: on round 1's 19 texts that was 8 steps and the dev call
    rate stayed at 15%; 80 steps gave 100% on SVAMP and MAWPS.
    ``data``/``output_dir``/``model`` are set by the loop."""
    return FinetuneConfig(
        lora=True,
        max_length=128,
        effective_batch_size=8,
        eval_fraction=0.0,
        training_args=dict(
            learning_rate=2e-4,
            per_device_train_batch_size=8,
            max_steps=100,
            num_train_epochs=12.0,
            eval_steps=20,
            save_steps=20,
            save_total_limit=1,
            logging_steps=10,
        ),
    )


def default_annotator() -> AnnotatorConfig:
    """The paper's annotation settings without its per-tool document prefilter: the heuristic
    picks math-like documents out of web text (three numbers, one the result of the other two),
    and every GSM8K problem is one; on `Q: ...\nA: <answer>` documents of 1-2-step problems it
    dropped 4 of 4."""
    return AnnotatorConfig(prefilter=False)


def grow_generation() -> GenerationConfig:
    """Grow's sampling: temperature 0.7, nucleus 0.95, 28 new tokens (tool results included),
    the paper's call rule (a call when '[' is among the top 10 tokens, one call per output), a
    stop at the end of the line, 16 prompts per batch. The seed (None) is set per batch by the
    loop; one given here holds for every batch."""
    return GenerationConfig(
        max_new_tokens=28,
        do_sample=True,
        temperature=0.7,
        top_p=0.95,
        stop_strings=("\n",),
        batch_size=16,
    )


def dev_generation() -> GenerationConfig:
    """The dev eval's decoding: the harness's (:func:`eval_generation`: greedy, the paper's call
    rule) with 16 prompts per batch; the seed (None) is the run's ``seed``. The harness sets
    ``max_new_tokens``, ``stop_strings`` and ``tools_enabled`` per task."""
    from toolformer.eval.harness import eval_generation  # the harness: not for `--help`

    return replace(eval_generation(), batch_size=16, seed=None)


DEMOS_DIR = Path(__file__).resolve().parent / "demos"  # the shipped demonstration sets


def shipped_demonstrations() -> List[str]:
    """The names of the shipped demonstration sets (``calculator``, ``ladder``, ``mix``, ...)."""
    return sorted(x.stem for x in DEMOS_DIR.glob("*.txt"))


@dataclass
class CorpusConfig:
    """The training corpus (its problems give Grow's prompts, round 0's documents and the dev
    split) and the contamination guard against the evaluation sets."""

    corpus: str = field(
        default="gsm8k/train.jsonl",
        metadata={
            "help": (
                "GSM8K-style JSONL (question, answer with '#### n'); relative to "
                "data_dir unless absolute. 'arithmetic' or 'arithmetic:N': N generated "
                "easy word problems (one or two operations on the question's numbers; "
                "toolformer.selftrain.word_problems) instead, for a model too small "
                "for GSM8K. 'ladder' or 'ladder:N' (default 4000): N generated problems "
                "in four equal levels (one step; one step with number words, distractors "
                "and rates; two steps; three steps; toolformer.selftrain.ladder). 'mix' or "
                "'mix:N': the mixed curriculum (see mix)"
            )
        },
    )
    mix: Optional[Dict[str, float]] = field(
        default=None,
        metadata={
            "help": (
                "with --corpus mix[:N] (N items, default 3000): the kinds' relative "
                "weights, e.g. math=0.4,facts=0.25,dates=0.2,notool=0.15 (the "
                "default); math: generated word problems (Calculator), facts: fact "
                "questions disjoint from every evaluation set (QA, WikiSearch), "
                "dates: generated date questions, each with its own reference date "
                "(Calendar), notool: prompts no tool helps (the right output has no "
                "call). Each kind with weight > 0 needs one of its tools in --tools"
            )
        },
    )
    data_dir: Optional[str] = field(
        default=None,
        metadata={"help": "shared data folder (default $TOOLFORMER_DATA or ../shared/data)"},
    )
    max_problem_steps: Optional[int] = field(
        default=1,
        metadata={
            "help": (
                "keep only problems whose gold solution has at most "
                "this many <<...>> calculations (1: one call answers "
                "them, as most SVAMP/MAWPS questions); None (null in a --config file): all"
            )
        },
    )
    wiki_docs: int = field(
        default=0,
        metadata={"help": "Wikipedia paragraphs added for the other tools (no gold answers)"},
    )
    doc_template: str = field(
        default=DOC_TEMPLATE,
        metadata={"help": "round-0 document text from {question}, {solution}, {answer}"},
    )
    prompt_template: str = field(
        default=PROMPT_TEMPLATE, metadata={"help": "Grow prompt from {question} (the eval prompt)"}
    )
    eval_sets: List[str] = field(
        default_factory=lambda: ["svamp", "mawps", "gsm8k"],
        metadata={
            "help": "evaluation tasks the training texts are checked against (contamination guard)"
        },
    )
    contamination_threshold: float = field(
        default=0.5,
        metadata={"help": "word-set Jaccard at or above which a training text is a near-duplicate"},
    )
    perplexity_sets: List[str] = field(
        default_factory=lambda: ["wikitext2"],
        metadata={
            "help": (
                "perplexity tasks the plain paragraphs are checked against: a paragraph "
                "sharing a word 13-gram with one is dropped (GPT-3's contamination test)"
            )
        },
    )


@dataclass
class GrowConfig:
    """Grow: the current model samples outputs with calls on each round's prompts."""

    generation: GenerationConfig = field(
        default_factory=grow_generation,
        metadata={
            "help": (
                "Grow's sampling (see grow_generation): temperature, top_p, "
                "max_new_tokens (tool results included), call rule, batch_size"
            )
        },
    )
    samples_per_prompt: int = field(
        default=4, metadata={"help": "Grow: sampled outputs per prompt"}
    )
    no_call_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": (
                "Grow: more samples per prompt decoded with tools disabled (the same model "
                "without a call: the when filter keeps a call only where these are wrong, "
                "and keeps them where no tool fits) [default: 1 with --corpus mix, else 0]"
            )
        },
    )
    forced_call_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": (
                "Grow: more samples per prompt and per fitting tool of the item (its `tools`, "
                "among --tools) where a call of that tool is forced at the first place one may "
                "open (the paper samples each tool's candidate calls on their own, Section 2); "
                "the when filter still keeps a call only where it makes the answer right and "
                "the no-call samples are wrong [default: 1 with --corpus mix, else 0]"
            )
        },
    )
    demonstrations: Optional[str] = field(
        default="calculator",
        metadata={
            "help": (
                "few-shot text put before Grow prompts (TALM's bootstrap; not "
                "part of the training text): a shipped set by name (calculator; "
                "ladder: compound calls and numbers in words; with --corpus mix: mix), a .txt "
                "file or the text; None: zero-shot"
            )
        },
    )
    demonstrations_rounds: int = field(
        default=1,
        metadata={
            "help": (
                "use the demonstrations in rounds 1..N only (0: every round); "
                "later rounds grow zero-shot from the fine-tuned model"
            )
        },
    )
    answer_only: bool = field(
        default=True,
        metadata={
            "help": (
                "Grow: cut each output after the first number that follows its first "
                "call (the answer the math metric reads); the rest is noise to train on"
            )
        },
    )
    corpus_size: int = field(default=160, metadata={"help": "training prompts per later round"})
    corpus_sizes: Optional[List[int]] = field(
        default=None,
        metadata={
            "help": (
                "prompts per round, round 1 first (the last "
                "holds for later rounds); overrides corpus_size"
            )
        },
    )
    rotate_corpus: bool = field(
        default=True,
        metadata={
            "help": (
                "each round grows on the next corpus_size "
                "prompts (False: the same ones every round)"
            )
        },
    )

    climb_at: Optional[float] = field(
        default=0.5,
        metadata={
            "help": (
                "with a leveled corpus (ladder): when a round's Grow is right on at least this "
                "share of its samples of the round's level, the next round draws the next "
                "level's problems (null in a --config file: every round stays at "
                "start_level)"
            )
        },
    )
    start_level: int = field(
        default=1,
        metadata={"help": "with a leveled corpus (ladder): the level round 1 draws from"},
    )
    review_fraction: float = field(
        default=0.25,
        metadata={
            "help": (
                "with a leveled corpus: the share of a round's prompts drawn from the levels "
                "below the round's own (so what was learnt is rehearsed)"
            )
        },
    )
    demonstrations_on_climb: bool = field(
        default=True,
        metadata={
            "help": (
                "with a leveled corpus and demonstrations: show them again in the first round "
                "at each new level, past demonstrations_rounds (the model has not seen that "
                "level's problems)"
            )
        },
    )

    def round_size(self, k: int) -> int:
        """Prompts Grow uses in round ``k`` (>= 1)."""
        if self.corpus_sizes:
            return int(self.corpus_sizes[min(k, len(self.corpus_sizes)) - 1])
        return self.corpus_size

    def sampling(self, seed: int) -> GenerationConfig:
        """``generation`` with ``seed`` (a batch's), unless ``generation`` fixes one."""
        return replace(
            self.generation, seed=seed if self.generation.seed is None else self.generation.seed
        )


@dataclass
class ImproveConfig:
    """Improve: a filter scores the grown outputs; those above the step's threshold are kept."""

    filter: str = field(
        default="answer",
        metadata={
            "help": "Improve filter (registry name: loss, answer, reward, when, or a plug-in)"
        },
    )
    filter_options: Dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": (
                "options of the filter, e.g. {'placement': "
                "'prefix'} for loss, {'model': PATH} for reward"
            )
        },
    )
    thresholds: Optional[List[float]] = field(
        default=None,
        metadata={
            "help": (
                "threshold per Improve step (then the last "
                "holds); None: the filter's default schedule"
            )
        },
    )
    steps: int = field(
        default=1,
        metadata={
            "help": (
                "Improve steps per Grow (ReST): each filters the grown "
                "data with the next threshold and fine-tunes further"
            )
        },
    )
    max_kept_per_prompt: int = field(
        default=2,
        metadata={
            "help": "Improve keeps at most this many distinct outputs per prompt (best first)"
        },
    )
    max_kept_per_kind: Optional[int] = field(
        default=None,
        metadata={
            "help": (
                "Improve: keep at most this many texts per item kind and called "
                "tool (best scores first, one text per prompt before a second): "
                "no kind or tool outweighs the others in fine-tuning; None: no cap"
            )
        },
    )
    accumulate: bool = field(
        default=False,
        metadata={"help": "fine-tune on the kept data of all rounds so far, not only this round's"},
    )
    preference: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "after each fine-tuning, train on right-vs-wrong pairs of Grow samples of "
                "the same problem (pairs_J.jsonl): dpo (DPO from the SFT adapter, needs "
                "trl; the round's model is then the DPO adapter); None: SFT only"
            ),
            "choices": PREFERENCES,
        },
    )
    dpo: DPOSettings = field(
        default_factory=DPOSettings,
        metadata={"help": "DPO's settings (with preference dpo): beta, learning rate, steps"},
    )

    def schedule(self):
        """The Improve threshold schedule: ``thresholds`` or the filter's default."""
        from toolformer.selftrain.filters import get_filter
        from toolformer.selftrain.schedule import Schedule

        return Schedule.of(
            self.thresholds
            if self.thresholds is not None
            else get_filter(self.filter).default_schedule
        )


@dataclass
class DevEvalConfig:
    """The dev split scored after each round (it picks the best round) and its decoding."""

    data: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "a JSONL (question, answer) to use as the dev "
                "split instead of held-out corpus problems"
            )
        },
    )
    size: int = field(
        default=100,
        metadata={"help": "held-out corpus problems scored after each round (the dev split)"},
    )
    max_problem_steps: Optional[int] = field(
        default=1,
        metadata={
            "help": (
                "the dev split is drawn from held-out problems with at most "
                "this many <<...>> calculations (None, null in a --config file: any the "
                "corpus keeps); 1: one call can answer them, as most SVAMP/MAWPS questions"
            )
        },
    )
    max_new_tokens: Optional[int] = field(
        default=None,
        metadata={"help": "dev eval: tokens per answer (None: the harness's task default)"},
    )
    generation: GenerationConfig = field(
        default_factory=dev_generation,
        metadata={
            "help": (
                "dev eval decoding (see dev_generation); the harness "
                "sets max_new_tokens, stop_strings and tools_enabled"
            )
        },
    )

    def decoding(self, seed: int) -> GenerationConfig:
        """``generation`` with the run's ``seed``, unless ``generation`` fixes one."""
        return replace(
            self.generation, seed=seed if self.generation.seed is None else self.generation.seed
        )


@dataclass
class CalibrationConfig:
    """After the last round: the best adapter's call trigger (when to call), calibrated on
    held-out items of each kind and stored in its toolformer.json."""

    enabled: Optional[bool] = field(
        default=None,
        metadata={
            "help": (
                "after the last round, calibrate the best adapter's call "
                "trigger (when to call) on held-out items of each kind and "
                "store it in its toolformer.json [default: on with --corpus mix]"
            )
        },
    )
    size: int = field(
        default=60, metadata={"help": "held-out items per kind for the trigger calibration"}
    )
    objective: str = field(
        default="macro_f1",
        metadata={
            "help": (
                "what the trigger calibration maximises: macro_f1 (the mean of "
                "the call and no-call F1: every kind of item counts, whatever the "
                "share that expects a call), f1 (call F1) or balanced_accuracy"
            ),
            "choices": OBJECTIVES,
        },
    )


# The groups built from dicts (a config file's objects): each over its own defaults.
_GROUPS = {
    "data": CorpusConfig,
    "grow": GrowConfig,
    "improve": ImproveConfig,
    "dev": DevEvalConfig,
    "calibration": CalibrationConfig,
}

# Fields that change speed, reporting or how far a run goes, not what a finished stage holds: a
# resumed run may change them (raise max_rounds to continue a finished run; shrink the prompts of
# a round that is taking too long: its finished samples are kept, the round's stats say how many
# prompts it used). Flat keys, as run folders record them.
_NOT_FINGERPRINTED = (
    "output",
    "max_rounds",
    "patience",
    "progress",
    "threads",
    "device",
    "grow_batch_size",
    "eval_batch_size",
    "corpus_size",
    "corpus_sizes",
    "keep_models",
    "calibrate",
    "calibration_size",
    "calibration_objective",
)


@dataclass
class SelfTrainConfig:
    """Settings of a self-training run (ReST's Grow / Improve rounds on top of the paper's
    round-0 annotation)."""

    output: str = field(
        default="runs/selftrain",
        metadata={"help": "run folder (round_0/, round_1/, ...; resumed if it exists)"},
    )
    model: str = field(
        default="smollm2-135m", metadata={"help": "base model: alias, folder or HF id"}
    )
    init_adapter: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "start from this LoRA adapter on top of model (a folder, e.g. an "
                "earlier run's best_adapter, or a shipped adapter's name): the baseline "
                "row scores it, round 1 grows with it and fine-tuning continues it; "
                "needs round0_docs 0 (round 0 annotates with the base model)"
            )
        },
    )
    dtype: str = field(default="fp32", metadata={"help": "fp32 or bf16"})
    device: Optional[str] = field(
        default=None, metadata={"help": "torch device (default cpu / cuda when present)"}
    )
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads"})
    tools: List[str] = field(
        default_factory=lambda: ["Calculator"], metadata={"help": "tools to teach"}
    )
    tool_options: Dict[str, Dict[str, Any]] = field(
        default_factory=lambda: {"Calculator": {"numbers_from_text": True}},
        metadata={
            "help": (
                "constructor options per tool, in round 0, Grow and the dev "
                "eval (recorded in the adapter's toolformer.json). Default: "
                "the Calculator takes only numbers written before the call"
            )
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the split, sampling and training"})
    max_rounds: int = field(default=3, metadata={"help": "rounds after round 0"})
    patience: int = field(
        default=1, metadata={"help": "stop after this many rounds without a better dev score"}
    )
    keep_models: str = field(
        default="best",
        metadata={
            "help": (
                "merged weights kept in the run folder: best (the best "
                "round's and the latest round's; every other round keeps "
                "its LoRA adapter, from which it still loads) or all"
            ),
            "choices": KEEP_MODELS,
        },
    )
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    data: CorpusConfig = field(
        default_factory=CorpusConfig,
        metadata={"help": "the training corpus and the contamination guard"},
    )
    round0_docs: int = field(
        default=24,
        metadata={
            "help": (
                "documents round 0 annotates with the paper's "
                "pipeline (0: skip round 0's annotation)"
            )
        },
    )
    annotator: AnnotatorConfig = field(
        default_factory=default_annotator,
        metadata={"help": "round 0: the paper's annotation settings"},
    )
    annotator_factory: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "advanced: round 0's annotator as 'module:attr' "
                "or 'file.py:attr' (see AugmentConfig)"
            )
        },
    )
    grow: GrowConfig = field(
        default_factory=GrowConfig,
        metadata={"help": "Grow: sampling with calls from the current model"},
    )
    improve: ImproveConfig = field(
        default_factory=ImproveConfig, metadata={"help": "Improve: the filter and what it keeps"}
    )
    finetune: FinetuneConfig = field(
        default_factory=default_finetune,
        metadata={"help": "fine-tuning settings (data, output_dir, model are set per round)"},
    )
    plain_ratio: float = field(
        default=1.0,
        metadata={
            "help": (
                "plain Wikipedia paragraphs (no calls) mixed into each "
                "fine-tuning set per kept text (rehearsal): keeps the "
                "language model while it learns calls; 0: kept texts only"
            )
        },
    )
    continue_adapter: bool = field(
        default=True,
        metadata={
            "help": (
                "each fine-tuning continues the previous LoRA adapter "
                "(ReST); False: a fresh adapter on the base each time (STaR)"
            )
        },
    )
    dev: DevEvalConfig = field(
        default_factory=DevEvalConfig, metadata={"help": "the dev split scored after each round"}
    )
    calibration: CalibrationConfig = field(
        default_factory=CalibrationConfig,
        metadata={"help": "the call trigger's calibration after the last round"},
    )

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SelfTrainConfig":
        """A config from a dict of its fields, the groups as dicts (``{"grow": {"generation":
        {"temperature": 0.5}}}``, each over its group's defaults) or dataclasses; the flat keys
        of before the grouping (``{"temperature": 0.5}``) are moved to their places with a
        one-line ``FutureWarning`` (:func:`toolformer.selftrain.flat_keys.nest_flat`).

        Raises :class:`UserError` (one line) for an unknown key."""
        warning = flat_keys.deprecation(values)
        if warning:
            warnings.warn(warning, FutureWarning, stacklevel=2)
        nested = flat_keys.nest_flat(values)
        unknown = sorted(set(nested) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"unknown self-training setting(s) {unknown}")
        config = cls(**nested)
        config._build_groups()
        return config

    def _build_groups(self) -> None:
        """The groups given as dicts made dataclasses (one line for an unknown field or a value
        a group refuses); ``annotator`` and ``finetune`` as their own configs read dicts."""
        for name, cls in _GROUPS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, _group_from_dict(cls, value, name))
        if isinstance(self.annotator, Mapping):
            ann = dict(self.annotator)
            if "max_doc_tokens" in ann:  # the old name of max_length (config files)
                ann["max_length"] = ann.pop("max_doc_tokens")
            self.annotator = _construct(AnnotatorConfig, ann, "annotator")
        if isinstance(self.finetune, Mapping):
            self.finetune = FinetuneConfig.from_dict(dict(self.finetune))

    def normalize(self) -> "SelfTrainConfig":
        """Put the settings in their one form, in place, and return self: the groups given as
        dicts become dataclasses; tool names and tool options take their registered spelling;
        the filter its registered name; with a mixed corpus the weights are parsed (the default
        mix for none) and the shipped calculator demonstrations become the mixed ones (an
        example per tool and one without a call); ``init_adapter`` becomes the adapter folder's
        absolute path. Idempotent.

        Raises :class:`UserError` (one line) for what has no such form: an unknown tool, tool
        option or filter, bad mix weights, an ``init_adapter`` that is no adapter."""
        from toolformer.data_aug.config import canonical_tools
        from toolformer.selftrain import mix
        from toolformer.selftrain.filters import FILTERS
        from toolformer.tools.assembly import canonical_options, check_tool_options

        self._build_groups()
        if not self.tools:
            raise UserError(
                "no tools given; set SelfTrainConfig.tools, e.g. Calculator",
                field="SelfTrainConfig.tools",
            )
        self.tools = canonical_tools(self.tools)
        check_tool_options(self.tool_options)
        self.tool_options = canonical_options(self.tool_options)
        self.improve.filter = FILTERS.canonical(self.improve.filter)
        if mix.is_spec(self.data.corpus):
            self.data.mix = mix.parse_mix(self.data.mix)
            if self.grow.demonstrations == "calculator":
                self.grow.demonstrations = "mix"
        if self.init_adapter:
            from toolformer.models import adapter_dir

            found = adapter_dir(self.init_adapter)
            if found is None:
                raise UserError(
                    f"init_adapter {self.init_adapter!r} is not a LoRA adapter folder or a "
                    "shipped adapter name (see `toolformer models`)"
                )
            self.init_adapter = str(found.resolve())
        return self

    # -- checking ---------------------------------------------------------------------------
    def validate(self) -> "SelfTrainConfig":
        """Check every setting, :meth:`normalize` them, and return self; raise
        :class:`UserError` (one line) for settings that cannot work.

        Every field's type is checked first (a config file may hold ``"max_rounds": "3"``)."""
        check_field_types(self)
        self.normalize()
        for name, group in [(n, getattr(self, n)) for n in _GROUPS] + [
            ("annotator", self.annotator),
            ("finetune", self.finetune),
        ]:
            check_field_types(group, f"{name}.")  # before the corpus and baseline stages
            if isinstance(getattr(group, "generation", None), GenerationConfig):
                check_field_types(group.generation, f"{name}.generation.")
        self._check_counts()
        self._check_corpus()
        self._check_init_adapter()
        self._check_improve()
        from toolformer.finetune_config import check_training_args

        check_training_args(self.finetune.training_args)
        return self

    def _check_counts(self) -> None:
        g, imp = self.grow, self.improve
        at_least = [
            (1, "dev.size", self.dev.size),
            (1, "grow.corpus_size", g.corpus_size),
            (1, "grow.samples_per_prompt", g.samples_per_prompt),
            (1, "calibration.size", self.calibration.size),
            (1, "improve.steps", imp.steps),
            (1, "improve.max_kept_per_prompt", imp.max_kept_per_prompt),
            (1, "patience", self.patience),
            (0, "round0_docs", self.round0_docs),
            (0, "data.wiki_docs", self.data.wiki_docs),
            (0, "max_rounds", self.max_rounds),
            (0, "grow.demonstrations_rounds", g.demonstrations_rounds),
            (0, "grow.no_call_samples", g.no_call_samples),
            (0, "grow.forced_call_samples", g.forced_call_samples),
            (1, "improve.max_kept_per_kind", imp.max_kept_per_kind),
            (1, "data.max_problem_steps", self.data.max_problem_steps),
            (1, "grow.start_level", g.start_level),
            (1, "dev.max_problem_steps", self.dev.max_problem_steps),
        ]
        for low, name, value in at_least:
            if value is not None and value < low:
                raise UserError(
                    f"SelfTrainConfig.{name} must be >= {low}, got {value}",
                    field=f"SelfTrainConfig.{name}",
                )
        if self.calibration.objective not in OBJECTIVES:
            raise UserError(
                f"SelfTrainConfig.calibration.objective must be one of {', '.join(OBJECTIVES)}, "
                f"got {self.calibration.objective!r}",
                field="SelfTrainConfig.calibration.objective",
            )
        if self.keep_models not in KEEP_MODELS:
            raise UserError(
                f"SelfTrainConfig.keep_models must be one of {', '.join(KEEP_MODELS)}, "
                f"got {self.keep_models!r}",
                field="SelfTrainConfig.keep_models",
            )
        if not 0 <= self.plain_ratio <= 20:
            raise UserError(
                f"SelfTrainConfig.plain_ratio must be in [0, 20], got {self.plain_ratio}",
                field="SelfTrainConfig.plain_ratio",
            )
        if g.climb_at is not None and not 0 < g.climb_at <= 1:
            raise UserError(
                f"SelfTrainConfig.grow.climb_at must be in (0, 1] or None, got {g.climb_at}",
                field="SelfTrainConfig.grow.climb_at",
            )
        if not 0 <= g.review_fraction < 1:
            raise UserError(
                f"SelfTrainConfig.grow.review_fraction must be in [0, 1), got {g.review_fraction}",
                field="SelfTrainConfig.grow.review_fraction",
            )
        if g.corpus_sizes is not None and (not g.corpus_sizes or min(g.corpus_sizes) < 1):
            raise UserError(
                "SelfTrainConfig.grow.corpus_sizes must be a non-empty list of sizes >= 1, "
                f"got {g.corpus_sizes}",
                field="SelfTrainConfig.grow.corpus_sizes",
            )

    def _check_ladder(self) -> None:
        """A leveled corpus with the one-step default would drop its multi-step levels (3 and
        4: two and three calculations) without a word, and a start level it lacks would fall
        back to another: both are one line here."""
        from toolformer.selftrain.ladder import LEVELS

        for name, steps in (
            ("data.max_problem_steps", self.data.max_problem_steps),
            ("dev.max_problem_steps", self.dev.max_problem_steps),
        ):
            if steps == 1:
                data, dev = (
                    "SelfTrainConfig.data.max_problem_steps",
                    "SelfTrainConfig.dev.max_problem_steps",
                )
                raise UserError(
                    f"the ladder corpus: {name} 1 (the default) keeps only its one-step levels "
                    f"1-2; set {data} and {dev} to 3 so that levels 3-4 (two and three "
                    "calculations) train and are in the dev split",
                    field=(data, dev),
                )
        if self.grow.start_level > max(LEVELS):
            raise UserError(
                f"SelfTrainConfig.grow.start_level {self.grow.start_level}: the ladder corpus "
                f"has levels {min(LEVELS)}-{max(LEVELS)}",
                field="SelfTrainConfig.grow.start_level",
            )

    def _check_demonstrations(self) -> None:
        """A one-word ``grow.demonstrations`` is a shipped set's name, never few-shot text: a
        misspelt name is one line instead of a word put before every Grow prompt."""
        d = self.grow.demonstrations
        if not d or "\n" in d or " " in d.strip() or d.endswith(".txt"):
            return
        names = shipped_demonstrations()
        if d not in names:
            raise UserError(
                f"SelfTrainConfig.grow.demonstrations {d!r} is no shipped set "
                f"({', '.join(names)}); give one of them, a .txt file or the demonstration "
                "text itself",
                field="SelfTrainConfig.grow.demonstrations",
            )

    def _check_corpus(self) -> None:
        """The corpus spec, the dev file, and for a mixed corpus its size and a tool offered for
        every kind it draws."""
        from toolformer.selftrain import ladder, mix, word_problems

        d = self.data
        for generated in (word_problems, ladder):
            if generated.is_spec(d.corpus):
                generated.parse_spec(d.corpus)  # a bad size: one line before anything runs
        if ladder.is_spec(d.corpus):
            self._check_ladder()
        self._check_demonstrations()
        if self.dev.data is not None and not os.path.isfile(os.path.expanduser(self.dev.data)):
            # the user's own file, not one under data_dir: name it before anything runs
            raise UserError(
                f"SelfTrainConfig.dev.data {self.dev.data}: no such file; give a "
                "JSONL file with question and answer fields",
                field="SelfTrainConfig.dev.data",
            )
        if not mix.is_spec(d.corpus):
            if d.mix is not None:
                raise UserError(
                    "SelfTrainConfig.data.mix needs SelfTrainConfig.data.corpus mix (or mix:N)",
                    field=("SelfTrainConfig.data.mix", "SelfTrainConfig.data.corpus"),
                )
        else:
            mix.parse_spec(d.corpus)
            mix.check_tools(
                [(f"of kind {k}", mix.KIND_TOOLS[k]) for k, w in d.mix.items() if w > 0], self.tools
            )
        if not 0 < d.contamination_threshold <= 1:
            raise UserError(
                f"data.contamination_threshold must be in (0, 1], got {d.contamination_threshold}"
            )

    def _check_init_adapter(self) -> None:
        """An ``init_adapter`` starts after round 0, on the model it was trained on."""
        if not self.init_adapter:
            return
        if self.round0_docs:
            raise UserError(
                "init_adapter starts after round 0 (which annotates with the base "
                "model): set SelfTrainConfig.round0_docs to 0",
                field="SelfTrainConfig.round0_docs",
            )
        from toolformer.finetune import recorded_model
        from toolformer.models import adapter_base

        base = adapter_base(Path(self.init_adapter))  # the folder normalize() resolved
        if recorded_model(base) != recorded_model(self.model):  # a folder by any spelling
            raise UserError(
                f"init_adapter {self.init_adapter!r} was trained on {base!r}, not on "
                f"model {self.model!r}; set SelfTrainConfig.model {base}",
                field="SelfTrainConfig.model",
            )

    def _check_improve(self) -> None:
        """The filter's options (bad ones fail here, before run.json is written or any model
        loads, not in round 1's Improve) and the thresholds."""
        from toolformer.selftrain.filters import get_filter
        from toolformer.selftrain.schedule import Schedule

        get_filter(self.improve.filter).check_options(self.improve.filter_options)
        if self.improve.thresholds is not None:
            Schedule.of(self.improve.thresholds)
        self._check_preference()

    def _check_preference(self) -> None:
        """``improve.preference``: a known method, a filter that scores right (1.0) and wrong
        (0.0), DPO's settings, and trl installed (before anything runs)."""
        from toolformer.preference import require_trl
        from toolformer.selftrain.filters import AnswerFilter, get_filter

        imp = self.improve
        if imp.preference is None:
            return
        if imp.preference not in PREFERENCES:
            raise UserError(
                f"improve.preference must be one of {', '.join(PREFERENCES)} (or None), "
                f"got {imp.preference!r}",
                field="SelfTrainConfig.improve.preference",
            )
        if not issubclass(get_filter(imp.filter), AnswerFilter):
            raise UserError(
                f"improve.preference {imp.preference} pairs right and wrong answers: use "
                f"filter answer or when, not {imp.filter}",
                field="SelfTrainConfig.improve.filter",
            )
        imp.dpo.check("improve.dpo")
        require_trl()

    # -- derived settings -------------------------------------------------------------------
    @property
    def grow_no_call_samples(self) -> int:
        """Grow's tools-disabled samples per prompt (``grow.no_call_samples``, default by
        corpus)."""
        from toolformer.selftrain import mix

        if self.grow.no_call_samples is not None:
            return self.grow.no_call_samples
        return 1 if mix.is_spec(self.data.corpus) else 0

    @property
    def grow_forced_call_samples(self) -> int:
        """Grow's forced-call samples per prompt and fitting tool (``grow.forced_call_samples``,
        default by corpus)."""
        from toolformer.selftrain import mix

        if self.grow.forced_call_samples is not None:
            return self.grow.forced_call_samples
        return 1 if mix.is_spec(self.data.corpus) else 0

    @property
    def calibrates(self) -> bool:
        """Whether the run calibrates the best adapter's call trigger (``calibration.enabled``,
        default by corpus)."""
        from toolformer.selftrain import mix

        enabled = self.calibration.enabled
        return enabled if enabled is not None else mix.is_spec(self.data.corpus)

    # -- recording --------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The settings, nested as the fields are (what ``--config`` and ``from_dict`` read)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def flat_dict(self) -> Dict[str, Any]:
        """The settings under the flat keys of before the grouping (JSON values), as run folders
        record them."""
        flat = flat_keys.flatten(self, grow_generation(), dev_generation())
        return json.loads(
            json.dumps(
                {k: asdict(v) if is_dataclass(v) else v for k, v in flat.items()}, default=str
            )
        )

    def fingerprint(self) -> Dict[str, Any]:
        """The settings every round folder of a run must share: the flat keys (run folders
        recorded them before the grouping) but for those a resumed run may change."""
        d = self.flat_dict()
        d["annotator"] = self.annotator.fingerprint()  # its fields as run folders recorded them
        if not self.improve.preference:  # DPO's settings change nothing a run without it holds
            d.pop("dpo", None)
        return {k: v for k, v in d.items() if k not in _NOT_FINGERPRINTED}

    def changed_since(self, recorded: Optional[Dict[str, Any]]) -> List[str]:
        """The fingerprinted settings (flat keys) that differ from ``recorded`` (a run folder's
        fingerprint).

        A setting ``recorded`` lacks was added to the config after that folder was made: it
        counts as unchanged while it holds its default (what the folder's run did), so older
        run folders keep resuming. The generation settings are compared in one spelling (an
        older record may give a field both by its key and in ``grow_options``)."""
        defaults = SelfTrainConfig().flat_dict()
        then = flat_keys.canonical_generation(
            {**defaults, **(recorded or {})}, grow_generation(), dev_generation()
        )
        now = self.fingerprint()
        keys = (set(recorded or {}) | set(now)) - set(_NOT_FINGERPRINTED)
        return sorted(k for k in keys if then.get(k) != now.get(k))

    def fingerprint_id(self) -> str:
        return hashlib.sha1(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[
            :16
        ]


def _construct(cls: type, values: Dict[str, Any], where: str) -> Any:
    """``cls(**values)`` with one line naming ``where`` for an unknown field, a value of another
    type than its field's, or a value ``cls`` refuses."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        close = [repr(c) for u in unknown if (c := closest(u, known))]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(
            f"{where}: unknown field(s) {unknown}{hint}; known: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():  # before __post_init__ compares them
        tp = hints[name]  # a JSON list is a tuple field's value (stop_strings)
        if not (isinstance(value, (list, tuple)) if tp is tuple else fits(value, tp)):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise UserError(
                f"{where}.{name} must be {describe_type(tp)}, got {type(value).__name__} {shown}"
            )
    return cls(**values)


def _group_from_dict(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """A group from a dict over the group's defaults; its ``generation`` (a dict of
    GenerationConfig fields) over the group's default decoding."""
    values = dict(values)
    default = cls()
    gen = values.get("generation")
    if isinstance(gen, Mapping):
        flat_keys.check_generation_fields(gen, f"{where}.generation")
        values["generation"] = _construct(
            GenerationConfig, {**asdict(default.generation), **gen}, f"{where}.generation"
        )
    for f in fields(cls):  # another nested group (improve.dpo) given as a dict
        inner = getattr(default, f.name)
        if (
            f.name != "generation"
            and is_dataclass(inner)
            and isinstance(values.get(f.name), Mapping)
        ):
            values[f.name] = _construct(
                type(inner), {**asdict(inner), **values[f.name]}, f"{where}.{f.name}"
            )
    return _construct(
        cls, {**{f.name: getattr(default, f.name) for f in fields(cls)}, **values}, where
    )
