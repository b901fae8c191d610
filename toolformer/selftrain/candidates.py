"""What Grow produces and Improve judges: one sampled output of the current model for one prompt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from toolformer.syntax import CALL_END, APICall, format_call


@dataclass
class Candidate:
    """A sampled continuation ``text`` of ``prompt``, calls (and their results) inline.

    ``calls``: the generator's call records as dicts (``tool``, ``args``, ``result``, ``error``,
    ``start``, ``end``: the call's character span in ``text``). ``gold``: the document's gold
    answer (a number for GSM8K), or None for a corpus without answers.
    """

    doc_id: str
    sample: int
    prompt: str
    text: str
    calls: List[Dict[str, Any]] = field(default_factory=list)
    gold: Optional[Any] = None
    finish_reason: str = ""
    # the mixed curriculum: the item's kind and the tools that fit it ([]: no tool helps)
    kind: Optional[str] = None
    tools: Optional[List[str]] = None

    @property
    def ok_calls(self) -> List[Dict[str, Any]]:
        """Calls that ran, returned a result and are closed in the text: an output cut by
        ``max_new_tokens`` while the result was being written (``[Calculator(285 - 49 - 59)->
        17`` for 177) holds a broken call and must not be trained on."""
        return [
            c
            for c in self.calls
            if not c.get("error")
            and c.get("result") is not None
            and isinstance(c.get("start"), int)
            and isinstance(c.get("end"), int)
            and self.text[c["start"] : c["end"]].endswith(CALL_END)
        ]

    @property
    def all_calls_ran(self) -> bool:
        return bool(self.calls) and len(self.ok_calls) == len(self.calls)

    def training_text(self) -> str:
        """The text a kept candidate contributes to fine-tuning: prompt and output."""
        return self.prompt + self.text

    def without_calls(self) -> str:
        """The output with every call's span removed (what the text reads without the tool)."""
        out, pos = [], 0
        for c in sorted(self.calls, key=lambda c: c.get("start") or 0):
            start, end = c.get("start"), c.get("end")
            if not isinstance(start, int) or not isinstance(end, int) or start < pos:
                continue
            chunk = self.text[pos:start]
            if chunk.endswith(" ") and (self.text[end : end + 1] in ("", " ")):
                chunk = chunk[:-1]
            out.append(chunk)
            pos = end
        out.append(self.text[pos:])
        return "".join(out)

    @staticmethod
    def call_text(call: Dict[str, Any], with_result: bool = True) -> str:
        """``[Tool(args) -> result]`` (``with_result=False``: the paper's e(c, empty))."""
        result = call.get("result") if with_result else ""
        return format_call(APICall(call["tool"], call["args"], result))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Candidate":
        return cls(
            **{
                k: d[k]
                for k in (
                    "doc_id",
                    "sample",
                    "prompt",
                    "text",
                    "calls",
                    "gold",
                    "finish_reason",
                    "kind",
                    "tools",
                )
                if k in d
            }
        )
