"""Token-level perplexity over a long text with a sliding window (tools disabled).

The text is tokenized once; windows of ``max_length`` tokens move ``stride`` tokens at a time
and each scores only the tokens that the previous one did not, so every token after the first
is scored once, with at least ``max_length - stride`` tokens of context (the Hugging Face
perplexity recipe). ``stride == max_length`` gives back-to-back chunks (sharing one token, so
that no token goes unscored); the default ``max_length / 2`` costs twice that.

"Tools disabled" follows the paper's "Toolformer (disabled)": p(``[``) is set to 0, i.e. each
token's probability is renormalised over the vocabulary without the call-opening tokens
(``p(x) / (1 - p([))``, ``[`` being every token the generator blocks: those opening a
bracket). A ``[`` that is really in the text keeps its raw probability. The raw
perplexity (no renormalisation) is reported too; for a model that never learned calls the two
agree closely. Perplexities are per token of the model's tokenizer (named in the result), so
they compare across models only with the same tokenizer; ``word_perplexity`` (the same total
log-likelihood over whitespace-separated words) compares across tokenizers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from toolformer.errors import UserError


@dataclass(frozen=True)
class Window:
    """Tokens ``[begin, end)`` go in; the last ``n_targets`` of them are scored."""

    begin: int
    end: int
    n_targets: int


def sliding_windows(n_tokens: int, max_length: int, stride: int) -> List[Window]:
    """Windows that score every token but the first exactly once.

    The first window scores its ``max_length - 1`` tokens; each later one scores the next
    ``min(stride, max_length - 1)`` tokens with the tokens before them as context, up to
    ``max_length`` in all (the last window reaches back for a full context too).
    """
    if max_length < 2:
        raise UserError(f"perplexity max_length must be at least 2, got {max_length}")
    if not 1 <= stride <= max_length:
        raise UserError(f"perplexity stride must be in [1, max_length={max_length}], got {stride}")
    if n_tokens < 2:
        return []
    step = min(stride, max_length - 1)
    end = min(max_length, n_tokens)
    windows = [Window(0, end, end - 1)]
    while end < n_tokens:
        new_end = min(end + step, n_tokens)
        windows.append(Window(max(0, new_end - max_length), new_end, new_end - end))
        end = new_end
    return windows


def _batches(windows: Sequence[Window], rows: int) -> Iterable[List[Window]]:
    """Windows of the same shape together, at most ``rows`` per batch, in text order."""
    current: List[Window] = []
    for w in windows:
        shape = (w.end - w.begin, w.n_targets)
        if current and (
            len(current) == rows
            or shape != (current[0].end - current[0].begin, current[0].n_targets)
        ):
            yield current
            current = []
        current.append(w)
    if current:
        yield current


def perplexity(
    model: Any,
    tokenizer: Any,
    text: str,
    max_length: Optional[int] = 1024,
    stride: Optional[int] = None,
    batch_size: int = 4,
    limit: Optional[int] = None,
    progress: bool = True,
    start_token: Optional[str] = None,
) -> Dict[str, Any]:
    """Perplexity of ``model`` on ``text`` (CRLF normalised); ``limit``: the first N windows.

    The text follows ``start_token`` (None: the token the model saw before a plain text,
    :func:`toolformer.models.default_start_token`; '' for none, and then the first text token
    goes unscored), the same rule as annotation's scoring.

    Returns perplexity (calls disabled), perplexity_raw, word_perplexity, the counts of scored
    tokens and words, the window settings, the tokenizer's name and the seconds taken.
    """
    start = time.perf_counter()
    text = text.replace("\r\n", "\n")
    max_length, stride = _window_settings(model, max_length, stride)
    ids, offsets, start_id = _tokenize(tokenizer, text, start_token)
    windows = sliding_windows(len(ids), max_length, stride)
    if not windows:
        raise UserError("the text is too short for perplexity (needs at least 2 tokens)")
    if limit is not None:
        windows = windows[:limit]
    call_ids = _call_token_ids(tokenizer)
    nll_raw, nll_off, n_scored = _score_windows(model, ids, windows, call_ids, batch_size, progress)
    n_words = _words_covered(text, offsets, windows)
    return {
        "perplexity": math.exp(nll_off / n_scored),
        "perplexity_raw": math.exp(nll_raw / n_scored),
        "word_perplexity": math.exp(nll_off / n_words),
        "nll_per_token": nll_off / n_scored,
        "tokens_scored": n_scored,
        "words": n_words,
        "windows": len(windows),
        "max_length": max_length,
        "stride": stride,
        "tokenizer": getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
        "start_token": None if start_id is None else tokenizer.convert_ids_to_tokens(start_id),
        "vocab_size": len(tokenizer),
        "call_token_ids": call_ids.tolist(),
        "seconds": time.perf_counter() - start,
    }


def _window_settings(
    model: Any, max_length: Optional[int], stride: Optional[int]
) -> Tuple[int, int]:
    """``(max_length, stride)`` in tokens: the window capped at the model's context (1024 when
    its config names none; None means the whole context), the stride half the window unless
    given."""
    context = getattr(model.config, "max_position_embeddings", None) or 1024
    max_length = min(max_length or context, context)
    return max_length, stride or max(1, max_length // 2)


def _tokenize(
    tokenizer: Any, text: str, start_token: Optional[str]
) -> Tuple[List[int], List[Tuple[int, int]], Optional[int]]:
    """``(ids, offsets, start_id)``: the text's token ids after the start token (if any), each
    token's character span in ``text`` (``(0, 0)`` for the start token), and the start token's
    id (None when there is none)."""
    from toolformer.models import start_token_id

    enc = tokenizer(text, return_offsets_mapping=True, verbose=False, add_special_tokens=False)
    start_id = start_token_id(tokenizer, start_token)
    head = [] if start_id is None else [start_id]
    ids: List[int] = head + list(enc["input_ids"])
    offsets: List[Tuple[int, int]] = [(0, 0)] * len(head) + list(enc["offset_mapping"])
    return ids, offsets, start_id


def _call_token_ids(tokenizer: Any) -> Any:
    """The tokens the generator blocks when tools are disabled (every one that opens a
    bracket), as a sorted 1-D long tensor."""
    import torch

    from toolformer.generation import call_token_ids

    return torch.tensor(sorted(call_token_ids(tokenizer)[1]), dtype=torch.long)


def _batch_rows(model: Any, windows: Sequence[Window], batch_size: int) -> int:
    """Windows per forward pass: at most ``batch_size``, fewer when one batch's fp32 logits
    would pass ~256 MB."""
    vocab = model.get_output_embeddings().weight.shape[0]
    widest = max(w.n_targets + 1 for w in windows)
    return max(1, min(batch_size, (1 << 26) // (widest * vocab)))


def _score_windows(
    model: Any,
    ids: List[int],
    windows: Sequence[Window],
    call_ids: Any,
    batch_size: int,
    progress: bool,
) -> Tuple[float, float, int]:
    """``(nll_raw, nll_off, n_scored)``: the summed negative log-likelihood (nats) of every
    window's scored tokens, raw and with calls disabled, and how many tokens were scored."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    rows = _batch_rows(model, windows, batch_size)
    ids_t = torch.tensor(ids, dtype=torch.long)
    nll_raw = nll_off = 0.0
    n_scored = 0
    bar = tqdm(
        total=len(windows),
        desc="wikitext perplexity",
        unit="win",
        disable=not progress,
        leave=False,
    )
    with torch.inference_mode():
        for batch in _batches(windows, rows):
            lp, lp_off = _batch_log_probs(model, ids_t, batch, call_ids, device)
            nll_raw -= lp.sum().item()
            nll_off -= lp_off.sum().item()
            n_scored += lp.numel()
            bar.update(len(batch))
    bar.close()
    return nll_raw, nll_off, n_scored


