"""Chat messages -> the prompt the model continues, as ``toolformer chat`` builds it."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from toolformer.errors import UserError
from toolformer.generation.chat import ChatSession


def chat_prompt(
    messages: Sequence[Any],
    tokenizer: Any,
    roles: Optional[Tuple[str, str]] = None,
    use_template: Optional[bool] = None,
) -> Tuple[str, Tuple[str, ...]]:
    """``(prompt, stop_strings)`` for OpenAI chat ``messages`` (objects with ``role`` and
    ``text()``): system and developer messages become the system preamble; the others are the
    turns, and the last one must be the user's. ``roles``: an adapter's plain turn labels
    (``("Q", "A")`` from its manifest's ``chat_roles``), used instead of the chat template, with a
    stop string at the next user label. Raises :class:`UserError` for an empty list or a last
    message that is not the user's."""
    if not messages:
        raise UserError("messages is empty: send at least one {'role': 'user', 'content': ...}")
    system = "\n".join(m.text() for m in messages if m.role in ("system", "developer"))
    turns = [m for m in messages if m.role not in ("system", "developer")]
    if not turns or turns[-1].role != "user":
        raise UserError("the last message must have role 'user' (the model answers it)")
    if not turns[-1].text().strip():
        raise UserError(
            "the last user message has no content: send {'role': 'user', "
            "'content': 'your question'}"
        )
    session = ChatSession(tokenizer, use_template, system or None, roles)
    session.turns = [{"role": m.role, "content": m.text()} for m in turns[:-1]]
    return session.prompt(turns[-1].text()), session.stop_strings
