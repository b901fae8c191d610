"""Request bodies of the OpenAI-compatible endpoints (pydantic models, checked by FastAPI).

Only the fields the server acts on are declared; other OpenAI fields (``frequency_penalty``,
``user``, a client's ``tools`` list, ...) are accepted and ignored: the server's own tools run
on the server, as the model writes its calls.
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator

MAX_STOP = 4  # as OpenAI


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Decoding(BaseModel):
    """The decoding settings both endpoints share (OpenAI names)."""

    model: str
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    stop: Optional[Union[str, List[str]]] = None
    seed: Optional[int] = None
    n: int = Field(1, ge=1, le=1, description="one choice per prompt (n > 1 is not supported)")
    stream: bool = False
    stream_options: Optional[StreamOptions] = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: Any) -> Any:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty strings")
        return value

    def stop_list(self) -> List[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, List[TextPart], None] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class ChatCompletionRequest(_Decoding):
    messages: List[ChatMessage]
    max_completion_tokens: Optional[int] = Field(None, ge=1)

    def token_limit(self) -> Optional[int]:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens


class CompletionRequest(_Decoding):
    prompt: Union[str, List[str]]

    def prompts(self) -> List[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def token_limit(self) -> Optional[int]:
        return self.max_tokens
