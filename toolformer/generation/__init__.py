"""Tool-calling generation on one KV cache (paper, Section 4 "Inference"), batched and streamed.

Decoding is ordinary greedy or sampled decoding, except that

* a call starts whenever a ``[`` token is among the ``call_top_k`` most likely next tokens (the
  paper uses k = 10) and the row may still call: the bracket is forced;
* once the open call's text ends with ``->``, the call is parsed and run through a
  :class:`~toolformer.tools.executor.ToolExecutor`, and the tokens of ``" " + result + "]"`` are
  queued as *forced tokens* for that row (a per-row queue, as in nanochat's engine);
* with tools disabled, or once a row has made ``max_calls`` calls, or inside a call, every token
  that opens a bracket gets a logit of -inf ("Toolformer (disabled)" sets p(``[``) to 0).

One KV cache serves the whole batch and is never rebuilt: each step feeds every unfinished row
its next tokens, one chosen token or, for a row that has just finished ``->``, that token and its
whole forced result in the same forward pass. Rows feeding fewer tokens than the longest chunk of
the step are left-padded inside the step with masked "holes" (attention mask 0) and positions
that count only real tokens, so all rows advance together, the last position of every row is a
real token (``logits_to_keep=1``), and nothing is re-encoded. Finished rows leave the batch (their
cache rows are dropped). :func:`generate_reencode` is the naive reference that re-encodes the
whole sequence after each tool call; tests check both agree token for token.

Faults never raise; each is recorded in a :class:`CallRecord`:

* the model closes the call with ``]`` before writing ``->``, writes ``max_call_tokens`` tokens
  without ``->``, or the output ends inside the call: error ``"unclosed call"``; the text stays
  as the model wrote it and decoding goes on outside the call;
* ``->`` follows text that is not ``[Tool(args)``: error ``"malformed call: ..."``, and ``]`` is
  inserted (an empty result);
* unknown tool, tool error, timeout or empty result: the executor's error, and ``]`` is inserted;
* results are capped by the executor (``max_result_chars``);
* a prompt longer than the context keeps its last ``max_position_embeddings - max_new_tokens``
  tokens and the output carries a warning; a ``max_new_tokens`` that leaves no room for the
  prompt is refused (:class:`~toolformer.errors.UserError`).

``max_new_tokens`` bounds the output's tokens, except that a tool result being inserted goes in
whole, with its ``]``, so the text and the call record always agree; a result that the model's
context cannot hold is left out and recorded as the call's error. Nothing is ever written past
the context. Stop strings are searched in text outside calls;
the output text ends just before the stop string (it is not included).

The package: :mod:`.types` (config and results), :mod:`.rules` (pure functions on
``logits[rows, vocab]``), :mod:`.detok` (detokeniser and stop strings), :mod:`.row` (one row's
call state and forced-token queue) and :mod:`.engine` (the batched loop).
"""

from toolformer.generation.engine import ExecutorLike, ToolGenerator, generate_reencode
from toolformer.generation.rules import call_token_ids
from toolformer.generation.types import (
    FINISH_REASONS,
    CallRecord,
    GenerationConfig,
    GenerationEvent,
    GenerationOutput,
)
from toolformer.syntax import UNCLOSED

__all__ = [
    "FINISH_REASONS",
    "UNCLOSED",
    "CallRecord",
    "ExecutorLike",
    "GenerationConfig",
    "GenerationEvent",
    "GenerationOutput",
    "ToolGenerator",
    "call_token_ids",
    "generate_reencode",
]
