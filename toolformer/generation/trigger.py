"""A call trigger calibrated on a dev split: *when* to call.

The paper (Section 4) opens a call wherever ``[`` is among the ``k`` most likely next tokens
(k = 10). A small self-trained model puts ``[`` near the top almost everywhere, so that rule calls
a tool on every question. The trigger here adds a threshold on p(``[``) (the probability mass of
the tokens that open a call, :func:`~toolformer.generation.rules.call_scores`) and picks the pair
``(call_top_k, call_threshold)`` that gives the best call F1 on dev items whose expected tools are
known (an item "expects a call" when some tool fits it).

The calibration is exact for greedy decoding and needs one pass per item: until the trigger fires
for the first time, decoding with it is identical to decoding with tools disabled, so an item gets
a call under ``(k, t)`` iff somewhere on its tools-disabled greedy path ``rank('[') < k`` and
``p('[') >= t`` hold at one step (:func:`trace_call_scores` records both per step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from toolformer.errors import UserError
from toolformer.generation.detok import find_stop
from toolformer.generation.rules import _TokenTensors, _vocab_for, at_word_start, call_scores
from toolformer.generation.types import GenerationConfig
from toolformer.models import manifest_call_trigger

PAPER_TOP_K = 10
TOP_K_GRID = (1, 2, 3, 5, 10, 20, 50)
# What a calibration maximises. Call F1 alone prefers "always call" whenever most dev items
# expect a call (a 3:1 split did: F1 0.857 for calling everywhere); macro F1 (the mean of the
# F1 of "call" and of "no call") and balanced accuracy weigh both decisions alike.
OBJECTIVES = ("macro_f1", "f1", "balanced_accuracy")


@dataclass
class CallTrace:
    """One item's tools-disabled greedy path: per step where a call may open, ``p('[')`` (a
    probability) and the rank of the best ``[`` token (0 = most likely)."""

    p_call: List[float]
    rank: List[int]

    def fires(self, top_k: int, threshold: float) -> bool:
        """Whether a trigger ``(top_k, threshold)`` opens a call somewhere on this path."""
        return any(r < top_k and p >= threshold for p, r in zip(self.p_call, self.rank))


@dataclass
class TriggerCalibration:
    """The chosen trigger and how it scored on the dev items (call F1: a call where a tool fits)."""

    call_top_k: int
    call_threshold: float
    f1: float
    precision: float
    recall: float
    call_rate: float
    n: int
    paper_f1: float  # the paper's rule (top-10, no threshold) on the same items
    objective: str = "f1"  # what was maximised (OBJECTIVES)
    score: Optional[float] = None  # the objective's value for the chosen trigger
    paper_score: Optional[float] = None  # and for the paper's rule

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def apply(self, config: GenerationConfig) -> GenerationConfig:
        """``config`` with this trigger."""
        from dataclasses import replace

        return replace(config, call_top_k=self.call_top_k, call_threshold=self.call_threshold)


def trace_call_scores(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    stop: str = "\n",
    batch_size: int = 8,
) -> List[CallTrace]:
    """Greedy decode each prompt with tools disabled (every ``[`` token blocked), recording at
    each step where a call may open (a word or number starts: the engine's rule) p(``[``) and its
    rank, until ``stop`` appears in the output or ``max_new_tokens`` tokens.

    Returns one :class:`CallTrace` per prompt, in order. ``model``: a causal LM; runs in
    batches of ``batch_size`` left-padded prompts on one KV cache (``model.generate``).
    """
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    vocab = _vocab_for(tokenizer, model)
    sets = _TokenTensors.build(vocab, model.device)
    traces: List[CallTrace] = []

    class _Record(LogitsProcessor):
        def __init__(self, rows: int):
            self.steps: List[Tuple[List[float], List[int], List[bool]]] = []
            self.rows = rows

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            last = tokenizer.batch_decode(input_ids[:, -1:], clean_up_tokenization_spaces=False)
            in_word = [bool(t) and (t[-1].isalnum()) for t in last]
            scores = scores.float()
            if sets.brackets.numel():
                may_open = at_word_start(scores, sets.brackets, sets.continues_word, in_word)
                p_call, rank = call_scores(scores, sets.brackets)
                self.steps.append((p_call.tolist(), rank.tolist(), may_open))
                scores[:, sets.brackets] = float("-inf")
            return scores

    old_side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
            record = _Record(len(chunk))
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    logits_processor=LogitsProcessorList([record]),
                    pad_token_id=pad,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for row in range(len(chunk)):
                length = _steps_before_stop(tokenizer, new[row].tolist(), stop, pad, vocab.eos_ids)
                p, r = [], []
                for step, (ps, ranks, may) in enumerate(record.steps[:length]):
                    if may[row]:
                        p.append(float(ps[row]))
                        r.append(int(ranks[row]))
                traces.append(CallTrace(p, r))
    finally:
        tokenizer.padding_side = old_side
    return traces


def _steps_before_stop(
    tokenizer: Any, ids: List[int], stop: str, pad: Optional[int], eos: Any
) -> int:
    """How many generated tokens belong to the output: up to and including the one that makes
    ``stop`` appear after some text (the engine's rule, :func:`find_stop`), or up to EOS."""
    text = ""
    for i, tok in enumerate(ids):
        if tok in eos:
            return i + 1
        text += tokenizer.decode([tok], clean_up_tokenization_spaces=False)
        if stop and find_stop(text, 0, len(text), (stop,)) is not None:
            return i + 1
    return len(ids)


def _score(fired: Sequence[bool], expects: Sequence[bool]) -> Tuple[float, float, float, float]:
    """``(f1, precision, recall, call_rate)`` of call decisions against expected calls."""
    tp = sum(f and e for f, e in zip(fired, expects))
    fp = sum(f and not e for f, e in zip(fired, expects))
    fn = sum(e and not f for f, e in zip(fired, expects))
    n = len(fired)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return f1, precision, recall, (tp + fp) / n if n else 0.0


def objective_score(fired: Sequence[bool], expects: Sequence[bool], objective: str) -> float:
    """The value of ``objective`` (one of :data:`OBJECTIVES`) for call decisions ``fired``
    against ``expects`` (whether a tool fits each item); in [0, 1], higher is better.

    ``f1``: F1 of "call"; ``macro_f1``: the mean of the F1 of "call" and of "no call";
    ``balanced_accuracy``: the mean of the recall of both (Brodersen et al. 2010).
    Raises :class:`UserError` for an unknown objective."""
    check_objective(objective)
    call = _score(fired, expects)
    if objective == "f1":
        return call[0]
    no_call = _score([not f for f in fired], [not e for e in expects])
    if objective == "macro_f1":
        return (call[0] + no_call[0]) / 2
    return (call[2] + no_call[2]) / 2


def check_objective(objective: str) -> None:
    """Raise :class:`UserError` unless ``objective`` is one of :data:`OBJECTIVES`."""
    if objective not in OBJECTIVES:
        raise UserError(
            f"unknown calibration objective {objective!r}; use one of {', '.join(OBJECTIVES)}"
        )


def _check_labels(expects_call: Sequence[bool]) -> None:
    """Raise :class:`UserError` unless there are items both with and without a fitting tool
    (call F1 cannot tell settings apart otherwise)."""
    if not expects_call:
        raise UserError("trigger calibration needs dev items; none were given")
    if all(expects_call) or not any(expects_call):
        raise UserError(
            "trigger calibration needs dev items both with and without a fitting "
            "tool; add no-tool items (or tool items) to the dev split"
        )


def calibrate(
    traces: Sequence[CallTrace],
    expects_call: Sequence[bool],
    top_k_grid: Sequence[int] = TOP_K_GRID,
    objective: str = "f1",
) -> TriggerCalibration:
    """The ``(call_top_k, call_threshold)`` with the best ``objective`` (:func:`objective_score`:
    call F1 by default) on these items.

    ``expects_call[i]``: whether a tool fits item ``i``. Thresholds tried: 0 and each item's
    largest p(``[``) (the values at which a decision changes). Ties go to the paper's rule, then
    to the lower threshold and the larger k (fewer settings away from the paper).

    Raises :class:`UserError` when there are no items, or when the items all expect a call or
    all expect none (F1 cannot tell settings apart then).
    """
    if len(traces) != len(expects_call):
        raise ValueError("traces and expects_call differ in length")
    _check_labels(expects_call)
    check_objective(objective)  # an unknown objective: one line before any work
    thresholds = sorted({0.0} | {max(t.p_call) for t in traces if t.p_call})
    best: Optional[Tuple[Tuple[float, int, float, int], TriggerCalibration]] = None
    paper_fired = [t.fires(PAPER_TOP_K, 0.0) for t in traces]
    paper = _score(paper_fired, expects_call)[0]
    paper_score = objective_score(paper_fired, expects_call, objective)
    for k in top_k_grid:
        for threshold in thresholds:
            fired = [t.fires(k, threshold) for t in traces]
            f1, precision, recall, rate = _score(fired, expects_call)
            value = objective_score(fired, expects_call, objective)
            is_paper = k == PAPER_TOP_K and threshold == 0.0
            key = (round(value, 9), int(is_paper), -threshold, k)
            if best is None or key > best[0]:
                best = (
                    key,
                    TriggerCalibration(
                        k,
                        float(threshold),
                        f1,
                        precision,
                        recall,
                        rate,
                        len(traces),
                        paper,
                        objective,
                        value,
                        paper_score,
                    ),
                )
    assert best is not None
    return best[1]


def resolve_trigger(config: GenerationConfig, model: str, explicit: bool) -> GenerationConfig:
    """``config`` with ``model``'s calibrated trigger (its manifest's ``call_trigger``) unless
    the user set ``call_top_k``/``call_threshold`` (``explicit``) or the model has none."""
    from dataclasses import replace

    if explicit:
        return config
    trigger = manifest_call_trigger(model)
    if trigger is None:
        return config
    return replace(
        config, call_top_k=trigger["call_top_k"], call_threshold=trigger["call_threshold"]
    )


def expects_call(item: Dict[str, Any], where: str) -> bool:
    """Whether a tool fits a dev item: its ``"tools"`` list is non-empty.

    Raises :class:`UserError` (naming ``where``) when the item has no ``"tools"`` list.
    """
    tools = item.get("tools") if isinstance(item, dict) else None
    if not isinstance(tools, list):
        raise UserError(
            f"{where}: a calibration item needs 'tools' (a list of the tool names "
            "that fit it, [] for none)"
        )
    return bool(tools)


def calibration_prompts(
    items: Sequence[Dict[str, Any]], template: str = "Q: {question}\nA:"
) -> Tuple[List[str], List[bool]]:
    """``(prompts, expects_call)`` of dev items (rows with ``question`` and ``tools``).

    Raises :class:`UserError` on an item without a ``question`` text or a ``tools`` list, and
    when the items cannot calibrate (none, or all with / all without a fitting tool).
    """
    labels, prompts = [], []
    for i, item in enumerate(items):
        labels.append(expects_call(item, f"item {i + 1}"))
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"item {i + 1}: a calibration item needs a 'question' (text)")
        prompts.append(template.format(question=question.strip()))
    _check_labels(labels)
    return prompts, labels


def calibrate_trigger(
    model: Any,
    tokenizer: Any,
    items: Sequence[Dict[str, Any]],
    template: str = "Q: {question}\nA:",
    max_new_tokens: int = 32,
    batch_size: int = 8,
    objective: str = "f1",
) -> TriggerCalibration:
    """Calibrate the call trigger of ``model`` on dev ``items`` (rows with ``question`` and
    ``tools``, e.g. a self-training dev split): :func:`trace_call_scores` on the prompts made
    with ``template``, then :func:`calibrate` maximising ``objective``.

    Raises :class:`UserError` as :func:`calibration_prompts` does.
    """
    prompts, labels = calibration_prompts(items, template)
    traces = trace_call_scores(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    return calibrate(traces, labels, objective=objective)
