"""Improve filters as plug-ins: each scores sampled candidates; Improve keeps a candidate whose
score reaches the threshold of the current step (see :mod:`toolformer.selftrain.schedule`).

A filter is a class registered in :data:`FILTERS` (the project's generic
:class:`~toolformer.registry.Registry`; installed plugins join through the entry-point group
``toolformer.filters``)::

    from toolformer.selftrain import CandidateFilter, register_filter

    @register_filter("length")
    class LengthFilter(CandidateFilter):
        default_schedule = (20.0,)

        def scores(self, candidates):
            return [float(len(c.text)) for c in candidates]

and is then usable as ``SelfTrainConfig(improve=ImproveConfig(filter="length"))`` /
``--filter length``; the loop is not touched. ``scores`` returns one number per candidate
(higher is better) or None for a candidate the filter cannot judge (dropped and counted).
Built-ins:

- ``loss``: the paper's L- - L+ (Section 2) for each call of the candidate, the candidate's
  score is the smallest over its calls; placement ``prefix`` (the paper: the call is a prefix
  of the text) or ``inline`` (the call where the model wrote it; for a model that has seen calls);
- ``answer``: 1.0 when every call ran and the answer (the eval harness's math metric: the first
  number, a call's result included) equals the gold answer, else 0.0 (STaR; needs gold answers);
- ``when``: the fewest calls that make the answer right: a right output without a call is kept
  (and, for an item no tool helps, any output without a call); an output with a call only
  where no sample of its item without a call was right, and only with a tool that fits it;
- ``reward``: r(text with calls) - r(text without them) under a Hugging Face sequence
  classification model (its ``label`` logit, option ``model``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from toolformer.data_aug.scoring import weighted_loss
from toolformer.errors import UserError
from toolformer.plugin_options import check_options, option_types, required_options
from toolformer.registry import Registry
from toolformer.selftrain.candidates import Candidate

PLACEMENTS = ("prefix", "inline")


@dataclass
class FilterContext:
    """What a filter may use: the current model (the one that grew the candidates) and tokenizer,
    loaded lazily by ``load`` the first time a filter asks for them."""

    model: Any = None
    tokenizer: Any = None
    load: Optional[Callable[[], Tuple[Any, Any]]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def policy(self) -> Tuple[Any, Any]:
        """``(model, tokenizer)`` of the current policy."""
        if self.model is None and self.load is not None:
            self.model, self.tokenizer = self.load()
        if self.model is None:
            raise UserError("this filter needs the current model, and none was given")
        return self.model, self.tokenizer


class CandidateFilter:
    """Base class of Improve filters. Subclasses set ``default_schedule`` and implement
    :meth:`scores`; ``needs_gold`` filters are refused (one line) on a corpus without answers.
    Options come from ``SelfTrainConfig.improve.filter_options`` as keyword arguments."""

    name: str = ""
    default_schedule: Tuple[float, ...] = (0.0,)
    needs_gold: bool = False
    # Improve keeps only candidates with a call that ran, unless the filter judges outputs
    # without a call too (a right answer without help is then a training text)
    keeps_plain: bool = False

    def __init__(self, context: Optional[FilterContext] = None, **options: Any):
        self.context = context or FilterContext()
        if options:
            raise UserError(f"filter {self.name!r} takes no option(s) {sorted(options)}")

    def scores(self, candidates: Sequence[Candidate]) -> List[Optional[float]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the filter loaded (a reward model)."""

    @classmethod
    def check_options(cls, options: Optional[Dict[str, Any]] = None) -> None:
        """Check ``options`` before anything runs or loads: names and types against the
        constructor's keywords (:mod:`toolformer.plugin_options`, as tools and prefilters are
        checked), values with :meth:`check_values`. Raises :class:`UserError` (one line)."""
        options = dict(options or {})
        skip = ("self", "context")
        check_options(
            f"filter {cls.name!r}",
            options,
            option_types(cls.__init__, skip),
            required=required_options(cls.__init__, skip),
        )
        cls.check_values(**options)

    @classmethod
    def check_values(cls, **options: Any) -> None:
        """Raise :class:`UserError` for an option value that cannot work (subclasses)."""


