"""``SelfTrainConfig``: the one dataclass behind ``toolformer selftrain`` and ``selftrain()``.

Defaults are sized for a 2-core CPU: a round (Grow + Improve + LoRA fine-tuning + dev eval)
takes well under 90 minutes on SmolLM2-135M; every subset size is a setting.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

from toolformer.data_aug.types import AnnotatorConfig
from toolformer.config_types import check_field_types
from toolformer.errors import UserError
from toolformer.finetune import FinetuneConfig

# The answer alone after "A:": round 0 annotates the place before it, so a kept call comes first,
# as the math metric needs (it reads the first number of the answer, a call's result included; a
# rationale before the call would make an operand the first number).
DOC_TEMPLATE = "Q: {question}\nA: {answer}"
PROMPT_TEMPLATE = "Q: {question}\nA:"  # the eval harness's zero-shot math prompt


def default_finetune() -> FinetuneConfig:
    """LoRA on CPU sized for a round's tens to hundreds of kept texts of ~70 tokens (and as many
    plain paragraphs): lr 2e-4 (LoRA needs more than the paper's full-model 1e-5), blocks of 128
    tokens, 8 per step, 12 epochs capped at 100 steps (at most ~100k tokens, ~15 min on 2 cores).
    The cap was 4 epochs / 60 steps: on round 1's 19 texts that was 8 steps and the dev call
    rate stayed at 15%; 80 steps gave 100% on SVAMP and MAWPS.
    ``data``/``output_dir``/``model`` are set by the loop."""
    return FinetuneConfig(
        lora=True, max_length=128, effective_batch_size=8, eval_fraction=0.0,
        training_args=dict(learning_rate=2e-4, per_device_train_batch_size=8, max_steps=100,
                           num_train_epochs=12.0, eval_steps=20, save_steps=20,
                           save_total_limit=1, logging_steps=10),
    )


def default_annotator() -> AnnotatorConfig:
    """The paper's annotation settings without its per-tool document prefilter: the heuristic
    picks math-like documents out of web text (three numbers, one the result of the other two),
    and every GSM8K problem is one; on `Q: ...\nA: <answer>` documents of 1-2-step problems it
    dropped 4 of 4."""
    return AnnotatorConfig(prefilter=False)


# Fields that change speed, reporting or how far a run goes, not what a finished stage holds: a
# resumed run may change them (raise max_rounds to continue a finished run; shrink the prompts of
# a round that is taking too long: its finished samples are kept, the round's stats say how many
# prompts it used).
_NOT_FINGERPRINTED = ("output", "max_rounds", "patience", "progress", "threads", "device",
                      "grow_batch_size", "eval_batch_size", "corpus_size", "corpus_sizes", "keep_models",
                      "calibrate", "calibration_size", "calibration_objective")
KEEP_MODELS = ("best", "all")


@dataclass
class SelfTrainConfig:
    """Settings of a self-training run (ReST's Grow / Improve rounds on top of the paper's
    round-0 annotation)."""

    output: str = field(default="runs/selftrain", metadata={"help": "run folder (round_0/, round_1/, ...; resumed if it exists)"})
    model: str = field(default="smollm2-135m", metadata={"help": "base model: alias, folder or HF id"})
    init_adapter: Optional[str] = field(default=None, metadata={"help": "start from this LoRA adapter on top of model (a folder, e.g. an earlier run's best_adapter, or a shipped adapter's name): the baseline row scores it, round 1 grows with it and fine-tuning continues it; needs round0_docs 0 (round 0 annotates with the base model)"})
    dtype: str = field(default="fp32", metadata={"help": "fp32 or bf16"})
    device: Optional[str] = field(default=None, metadata={"help": "torch device (default cpu / cuda when present)"})
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads"})
    tools: List[str] = field(default_factory=lambda: ["Calculator"], metadata={"help": "tools to teach"})
    tool_options: Dict[str, Dict[str, Any]] = field(
        default_factory=lambda: {"Calculator": {"numbers_from_text": True}},
        metadata={"help": "constructor options per tool, in round 0, Grow and the dev eval (recorded in the "
                          "adapter's toolformer.json). Default: the Calculator takes only numbers written "
                          "before the call (the base model invents numbers otherwise: 38 of 152 closed "
                          "zero-shot calls used the question's numbers)"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "shared data folder (default $TOOLFORMER_DATA or ../shared/data)"})
    corpus: str = field(default="gsm8k/train.jsonl", metadata={"help": "GSM8K-style JSONL (question, answer with '#### n'); relative to data_dir unless absolute. 'arithmetic' or 'arithmetic:N': N generated easy word problems (one or two operations on the question's numbers; toolformer.selftrain.word_problems) instead, for a model too small for GSM8K"})
    mix: Optional[Dict[str, float]] = field(default=None, metadata={"help": "with --corpus mix[:N] (N items, default 3000): the kinds' relative weights, e.g. math=0.4,facts=0.25,dates=0.2,notool=0.15 (the default); math: generated word problems (Calculator), facts: fact questions disjoint from every evaluation set (QA, WikiSearch), dates: generated date questions, each with its own reference date (Calendar), notool: prompts no tool helps (the right output has no call). Each kind with weight > 0 needs one of its tools in --tools"})
    max_problem_steps: Optional[int] = field(default=1, metadata={"help": "keep only problems whose gold solution has at most this many <<...>> calculations (1: one call answers them, as most SVAMP/MAWPS questions; 499 of 7,473. With 1-2 steps, 2,674 problems, round 1's Grow found the gold answer in 10-24 of 1,280 samples); None: all"})
    wiki_docs: int = field(default=0, metadata={"help": "Wikipedia paragraphs added for the other tools (no gold answers)"})
    doc_template: str = field(default=DOC_TEMPLATE, metadata={"help": "round-0 document text from {question}, {solution}, {answer}"})
    prompt_template: str = field(default=PROMPT_TEMPLATE, metadata={"help": "Grow prompt from {question} (the eval prompt)"})
    demonstrations: Optional[str] = field(default="calculator", metadata={"help": "few-shot text put before Grow prompts (TALM's bootstrap; not part of the training text): a shipped set by name (calculator), a .txt file or the text; None: zero-shot. Without it the base model wrote a call in 3 of 32 outputs and none ran; with it 32 of 32, 30 of 36 calls ran"})
    demonstrations_rounds: int = field(default=1, metadata={"help": "use the demonstrations in rounds 1..N only (0: every round); later rounds grow zero-shot from the fine-tuned model"})
    dev_data: Optional[str] = field(default=None, metadata={"help": "a JSONL (question, answer) to use as the dev split instead of held-out corpus problems"})
    dev_size: int = field(default=100, metadata={"help": "held-out GSM8K-train problems scored after each round (the dev split)"})
    dev_max_problem_steps: Optional[int] = field(default=1, metadata={"help": "the dev split is drawn from held-out problems with at most this many <<...>> calculations (None: any the corpus keeps). 1: one call can answer them, as most SVAMP/MAWPS questions; on 1-2-step problems every round and the base model scored 0/100, so the dev split could not pick a round"})
    plain_ratio: float = field(default=1.0, metadata={"help": "plain Wikipedia paragraphs (no calls) mixed into each fine-tuning set per kept text (rehearsal): keeps the language model while it learns calls (without them WikiText-2 perplexity rose 11.8%); 0: kept texts only"})
    perplexity_sets: List[str] = field(default_factory=lambda: ["wikitext2"], metadata={"help": "perplexity tasks the plain paragraphs are checked against: a paragraph sharing a word 13-gram with one is dropped (GPT-3's contamination test)"})
    round0_docs: int = field(default=24, metadata={"help": "documents round 0 annotates with the paper's pipeline (0: skip round 0's annotation)"})
    corpus_size: int = field(default=160, metadata={"help": "training prompts per later round (Grow with the demonstrations measured 0.7-3.5 s per sample on one core: 160 x 4 samples ~ 8-37 min)"})
    corpus_sizes: Optional[List[int]] = field(default=None, metadata={"help": "prompts per round, round 1 first (the last holds for later rounds); overrides corpus_size"})
    rotate_corpus: bool = field(default=True, metadata={"help": "each round grows on the next corpus_size prompts (False: the same ones every round)"})
    eval_sets: List[str] = field(default_factory=lambda: ["svamp", "mawps", "gsm8k"], metadata={"help": "evaluation tasks the training texts are checked against (contamination guard)"})
    contamination_threshold: float = field(default=0.5, metadata={"help": "word-set Jaccard at or above which a training text is a near-duplicate"})
    max_rounds: int = field(default=3, metadata={"help": "rounds after round 0"})
    patience: int = field(default=1, metadata={"help": "stop after this many rounds without a better dev score"})
    samples_per_prompt: int = field(default=4, metadata={"help": "Grow: sampled outputs per prompt"})
    no_call_samples: Optional[int] = field(default=None, metadata={"help": "Grow: more samples per prompt decoded with tools disabled (the same model without a call: the when filter keeps a call only where these are wrong, and keeps them where no tool fits) [default: 1 with --corpus mix, else 0]"})
    forced_call_samples: Optional[int] = field(default=None, metadata={"help": "Grow: more samples per prompt and per fitting tool of the item (its `tools`, among --tools) where a call of that tool is forced at the first place one may open (the paper samples each tool's candidate calls on their own, Section 2); the when filter still keeps a call only where it makes the answer right and the no-call samples are wrong [default: 1 with --corpus mix, else 0]"})
    max_kept_per_kind: Optional[int] = field(default=None, metadata={"help": "Improve: keep at most this many texts per item kind and called tool (best scores first, one text per prompt before a second): no kind or tool outweighs the others in fine-tuning; None: no cap"})
    calibrate: Optional[bool] = field(default=None, metadata={"help": "after the last round, calibrate the best adapter's call trigger (when to call) on held-out items of each kind and store it in its toolformer.json [default: on with --corpus mix]"})
    calibration_size: int = field(default=60, metadata={"help": "held-out items per kind for the trigger calibration"})
    calibration_objective: str = field(default="macro_f1", metadata={"help": "what the trigger calibration maximises: macro_f1 (the mean of the call and no-call F1: every kind of item counts, whatever the share that expects a call), f1 (call F1) or balanced_accuracy", "choices": ("macro_f1", "f1", "balanced_accuracy")})
    temperature: float = field(default=0.7, metadata={"help": "Grow: sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "Grow: nucleus mass"})
    max_new_tokens: int = field(default=28, metadata={"help": "Grow: tokens per output, tool results included (SmolLM2 writes a digit per token: with 20, 264 of 1,280 outputs were cut inside their call)"})
    answer_only: bool = field(default=True, metadata={"help": "Grow: cut each output after the first number that follows its first call (the answer the math metric reads); the rest is noise to train on"})
    grow_options: Dict[str, Any] = field(default_factory=dict, metadata={"help": "Grow: other GenerationConfig fields by name (e.g. a call grammar option)"})
    max_calls: int = field(default=1, metadata={"help": "calls per output in Grow and dev eval (paper: 1)"})
    call_top_k: int = field(default=10, metadata={"help": "a call starts when '[' is among the top-k tokens (paper: 10)"})
    grow_batch_size: int = field(default=16, metadata={"help": "Grow: prompts decoded together"})
    filter: str = field(default="answer", metadata={"help": "Improve filter (registry name: loss, answer, reward, or a plug-in)"})
    filter_options: Dict[str, Any] = field(default_factory=dict, metadata={"help": "options of the filter, e.g. {'placement': 'prefix'} for loss, {'model': PATH} for reward"})
    thresholds: Optional[List[float]] = field(default=None, metadata={"help": "threshold per Improve step (then the last holds); None: the filter's default schedule"})
    improve_steps: int = field(default=1, metadata={"help": "Improve steps per Grow (ReST): each filters the grown data with the next threshold and fine-tunes further"})
    max_kept_per_prompt: int = field(default=2, metadata={"help": "Improve keeps at most this many distinct outputs per prompt (best first)"})
    accumulate: bool = field(default=False, metadata={"help": "fine-tune on the kept data of all rounds so far, not only this round's"})
    continue_adapter: bool = field(default=True, metadata={"help": "each fine-tuning continues the previous LoRA adapter (ReST); False: a fresh adapter on the base each time (STaR)"})
    annotator: AnnotatorConfig = field(default_factory=default_annotator, metadata={"help": "round 0: the paper's annotation settings"})
    annotator_factory: Optional[str] = field(default=None, metadata={"help": "advanced: round 0's annotator as 'module:attr' or 'file.py:attr' (see AugmentConfig)"})
    finetune: FinetuneConfig = field(default_factory=default_finetune, metadata={"help": "fine-tuning settings (data, output_dir, model are set per round)"})
    eval_batch_size: int = field(default=16, metadata={"help": "dev eval: prompts decoded together"})
    eval_options: Dict[str, Any] = field(default_factory=dict, metadata={"help": "dev eval: GenerationConfig fields by name over the harness's (e.g. a call grammar option)"})
    eval_max_new_tokens: Optional[int] = field(default=None, metadata={"help": "dev eval: tokens per answer (None: the harness's task default)"})
    keep_models: str = field(default="best", metadata={"help": "merged weights kept in the run folder: best (the best round's and the latest round's; every other round keeps its LoRA adapter, from which it still loads: ~539 MB saved per round with SmolLM2-135M) or all", "choices": KEEP_MODELS})
    seed: int = field(default=0, metadata={"help": "seed of the split, sampling and training"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})

    def validate(self) -> "SelfTrainConfig":
        """Raise :class:`UserError` (one line) for settings that cannot work; return self.

        Every field's type is checked first (a config file may hold ``"max_rounds": "3"``)."""
        check_field_types(self)
        from toolformer.data_aug.config import canonical_tools
        from toolformer.selftrain.filters import get_filter
        from toolformer.selftrain.schedule import Schedule

        for name in ("no_call_samples", "forced_call_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_kept_per_kind is not None and self.max_kept_per_kind < 1:
            raise UserError(f"max_kept_per_kind must be >= 1, got {self.max_kept_per_kind}")
        from toolformer.generation.trigger import OBJECTIVES

        if self.calibration_objective not in OBJECTIVES:
            raise UserError(f"calibration_objective must be one of {', '.join(OBJECTIVES)}, "
                            f"got {self.calibration_objective!r}")
        ints = ("dev_size", "corpus_size", "samples_per_prompt", "max_new_tokens", "calibration_size",
                "grow_batch_size", "improve_steps", "max_kept_per_prompt", "eval_batch_size")
        for name in ints:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("round0_docs", "wiki_docs", "max_rounds", "max_calls", "call_top_k",
                     "demonstrations_rounds"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.patience < 1:
            raise UserError(f"patience must be >= 1, got {self.patience}")
        if self.keep_models not in KEEP_MODELS:
            raise UserError(f"keep_models must be one of {', '.join(KEEP_MODELS)}, got {self.keep_models!r}")
        from toolformer.selftrain import word_problems

        if word_problems.is_spec(self.corpus):
            word_problems.parse_spec(self.corpus)  # a bad size: one line before anything runs
        if self.dev_data is not None and not os.path.isfile(os.path.expanduser(self.dev_data)):
            # the user's own file, not one under data_dir: name it before anything runs
            raise UserError(f"SelfTrainConfig.dev_data {self.dev_data}: no such file; give a "
                            "JSONL file with question and answer fields",
                            field="SelfTrainConfig.dev_data")
        self._validate_mix()
        if self.max_problem_steps is not None and self.max_problem_steps < 1:
            raise UserError(f"max_problem_steps must be >= 1, got {self.max_problem_steps}")
        if not 0 < self.temperature:
            raise UserError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.init_adapter:
            from toolformer.models import adapter_base, adapter_dir

            found = adapter_dir(self.init_adapter)
            if found is None:
                raise UserError(f"init_adapter {self.init_adapter!r} is not a LoRA adapter folder or a "
                                "shipped adapter name (see `toolformer models`)")
            if self.round0_docs:
                raise UserError("init_adapter starts after round 0 (which annotates with the base model): "
                                "set SelfTrainConfig.round0_docs to 0",
                                field="SelfTrainConfig.round0_docs")
            from toolformer.finetune import recorded_model

            base = adapter_base(found)
            if recorded_model(base) != recorded_model(self.model):  # a folder by any spelling
                raise UserError(f"init_adapter {self.init_adapter!r} was trained on {base!r}, not on "
                                f"model {self.model!r}; set SelfTrainConfig.model {base}",
                                field="SelfTrainConfig.model")
            self.init_adapter = str(found.resolve())
        if self.dev_max_problem_steps is not None and self.dev_max_problem_steps < 1:
            raise UserError(f"dev_max_problem_steps must be >= 1, got {self.dev_max_problem_steps}")
        if not 0 <= self.plain_ratio <= 20:
            raise UserError(f"plain_ratio must be in [0, 20], got {self.plain_ratio}")
        if not 0 < self.contamination_threshold <= 1:
            raise UserError(f"contamination_threshold must be in (0, 1], got {self.contamination_threshold}")
        if not self.tools:
            raise UserError("no tools given; set SelfTrainConfig.tools, e.g. Calculator",
                            field="SelfTrainConfig.tools")
        self.tools = canonical_tools(self.tools)
        from toolformer.tools.assembly import canonical_options, check_tool_options

        check_tool_options(self.tool_options)
        self.tool_options = canonical_options(self.tool_options)
        # unknown name: one line with "did you mean"; bad options fail here, before run.json is
        # written or any model loads (not in round 1's Improve)
        get_filter(self.filter).check_options(self.filter_options)
        self.filter = _canonical_filter(self.filter)
        for name in ("grow_options", "eval_options"):
            opts = getattr(self, name)
            if opts:
                from toolformer.generation import GenerationConfig

                known = {f.name for f in fields(GenerationConfig)}
                unknown = sorted(set(opts) - known)
                if unknown:
                    raise UserError(f"{name}: unknown GenerationConfig field(s) {unknown}; known: {', '.join(sorted(known))}")
        if self.corpus_sizes is not None and (not self.corpus_sizes or min(self.corpus_sizes) < 1):
            raise UserError(f"corpus_sizes must be a non-empty list of sizes >= 1, got {self.corpus_sizes}")
        if self.thresholds is not None:
            Schedule.of(self.thresholds)
        if isinstance(self.annotator, dict):
            ann = dict(self.annotator)
            if "max_doc_tokens" in ann:  # the old name of max_length (config files)
                ann["max_length"] = ann.pop("max_doc_tokens")
            self.annotator = AnnotatorConfig(**ann)
        if isinstance(self.finetune, dict):
            self.finetune = FinetuneConfig.from_dict(self.finetune)
        check_field_types(self.annotator, "annotator.")  # before the corpus and baseline stages
        check_field_types(self.finetune, "finetune.")
        from toolformer.finetune_config import check_training_args

        check_training_args(self.finetune.training_args)
        return self

    def _validate_mix(self) -> None:
        """The mixed curriculum's settings: its size, its weights (a known kind, >= 0, not all
        zero) and a tool offered for every kind it draws; the shipped calculator demonstrations
        become the mixed ones (an example per tool and one without a call)."""
        from toolformer.data_aug.config import canonical_tools
        from toolformer.selftrain import mix

        if not mix.is_spec(self.corpus):
            if self.mix is not None:
                raise UserError("SelfTrainConfig.mix needs SelfTrainConfig.corpus mix (or mix:N)",
                                field=("SelfTrainConfig.mix", "SelfTrainConfig.corpus"))
            return
        mix.parse_spec(self.corpus)
        self.mix = mix.parse_mix(self.mix)
        offered = canonical_tools(self.tools) if self.tools else []
        mix.check_tools([(f"of kind {k}", mix.KIND_TOOLS[k]) for k, w in self.mix.items() if w > 0],
                        offered)
        if self.demonstrations == "calculator":
            self.demonstrations = "mix"

    def round_size(self, k: int) -> int:
        """Prompts Grow uses in round ``k`` (>= 1)."""
        if self.corpus_sizes:
            return int(self.corpus_sizes[min(k, len(self.corpus_sizes)) - 1])
        return self.corpus_size

    def schedule(self):
        """The Improve threshold schedule: ``thresholds`` or the filter's default."""
        from toolformer.selftrain.filters import get_filter
        from toolformer.selftrain.schedule import Schedule

        return Schedule.of(self.thresholds if self.thresholds is not None
                           else get_filter(self.filter).default_schedule)

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @property
    def grow_no_call_samples(self) -> int:
        """Grow's tools-disabled samples per prompt (``no_call_samples``, default by corpus)."""
        from toolformer.selftrain import mix

        if self.no_call_samples is not None:
            return self.no_call_samples
        return 1 if mix.is_spec(self.corpus) else 0

    @property
    def grow_forced_call_samples(self) -> int:
        """Grow's forced-call samples per prompt and fitting tool (``forced_call_samples``,
        default by corpus)."""
        from toolformer.selftrain import mix

        if self.forced_call_samples is not None:
            return self.forced_call_samples
        return 1 if mix.is_spec(self.corpus) else 0

    @property
    def calibrates(self) -> bool:
        """Whether the run calibrates the best adapter's call trigger (``calibrate``)."""
        from toolformer.selftrain import mix

        return self.calibrate if self.calibrate is not None else mix.is_spec(self.corpus)

    def fingerprint(self) -> Dict[str, Any]:
        """The settings every round folder of a run must share."""
        d = self.to_dict()
        d["annotator"] = self.annotator.fingerprint()  # its fields as run folders recorded them
        return {k: v for k, v in d.items() if k not in _NOT_FINGERPRINTED}

    def changed_since(self, recorded: Optional[Dict[str, Any]]) -> List[str]:
        """The fingerprinted settings that differ from ``recorded`` (a run folder's fingerprint).

        A setting ``recorded`` lacks was added to the config after that folder was made: it
        counts as unchanged while it holds its default (what the folder's run did), so older
        run folders keep resuming."""
        recorded = recorded or {}
        now = self.fingerprint()
        defaults = SelfTrainConfig().to_dict()
        return sorted(k for k in set(recorded) | set(now)
                      if (recorded[k] if k in recorded else defaults.get(k)) != now.get(k))

    def fingerprint_id(self) -> str:
        return hashlib.sha1(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]


def _canonical_filter(name: str) -> str:
    from toolformer.selftrain.filters import FILTERS

    return FILTERS.canonical(name)

