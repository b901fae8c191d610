"""Weighted losses and the keep rule (paper, Section 2, "Filtering API Calls").

L_i(z) = sum_{j >= i} w_{j-i} * -log p(x_j | z, x_1..x_{j-1}), with the call z given as a PREFIX
of the text (``[start] z x``), w~_t = max(0, 1 - t / horizon) (horizon 5: 1 - 0.2 t) and
w_t = w~_t / sum_s w~_s. Near the end of a text fewer than ``horizon`` tokens follow position i:
the weights are normalised over the tokens that exist, so L_i stays a weighted mean NLL.

L+ = L_i(e(c, r)), L- = min(L_i(empty), L_i(e(c, empty))); a call is kept when L- - L+ >= tau_f.

:class:`Scorer` computes many L_i(z) at once: one row per distinct prefix z (a call text shared
by several positions is encoded once), rows cut after the last weighted token (i + horizon - 1)
and batched with right padding (causal attention never looks at the padding after a token), and
logits computed only for the weighted tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple


def loss_weights(horizon: int = 5) -> List[float]:
    """Unnormalised weights w~_t = max(0, 1 - t / horizon) for t < horizon."""
    if horizon < 1:
        raise ValueError(f"weight horizon must be >= 1, got {horizon}")
    return [max(0.0, 1.0 - t / horizon) for t in range(horizon)]


def weighted_loss(nll: Mapping[int, float], i: int, n: int, horizon: int = 5) -> float:
    """L_i from per-token NLLs ``nll[j]`` (j = token index), over the tokens i..n-1 that exist."""
    w = loss_weights(horizon)[: max(0, n - i)]
    if not w:
        raise ValueError(f"no token follows position {i} (text of {n} tokens)")
    return sum(wt * nll[i + t] for t, wt in enumerate(w)) / sum(w)


def keep_decision(
    loss_plus: float, loss_empty: float, loss_no_result: float, tau_f: float
) -> Tuple[bool, float]:
    """(keep, L-) for one call: L- = min(L_i(empty), L_i(e(c, empty))); keep if L- - L+ >= tau_f."""
    loss_minus = min(loss_empty, loss_no_result)
    return loss_minus - loss_plus >= tau_f, loss_minus


@dataclass
class ScoreStats:
    """Work done by a :class:`Scorer` (for throughput figures)."""

    rows: int = 0
    forwards: int = 0
    tokens: int = 0  # real (unpadded) tokens run through the model
    padded_tokens: int = 0
    seconds: float = 0.0


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_batch_tokens: int, overhead: int = 32
) -> List[Tuple[int, int]]:
    """Split rows sorted by decreasing length into batches ``[lo, hi)`` that minimise padded
    tokens plus ``overhead`` token-equivalents per forward pass, within the row/token caps."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[k]: cost of the first k rows
    cut = [0] * (n + 1)
    for hi in range(1, n + 1):
        for lo in range(hi - 1, -1, -1):
            size = hi - lo
            if size > batch_size or (size > 1 and size * lengths[lo] > max_batch_tokens):
                break
            cost = best[lo] + size * lengths[lo] + overhead
            if cost < best[hi]:
                best[hi], cut[hi] = cost, lo
    out: List[Tuple[int, int]] = []
    hi = n
    while hi > 0:
        out.append((cut[hi], hi))
        hi = cut[hi]
    return out[::-1]


class Scorer:
    """Batched L_i(z) for many prefixes z and positions i of one text."""

    def __init__(
        self,
        parts: Any,
        start: Sequence[int] = (),
        horizon: int = 5,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        pad_id: int = 0,
    ):
        self.parts = parts
        self.start = list(start)
        self.horizon = horizon
        self.batch_size = max(1, batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.pad_id = pad_id
        self.stats = ScoreStats()

    def token_nll(
        self,
        doc_ids: Sequence[int],
        prefixes: Sequence[Sequence[int]],
        needed: Sequence[Iterable[int]],
    ) -> List[Dict[int, float]]:
        """-log p(x_j | start, prefix, x_<j) for each prefix and each j in its ``needed`` set."""
        import time

        import torch

        t0 = time.perf_counter()
        n = len(doc_ids)
        rows = []
        for r, (prefix, js) in enumerate(zip(prefixes, needed)):
            js = sorted({j for j in js if 0 <= j < n})
            head = len(self.start) + len(prefix)
            js = [j for j in js if head + j >= 1]  # x_0 needs something before it
            if js:
                ids = self.start + list(prefix) + list(doc_ids[: js[-1] + 1])
                rows.append((r, ids, head, js))
        out: List[Dict[int, float]] = [dict() for _ in prefixes]
        rows.sort(key=lambda row: -len(row[1]))
        device = self.parts.device
        for lo, hi in plan_batches(
            [len(ids) for _, ids, _, _ in rows], self.batch_size, self.max_batch_tokens
        ):
            batch = rows[lo:hi]
            size, width = hi - lo, len(rows[lo][1])
            inp = torch.full((size, width), self.pad_id, dtype=torch.long)
            sel_row, sel_pos, targets = [], [], []
            for k, (_, ids, head, js) in enumerate(batch):
                inp[k, : len(ids)] = torch.tensor(ids)
                for j in js:
                    sel_row.append(k)
                    sel_pos.append(head + j - 1)
                    targets.append(ids[head + j])
            with torch.inference_mode():
                hidden = self.parts.base(
                    input_ids=inp.to(device), use_cache=False
                ).last_hidden_state
                picked = hidden[
                    torch.tensor(sel_row, device=device), torch.tensor(sel_pos, device=device)
                ]
                logp = self.parts.logits(picked).log_softmax(-1)
                nll = -logp.gather(1, torch.tensor(targets, device=device)[:, None]).squeeze(1)
            values = nll.double().cpu().tolist()
            at = 0
            for r, _, _, js in batch:
                for j in js:
                    out[r][j] = values[at]
                    at += 1
            self.stats.forwards += 1
            self.stats.rows += size
            self.stats.tokens += sum(len(ids) for _, ids, _, _ in batch)
            self.stats.padded_tokens += size * width
        self.stats.seconds += time.perf_counter() - t0
        return out

    def losses(
        self,
        doc_ids: Sequence[int],
        prefixes: Sequence[Sequence[int]],
        positions: Sequence[Iterable[int]],
    ) -> List[Dict[int, float]]:
        """L_i(prefix) for each prefix and each position i in its set (missing where undefined)."""
        n = len(doc_ids)
        positions = [sorted(set(p)) for p in positions]
        needed = [{i + t for i in ps for t in range(self.horizon) if i + t < n} for ps in positions]
        nlls = self.token_nll(doc_ids, prefixes, needed)
        out: List[Dict[int, float]] = []
        for ps, nll in zip(positions, nlls):
            row = {}
            for i in ps:
                if all(j in nll for j in range(i, min(n, i + self.horizon))) and i < n:
                    row[i] = weighted_loss(nll, i, n, self.horizon)
            out.append(row)
        return out
