"""A conversation as the prompt a model continues: chat template or plain labelled turns.

Used by ``toolformer chat`` (one turn at a time) and by the server's chat completions (a whole
message list at once).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


class ChatSession:
    """The conversation: turns, and the prompt the model continues (chat template or plain)."""

    def __init__(
        self,
        tokenizer: Any,
        use_template: Optional[bool],
        system: Optional[str],
        roles: Optional[Tuple[str, str]] = None,
    ):
        """``roles``: the plain turn labels the model was trained on (``("Q", "A")``, from its
        manifest); with them the default is plain turns, not the chat template."""
        self.tokenizer = tokenizer
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if use_template is None and roles is not None:
            use_template = False
        self.use_template = (
            has_template if use_template is None else (use_template and has_template)
        )
        self.system = system
        self.roles = roles or ("User", "Assistant")
        self.turns: List[Dict[str, str]] = []

    def _content(self, user: str) -> str:
        """What the user said, without the user label typed out in plain turns (``Q: ...``)."""
        label = f"{self.roles[0]}:"
        if not self.use_template and user.startswith(label):
            return user[len(label) :].strip()
        return user

    def prompt(self, user: str) -> str:
        """The text the model continues to answer ``user`` after the turns so far: the chat
        template with its generation prompt, or plain ``label: text`` lines ending in the
        assistant's label."""
        turns = self.turns + [{"role": "user", "content": self._content(user)}]
        if self.use_template:
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + turns
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        lines = [self.system] if self.system else []
        user_label, assistant_label = self.roles
        for t in turns:
            label = user_label if t["role"] == "user" else assistant_label
            lines.append(f"{label}: {t['content']}")
        return "\n".join(lines) + f"\n{assistant_label}:"

    @property
    def stop_strings(self) -> Tuple[str, ...]:
        """Where an answer ends in plain turns: at the next user label (none with a template,
        whose end-of-turn token stops the model)."""
        return () if self.use_template else (f"\n{self.roles[0]}:",)

    def add(self, user: str, answer: str) -> None:
        """Record one exchange: what the user said and the model's answer (stripped)."""
        self.turns += [
            {"role": "user", "content": self._content(user)},
            {"role": "assistant", "content": answer.strip()},
        ]