def _batch_log_probs(
    model: Any, ids_t: Any, batch: Sequence[Window], call_ids: Any, device: Any
) -> Tuple[Any, Any]:
    """Log-probabilities of the scored tokens of a batch of same-shape windows, shape
    ``(len(batch), n_targets)``: raw, and renormalised without the call-opening tokens
    (``log p - log(1 - p([))``; a target that is itself such a token keeps its raw value)."""
    import torch

    length = batch[0].end - batch[0].begin
    keep = min(batch[0].n_targets + 1, length)
    inputs = torch.stack([ids_t[w.begin : w.end] for w in batch]).to(device)
    logits = model(input_ids=inputs, logits_to_keep=keep, use_cache=False).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = inputs[:, length - keep + 1 :]
    lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    lp_off = lp
    if len(call_ids):
        p_call = logp[..., call_ids.to(device)].exp().sum(-1).clamp(max=1 - 1e-6)
        is_call = torch.isin(targets, call_ids.to(device))
        lp_off = torch.where(is_call, lp, lp - torch.log1p(-p_call))
    return lp, lp_off


def _words_covered(text: str, offsets: Sequence[Tuple[int, int]], windows: Sequence[Window]) -> int:
    """Whitespace-separated words of ``text`` up to the last scored token (at least 1)."""
    covered = offsets[windows[-1].end - 1][1]
    return max(1, len(text[:covered].split()))