FILTERS: Registry[Type[CandidateFilter]] = Registry(
    "filter",
    entry_points="toolformer.filters",
    validate=lambda name, obj: (
        (isinstance(obj, type) and issubclass(obj, CandidateFilter))
        or "is not a CandidateFilter subclass"
    ),
)


def register_filter(name: str, overwrite: bool = False):
    """Class decorator: register a :class:`CandidateFilter` subclass under ``name``."""

    def add(cls: Type[CandidateFilter]) -> Type[CandidateFilter]:
        if not (isinstance(cls, type) and issubclass(cls, CandidateFilter)):
            raise TypeError(f"filter {name!r} must be a CandidateFilter subclass, got {cls!r}")
        cls.name = name
        FILTERS.register(name, cls, overwrite=overwrite)
        return cls

    return add


def get_filter(name: str) -> Type[CandidateFilter]:
    """The filter class called ``name``; an unknown name is a one-line :class:`UserError`."""
    return FILTERS.get(name)


def build_filter(
    name: str, context: Optional[FilterContext] = None, options: Optional[Dict[str, Any]] = None
) -> CandidateFilter:
    """An instance of filter ``name`` with ``options``; a wrong option is a one-line error."""
    cls = get_filter(name)
    cls.check_options(options)  # the same check SelfTrainConfig.validate makes
    return cls(context, **dict(options or {}))


# --------------------------------------------------------------------------- loss


