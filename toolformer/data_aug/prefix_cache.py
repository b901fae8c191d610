"""What the model reads during annotation, built once where it can be.

- :class:`DocChunk` / :func:`chunk_document`: a document's tokens in windows of at most
  ``max_tokens``, each token with the character offset where a call before it is inserted and
  whether a word or number begins there (the only places a call may go).
- :class:`ToolPrompt`: a tool's few-shot prompt P(x) split at the document's first appearance,
  so that the part before it (the examples, the same for every document) has fixed token ids.
- :class:`PromptCache`: that part's KV cache, computed once per tool and copied for each document.
- :class:`LMParts`: the decoder stack and the output head of a causal LM, so that logits are
  computed only where they are needed (a 49k-word softmax at every position costs more than the
  last layers).
- :func:`shared_prefix`: an attention implementation for sampling many calls after one text:
  every row reads the same prefix keys/values (no per-row copy, no growing concatenation) and
  its own few generated tokens.

Token ids of P(x) followed by the document are the concatenation ``start + prefix + rest + doc``
of separately tokenized pieces (the prefix ends before the whitespace that precedes the
document's slot, the document's own tokens carry a leading space): the reference implementation
builds exactly the same ids, without any cache.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

from toolformer.errors import UserError
from toolformer.kv_cache import cache_kwargs
from toolformer.text_units import token_starts_unit

FOLLOW_TOKENS = 16  # tokens after a window kept for scoring (>= weight horizon - 1)
_SENTINELS = ("\x00first-document\x00", "\x01second-document\x01")


# --------------------------------------------------------------------------- the model


@dataclass
class LMParts:
    """A causal LM split into its decoder stack (hidden states) and output head (logits)."""

    model: Any
    base: Any
    head: Any
    softcap: Optional[float] = None

    @property
    def device(self):
        return next(self.model.parameters()).device

    def logits(self, hidden):
        """fp32 logits for hidden states of any leading shape (with the model's soft-capping)."""
        import torch

        out = self.head(hidden).float()
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out


def lm_parts(model: Any) -> LMParts:
    """Split a transformers ``*ForCausalLM`` into decoder and head."""
    base = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if base is None or base is model or head is None:
        raise UserError(
            f"{type(model).__name__} is not a causal LM with a separate output head; "
            "load the model with toolformer.models.load_model or AutoModelForCausalLM"
        )
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    return LMParts(model, base, head, getattr(config, "final_logit_softcapping", None))


def start_ids(tokenizer: Any, start_token: Optional[str] = None) -> List[int]:
    """Ids that start every sequence: ``start_token`` ('' for none), else the token the model
    saw before a plain text (:func:`toolformer.models.default_start_token`)."""
    from toolformer.models import start_token_id

    tid = start_token_id(tokenizer, start_token)
    return [] if tid is None else [tid]


def encode(tokenizer: Any, text: str) -> List[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# --------------------------------------------------------------------------- documents


@dataclass
class DocChunk:
    """A window of a document's tokens.

    ``ids[j]`` is token ``token_start + j`` of the document; a call before it goes at character
    ``insert_at[j]`` of the original text; ``space_opener[j]`` says whether the call would open
    with `` [`` (the text before the token does not end in whitespace) or ``[``. ``follow`` holds
    the document's next tokens after the window, so that losses at its last positions still see
    the following tokens (only the true end of a document has fewer than the weighted five).
    """

    index: int
    token_start: int
    ids: List[int]
    insert_at: List[int]
    space_opener: List[bool]
    char_start: int
    char_end: int
    text: str  # the window's text (stripped), what goes into the prompt's document slot
    follow: List[int] = field(default_factory=list)
    word_start: List[bool] = field(default_factory=list)  # a word or number begins at token j

    def call_positions(self, min_position: int = 0) -> List[int]:
        """Token positions ``>= min_position`` where a call may go: where a word or number
        begins, never between two characters of one (no ``1 [Calculator(16) -> 16]6``)."""
        starts = self.word_start or [True] * len(self.ids)
        return [j for j in range(max(0, min_position), len(self.ids)) if starts[j]]

    def __len__(self) -> int:
        return len(self.ids)


def tokenize_document(tokenizer: Any, text: str) -> Tuple[List[int], List[int], List[bool]]:
    """The document's token ids (tokenized as ``" " + text``: it follows ``Output:`` in P(x) and a
    call in the scored sequences), each token's insertion offset, and its call opener."""
    return tokenize_document_units(tokenizer, text)[:3]


def tokenize_document_units(
    tokenizer: Any, text: str
) -> Tuple[List[int], List[int], List[bool], List[bool]]:
    """:func:`tokenize_document` and, per token, whether a word or number begins at it
    (:func:`toolformer.text_units.token_starts_unit`)."""
    try:
        enc = tokenizer(" " + text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise UserError(
            "annotation needs a fast tokenizer (offset mappings); load it with use_fast=True"
        ) from None
    ids = list(enc["input_ids"])
    ends = [max(0, min(len(text), e - 1)) for _, e in enc["offset_mapping"]]
    insert_at: List[int] = []
    last = 0
    for j in range(len(ids)):
        at = 0 if j == 0 else max(last, ends[j - 1])
        insert_at.append(at)
        last = at
    # the prompt's "Output:" precedes token 0; afterwards the original text decides
    space_opener = [
        j == 0 or not (insert_at[j] > 0 and text[insert_at[j] - 1].isspace())
        for j in range(len(ids))
    ]
    word_start = token_starts_unit(text, [(s - 1, e - 1) for s, e in enc["offset_mapping"]])
    return ids, insert_at, space_opener, word_start


def chunk_document(tokenizer: Any, text: str, max_tokens: int) -> List[DocChunk]:
    """Cut a document into windows of at most ``max_tokens`` tokens (offsets stay global)."""
    if max_tokens < 2:
        raise UserError(f"max_length must be >= 2, got {max_tokens}")
    ids, insert_at, space_opener, word_start = tokenize_document_units(tokenizer, text)
    chunks: List[DocChunk] = []
    for c, start in enumerate(range(0, len(ids), max_tokens)):
        end = min(len(ids), start + max_tokens)
        cs = insert_at[start]
        ce = insert_at[end] if end < len(ids) else len(text)
        opener = space_opener[start:end]
        opener[0] = True  # in P(x) every window follows "Output:", like the document's start
        chunks.append(
            DocChunk(
                c,
                start,
                ids[start:end],
                insert_at[start:end],
                opener,
                cs,
                ce,
                text[cs:ce].strip(),
                ids[end : end + FOLLOW_TOKENS],
                word_start[start:end],
            )
        )
    return chunks


# --------------------------------------------------------------------------- the prompt


class ToolPrompt:
    """A tool's prompt P(x) split into a fixed prefix (cacheable) and a per-document rest."""

    def __init__(self, tokenizer: Any, tool: Any, start: Sequence[int] = ()):
        if not getattr(tool, "prompt", "") or "{text}" not in tool.prompt:
            raise UserError(
                f"tool {tool.name} has no annotation prompt with a {{text}} slot; "
                "it cannot be used for annotation"
            )
        self.tool = tool
        self.tokenizer = tokenizer
        a, b = (tool.format_prompt(s) for s in _SENTINELS)
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        # everything before the document's first appearance, minus the whitespace before it
        self.prefix_text = a[:n].rstrip()
        self.start_ids = list(start)
        self.prefix_ids = self.start_ids + (
            encode(tokenizer, self.prefix_text) if self.prefix_text else []
        )

    def rest_ids(self, doc_text: str) -> List[int]:
        """Ids of P(x) after the prefix (the document in the slot, up to ``Output:``)."""
        full = self.tool.format_prompt(doc_text)
        if not full.startswith(self.prefix_text):
            raise ValueError(f"{self.tool.name}.format_prompt does not start with its own prefix")
        # the document's tokens (with their leading space) follow right after "Output:"
        return encode(self.tokenizer, full[len(self.prefix_text) :].rstrip())

    def prompt_ids(self, doc_text: str) -> List[int]:
        """All ids of P(x): start, prefix and rest."""
        return self.prefix_ids + self.rest_ids(doc_text)


class PromptCache:
    """The KV cache of a :class:`ToolPrompt`'s prefix, computed once and copied per document."""

    def __init__(self, parts: LMParts, prompt: ToolPrompt):
        self.parts = parts
        self.prompt = prompt
        self._kv: Optional[List[Tuple[Any, Any]]] = None

    def __len__(self) -> int:
        return len(self.prompt.prefix_ids)

    def kv(self) -> List[Tuple[Any, Any]]:
        """Per-layer (keys, values) of the prefix, shape [1, kv_heads, len, head_dim]."""
        if self._kv is None:
            import torch
            from transformers import DynamicCache

            cache = DynamicCache()  # full layers: no sliding-window truncation of a cached prefix
            if self.prompt.prefix_ids:
                ids = torch.tensor([self.prompt.prefix_ids], device=self.parts.device)
                with torch.inference_mode():
                    self.parts.base(
                        input_ids=ids, use_cache=True, **cache_kwargs(self.parts.base, cache)
                    )
            self._kv = [(layer.keys, layer.values) for layer in cache.layers]
        return self._kv

    def fresh(self):
        """A new DynamicCache holding a copy of the prefix (forward passes extend it in place)."""
        from transformers import DynamicCache

        kv = self.kv()
        return DynamicCache(ddp_cache_data=kv) if kv else DynamicCache()


def cache_kv(cache: Any) -> List[Tuple[Any, Any]]:
    """Per-layer (keys, values) tensors of a DynamicCache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


# -------------------------------------------------------------------------- shared-prefix attention

SHARED_PREFIX_ATTENTION = "toolformer_shared_prefix"
_shared_state = threading.local()


def _shared_prefix_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: Optional[float] = None,
    dropout: float = 0.0,
    **kwargs: Any,
):
    """Attention of many rows over ONE shared prefix (read once, never copied per row) plus each
    row's own tail (the tokens it has generated, in a normal per-row cache).

    Row b sees the prefix up to ``lens[b]`` (its position in the document), then its tail
    causally. Handles grouped KV heads, sliding windows (Gemma 3) and attention soft-capping.
    """
    import torch

    state = _shared_state.current
    pk, pv = state.kv[module.layer_idx]  # [1, kv_heads, C, D]
    lens = state.lens  # [B]
    bsz, heads, q_len, dim = query.shape
    kv_heads, ctx = pk.shape[1], pk.shape[2]
    tail = key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # prefix: one [kv_heads, rows, C] product that reads the shared keys once
    q_pre = (
        query.reshape(bsz, kv_heads, groups * q_len, dim).transpose(0, 1).reshape(kv_heads, -1, dim)
    )
    s_pre = torch.matmul(q_pre, pk[0].transpose(-1, -2)).float() * scale  # [kv_heads, B*g*q, C]
    s_pre = s_pre.reshape(kv_heads, bsz, groups, q_len, ctx).transpose(
        0, 1
    )  # [B, kv_heads, g, q, C]
    q_tail = query.reshape(bsz, kv_heads, groups * q_len, dim)
    s_tail = torch.matmul(q_tail, key.transpose(-1, -2)).float() * scale
    s_tail = s_tail.reshape(bsz, kv_heads, groups, q_len, tail)
    softcap = kwargs.get("softcap")
    if softcap:
        s_pre = torch.tanh(s_pre / softcap) * softcap
        s_tail = torch.tanh(s_tail / softcap) * softcap
    dev = query.device
    # absolute positions: prefix key c is at c; tail key t of row b at lens[b] + t
    q_pos = lens[:, None] + (tail - q_len) + torch.arange(q_len, device=dev)[None, :]  # [B, q]
    c_pos = torch.arange(ctx, device=dev)
    t_idx = torch.arange(tail, device=dev)
    ok_pre = (c_pos[None, None, :] < lens[:, None, None]).expand(bsz, q_len, ctx)
    ok_tail = (
        t_idx[None, None, :] <= (tail - q_len) + torch.arange(q_len, device=dev)[None, :, None]
    ).expand(bsz, q_len, tail)
    window = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
    if window:
        ok_pre = ok_pre & (q_pos[:, :, None] - c_pos[None, None, :] < window)
        t_pos = lens[:, None, None] + t_idx[None, None, :]
        ok_tail = ok_tail & (q_pos[:, :, None] - t_pos < window)
    neg = torch.finfo(torch.float32).min
    s_pre = s_pre.masked_fill(~ok_pre[:, None, None], neg)
    s_tail = s_tail.masked_fill(~ok_tail[:, None, None], neg)
    w = torch.cat([s_pre, s_tail], dim=-1).softmax(-1).to(value.dtype)
    w_pre = w[..., :ctx].transpose(0, 1).reshape(kv_heads, -1, ctx)  # [kv_heads, B*g*q, C]
    out = torch.matmul(w_pre, pv[0]).reshape(kv_heads, bsz, groups * q_len, dim).transpose(0, 1)
    out = out + torch.matmul(w[..., ctx:].reshape(bsz, kv_heads, groups * q_len, tail), value)
    return out.reshape(bsz, heads, q_len, dim).transpose(1, 2).contiguous(), None


def _register_shared_prefix() -> None:
    from transformers import AttentionInterface

    if SHARED_PREFIX_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(SHARED_PREFIX_ATTENTION, _shared_prefix_attention)


@contextmanager
def shared_prefix(model: Any, kv: Sequence[Tuple[Any, Any]], lens: Any):
    """Run ``model`` with shared-prefix attention over ``kv`` (batch 1), rows seeing ``lens``.

    Inside the block the model's caches hold only each row's own tokens; pass explicit
    ``position_ids`` (the prefix is not in the cache, so positions cannot be inferred).
    """
    _register_shared_prefix()
    config = model.config
    previous = config._attn_implementation
    _shared_state.current = _SharedState(list(kv), lens)
    config._attn_implementation = SHARED_PREFIX_ATTENTION
    try:
        yield _shared_state.current
    finally:
        config._attn_implementation = previous
        _shared_state.current = None


@dataclass
class _SharedState:
    kv: List[Tuple[Any, Any]]
    lens: Any