def weighted_losses(
    model: Any,
    rows: Sequence[Tuple[Sequence[int], Sequence[int]]],
    horizon: int = 5,
    batch_size: int = 16,
) -> List[Optional[float]]:
    """L = sum_t w_t * -log p(x_t | head, x_<t) over the first ``horizon`` tokens x of each
    ``(head_ids, x_ids)`` row; weights w~_t = max(0, 1 - t/horizon), normalised over the tokens
    that exist (paper, Section 2; the one formula,
    :func:`toolformer.data_aug.scoring.weighted_loss`). None for a row with no x token. Rows are
    right-padded in batches: causal attention never reads padding after a position, so the
    numbers equal one-row passes."""
    import torch

    out: List[Optional[float]] = [None] * len(rows)
    todo = [(k, list(h), list(x[:horizon])) for k, (h, x) in enumerate(rows) if len(x) and len(h)]
    todo.sort(key=lambda r: -(len(r[1]) + len(r[2])))
    device = model.device
    for lo in range(0, len(todo), batch_size):
        batch = todo[lo : lo + batch_size]
        width = max(len(h) + len(x) for _, h, x in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (_, h, x) in enumerate(batch):
            seq = h + x
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.inference_mode():
            logp = (
                model(input_ids=ids.to(device), attention_mask=mask.to(device))
                .logits.float()
                .log_softmax(-1)
            )
        for r, (k, h, x) in enumerate(batch):
            pos = torch.arange(len(h) - 1, len(h) - 1 + len(x), device=logp.device)
            nll = (-logp[r, pos, torch.tensor(x, device=logp.device)]).double().cpu().tolist()
            out[k] = weighted_loss(dict(enumerate(nll)), 0, len(x), horizon)
    return out


@register_filter("loss")
class LossFilter(CandidateFilter):
    """The paper's filter on sampled outputs: for each call c with result r at its place in the
    output, L+ = L(e(c, r)), L- = min(L(empty), L(e(c, empty))), score = L- - L+ (the
    candidate's score: the smallest over its calls that ran; None without such a call).

    ``placement="prefix"`` (the paper): the call is a prefix of the text, [start] z x, and the
    loss is over the tokens x_i.. that follow the call's place in x (the text without the
    call); ``"inline"``: the call stays where the model wrote it and the loss is over the tokens
    after it. ``horizon``: weighted tokens (paper: 5). ``model``: score with this model (an
    alias or folder, e.g. the base model for ``prefix``) instead of the current policy."""

    default_schedule = (0.0, 0.25, 0.5)

    def __init__(
        self,
        context: Optional[FilterContext] = None,
        placement: str = "inline",
        horizon: int = 5,
        batch_size: int = 16,
        model: Optional[str] = None,
    ):
        super().__init__(context)
        self.check_values(placement=placement, horizon=horizon)
        if model:
            from toolformer.models import load_model

            scorer = load_model(str(model))
            self.context = FilterContext(model=scorer[0], tokenizer=scorer[1])
        self.placement, self.horizon, self.batch_size = placement, int(horizon), int(batch_size)

    @classmethod
    def check_values(cls, placement: str = "inline", horizon: int = 5, **_: Any) -> None:
        if placement not in PLACEMENTS:
            raise UserError(
                f"loss filter: placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}"
            )
        try:
            bad = int(horizon) < 1
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise UserError(f"loss filter: horizon must be an integer >= 1, got {horizon!r}")

    def _rows(
        self,
        cand: Candidate,
        call: Dict[str, Any],
        enc: Callable[[str], List[int]],
        start: List[int],
    ) -> List[Tuple[List[int], List[int]]]:
        """(head, x) rows for L+, L(empty), L(e(c, empty)) of one call."""
        before = cand.prompt + cand.text[: call["start"]]
        after = cand.text[call["end"] :]
        if self.placement == "inline":
            x = enc(after)
            return [
                (start + enc(before + Candidate.call_text(call)), x),
                (start + enc(before.rstrip(" ") if after.startswith(" ") else before), x),
                (start + enc(before + Candidate.call_text(call, with_result=False)), x),
            ]
        plain_before = before.rstrip(" ") if after.startswith(" ") else before
        ctx = enc(plain_before)
        x = enc(after)
        z_plus = enc(Candidate.call_text(call))
        z_empty = enc(Candidate.call_text(call, with_result=False))
        return [(start + z_plus + ctx, x), (start + ctx, x), (start + z_empty + ctx, x)]

    def scores(self, candidates: Sequence[Candidate]) -> List[Optional[float]]:
        from toolformer.data_aug.prefix_cache import encode, start_ids

        model, tok = self.context.policy()
        start = start_ids(tok)
        enc = lambda s: encode(tok, s)  # noqa: E731
        rows: List[Tuple[List[int], List[int]]] = []
        owner: List[int] = []
        for k, cand in enumerate(candidates):
            for call in cand.ok_calls:
                rows.extend(self._rows(cand, call, enc, start))
                owner.append(k)
        losses = weighted_losses(model, rows, self.horizon, self.batch_size)
        best: List[Optional[float]] = [None] * len(candidates)
        for n, k in enumerate(owner):
            plus, empty, no_result = losses[3 * n : 3 * n + 3]
            if plus is None or empty is None or no_result is None:
                continue
            margin = min(empty, no_result) - plus
            best[k] = margin if best[k] is None else min(best[k], margin)
        return best


# --------------------------------------------------------------------------- answer


@register_filter("answer")
class AnswerFilter(CandidateFilter):
    """STaR's outcome filter: 1.0 when the candidate made at least one call, every call ran, and
    its answer matches the gold one under the eval harness's metric (``metric``, default
    ``math``: the first number of the output, a call's result included); else 0.0. Needs gold
    answers (None for a candidate without one).

    Against right answers for wrong reasons, by default (``grounded=True``) every number in a
    call's arguments must be one the text already holds (the prompt, the output before the call,
    or an earlier call's result), and a Calculator call must compute something (an operator
    between two numbers): ``[Calculator(72) -> 72]`` copies a guess and teaches nothing."""

    default_schedule = (0.5,)
    needs_gold = True

    def __init__(
        self,
        context: Optional[FilterContext] = None,
        metric: str = "math",
        require_call: bool = True,
        grounded: bool = True,
    ):
        super().__init__(context)
        from toolformer.eval.metrics import METRICS

        self.check_values(metric=metric)
        self.metric, self.require_call = METRICS.canonical(metric), bool(require_call)
        self.grounded = bool(grounded)

    @classmethod
    def check_values(cls, metric: str = "math", **_: Any) -> None:
        from toolformer.eval.metrics import METRICS

        spec = METRICS.get(metric)  # unknown: one line with "did you mean"
        if getattr(spec, "scorer", None) is None:
            raise UserError(f"answer filter: metric {metric!r} does not score generated answers")

    @staticmethod
    def is_grounded(cand: Candidate) -> bool:
        """Every number of every call's arguments appears before the call (values compared, so
        "1,000" matches "1000"); a Calculator call has an operator.

        Operands are read one by one (:func:`~toolformer.text.numbers.operands`): the harness's
        answer reader takes ``36 / 3`` for the fraction 12, which made every division call one
        number and dropped it here (no round ever kept a division before this was fixed). The
        text before a call is read with numbers written in words too ("a dozen" grounds 12)."""
        from toolformer.text.numbers import answer_numbers, operands

        for call in cand.calls:
            before = cand.prompt + cand.text[: call.get("start") or 0]
            known = {round(n.value, 6) for n in answer_numbers(before)} | set(
                operands(before, words=True)
            )
            args = str(call.get("args", ""))
            nums = operands(args)
            if any(n not in known for n in nums):
                return False
            if call.get("tool") == "Calculator" and (
                len(nums) < 2 or not re.search(r"\d\s*[-+*/x×÷]\s*[(\d.]", args)
            ):
                return False
        return True

    def answer_correct(self, cand: Candidate) -> bool:
        """Whether the output (its calls' results included) answers right: ``metric`` for a
        number gold answer, the lenient ``contains`` metric (a gold alias among the first 20
        words, as the dateset task scores) for a list of aliases (facts, dates); an item no tool
        helps (``[]``) has no answer to match."""
        from toolformer.eval.metrics import score_output

        if isinstance(cand.gold, (list, tuple)):
            return (
                bool(cand.gold)
                and score_output("contains", cand.text, list(cand.gold), calls=cand.calls).correct
            )
        return score_output(self.metric, cand.text, cand.gold, calls=cand.calls).correct

    def calls_sound(self, cand: Candidate) -> bool:
        """Every call ran and closed, and (``grounded``) its numbers come from the text."""
        if len(cand.ok_calls) != len(cand.calls):
            return False
        return not (self.grounded and not self.is_grounded(cand))

    def scores(self, candidates: Sequence[Candidate]) -> List[Optional[float]]:
        out: List[Optional[float]] = []
        for cand in candidates:
            if cand.gold is None:
                out.append(None)
                continue
            if (self.require_call and not cand.calls) or not self.calls_sound(cand):
                out.append(0.0)
                continue
            out.append(1.0 if self.answer_correct(cand) else 0.0)
        return out


@register_filter("when")
class WhenFilter(AnswerFilter):
    """Improve that teaches when to call: keep the fewest calls that make the answer right.

    Per item (the Grow samples of one prompt): a sample without a call is right when it answers
    right (the answer filter's check), or, for an item no tool helps (``tools`` ``[]``), when it
    simply has no call. A sample with a call counts only where every sample of the item without a
    call is wrong (the same model without the call fails), every call ran (grounded, as the
    answer filter's), each called tool fits the item (``tools``; an item without ``tools`` takes
    any), and the answer is right; an item no tool helps never keeps a call.

    Scores: 1.0 for a right sample without a call, ``1 - call_cost * calls`` for a kept sample
    with calls (fewer calls first), 0.0 otherwise; None without gold. Needs gold answers."""

    default_schedule = (0.5,)
    keeps_plain = True

    def __init__(
        self,
        context: Optional[FilterContext] = None,
        metric: str = "math",
        grounded: bool = True,
        call_cost: float = 0.01,
    ):
        super().__init__(context, metric=metric, require_call=False, grounded=grounded)
        self.check_values(metric=metric, call_cost=call_cost)
        self.call_cost = float(call_cost)

    @classmethod
    def check_values(cls, metric: str = "math", call_cost: float = 0.01, **_: Any) -> None:
        AnswerFilter.check_values(metric=metric)
        try:
            bad = not 0 <= float(call_cost) < 0.5
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise UserError(
                f"when filter: call_cost must be a number in [0, 0.5), got {call_cost!r}"
            )

    def plain_right(self, cand: Candidate) -> bool:
        """A sample without a call that is right (see the class docstring)."""
        if cand.calls:
            return False
        if cand.tools is not None and not cand.tools:  # no tool helps: no call is the answer
            return True
        return cand.gold is not None and self.answer_correct(cand)

    def scores(self, candidates: Sequence[Candidate]) -> List[Optional[float]]:
        solved_plain = {c.doc_id for c in candidates if c.gold is not None and self.plain_right(c)}
        out: List[Optional[float]] = []
        for cand in candidates:
            if cand.gold is None:
                out.append(None)
            elif not cand.calls:
                out.append(1.0 if self.plain_right(cand) else 0.0)
            elif (
                cand.doc_id in solved_plain
                or (cand.tools is not None and not cand.tools)
                or not self.calls_sound(cand)
                or (cand.tools and any(x.get("tool") not in cand.tools for x in cand.calls))
                or not self.answer_correct(cand)
            ):
                out.append(0.0)
            else:
                out.append(1.0 - self.call_cost * len(cand.calls))
        return out


# --------------------------------------------------------------------------- reward


def load_reward_model(name_or_path: str, dtype: str = "fp32") -> Tuple[Any, Any]:
    """``(model, tokenizer)`` of a Hugging Face sequence-classification model.

    Raises :class:`UserError` (one line) when the checkpoint is not a classifier: its config
    names no ``*ForSequenceClassification`` architecture (loading a causal LM with
    ``AutoModelForSequenceClassification`` would silently add a random head)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from toolformer.models import load_pretrained
    from toolformer.models import prepare as _prepare
    from toolformer.paths import torch_dtype as _torch_dtype

    target = _prepare(name_or_path)
    try:
        config = AutoConfig.from_pretrained(target, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"could not load reward model {name_or_path!r}: {str(exc).splitlines()[0]}"
        ) from None
    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise UserError(
            f"reward model {name_or_path!r} is not a sequence-classification model "
            f"(architectures: {', '.join(archs) or 'none'}); pass a checkpoint saved from "
            "AutoModelForSequenceClassification"
        )
    # the project's one safe loader: safetensors only unless pickle weights are trusted
    model = load_pretrained(
        AutoModelForSequenceClassification, target, name_or_path, dtype=_torch_dtype(dtype)
    )
    tok = load_pretrained(AutoTokenizer, target, name_or_path, weights=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


@register_filter("reward")
class RewardFilter(CandidateFilter):
    """Reward-model margin: r(prompt + text with its calls) - r(prompt + text without them).

    The interface: any checkpoint that ``AutoModelForSequenceClassification`` loads (``model``:
    a folder or a cached HF id); r(text) is the logit of label ``label`` (default: the last
    label, i.e. "positive" in a two-label classifier; the only one in a one-logit reward model).
    Texts are truncated from the left to ``max_length`` tokens. None for a candidate without a
    call that ran."""

    default_schedule = (0.0, 0.5, 1.0)

    def __init__(
        self,
        context: Optional[FilterContext] = None,
        model: Optional[str] = None,
        label: Optional[int] = None,
        batch_size: int = 8,
        max_length: int = 512,
        dtype: str = "fp32",
    ):
        super().__init__(context)
        self.check_values(model=model)
        self.model, self.tokenizer = load_reward_model(model, dtype)
        n = int(self.model.config.num_labels)
        self.label = n - 1 if label is None else int(label)
        if not 0 <= self.label < n:
            raise UserError(
                f"reward filter: label {self.label} is out of range for a model with {n} labels"
            )
        self.batch_size, self.max_length = int(batch_size), int(max_length)

    @classmethod
    def check_values(cls, model: Optional[str] = None, **_: Any) -> None:
        if not model:
            raise UserError(
                "the reward filter needs a reward model: the option model=PATH in "
                "SelfTrainConfig.improve.filter_options",
                field="SelfTrainConfig.improve.filter_options",
            )

    def rewards(self, texts: Sequence[str]) -> List[float]:
        """r(text) for each text: the ``label`` logit."""
        import torch

        out: List[float] = []
        self.tokenizer.truncation_side = "left"
        for lo in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[lo : lo + self.batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            with torch.inference_mode():
                logits = self.model(**{k: v.to(self.model.device) for k, v in enc.items()}).logits
            out.extend(logits[:, self.label].float().cpu().tolist())
        return out

    def scores(self, candidates: Sequence[Candidate]) -> List[Optional[float]]:
        judged = [k for k, c in enumerate(candidates) if c.ok_calls]
        texts = [
            t
            for k in judged
            for t in (
                candidates[k].training_text(),
                candidates[k].prompt + candidates[k].without_calls(),
            )
        ]
        r = self.rewards(texts)
        out: List[Optional[float]] = [None] * len(candidates)
        for n, k in enumerate(judged):
            out[k] = r[2 * n] - r[2 * n + 1]
        return out

    def close(self) -> None:
        self.model = None
