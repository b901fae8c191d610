"""Export an augmented dataset: inline text (``jsonl``) or chat-template tool calls (``chat``).

``chat`` follows the Hugging Face convention for tool use, so a row goes straight into
``tokenizer.apply_chat_template(row["messages"], tools=row["tools"])`` and TRL's SFT trainer:

* ``messages``: a ``user`` turn with the text before the first call; then, per call, an
  ``assistant`` turn holding the text since the previous call as ``content`` and the call as
  ``tool_calls`` (``{"type": "function", "function": {"name", "arguments": {param: args}}}``),
  and a ``tool`` turn holding the result; a last ``assistant`` turn with the rest of the text.
  The turns' texts put together give the original document back.
* ``tools``: the JSON schema of each tool that occurs, from its Tool definition (name,
  description, and its one string parameter, constrained as its argument grammar says).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from toolformer.errors import UserError
from toolformer.grammar import CalculatorArgs, EmptyArgs, TextArgs

FORMATS = ("jsonl", "chat")
DEFAULT_PARAMETER = "input"


def tool_schema(tool: Any) -> Dict[str, Any]:
    """The JSON schema of a tool (an instance or a class) in the Hugging Face / OpenAI form.

    The parameter is named by the tool's ``argument_name`` (``input`` if it has none); a tool
    whose grammar admits no arguments (the Calendar) has none; the grammar also gives
    ``maxLength`` (text) or a ``pattern`` (arithmetic).
    """
    grammar = getattr(tool, "arg_grammar", None)
    params: Dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    if not isinstance(grammar, EmptyArgs):
        name = getattr(tool, "argument_name", None) or DEFAULT_PARAMETER
        prop: Dict[str, Any] = {"type": "string", "description": f"the argument of {tool.name}"}
        if isinstance(grammar, TextArgs):
            prop["maxLength"] = grammar.max_bytes
        elif isinstance(grammar, CalculatorArgs):
            prop["pattern"] = r"^[0-9+\-*/(). ]+$"
            prop["description"] = "an arithmetic expression, e.g. 400 / 1400"
        params["properties"][name] = prop
        params["required"].append(name)
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": params}}


def _parameter(tool: Any) -> Optional[str]:
    if isinstance(getattr(tool, "arg_grammar", None), EmptyArgs):
        return None
    return getattr(tool, "argument_name", None) or DEFAULT_PARAMETER


def to_messages(row: Dict[str, Any], tools: Dict[str, Any]) -> Dict[str, Any]:
    """One ``data.jsonl`` row (``original`` and ``calls`` with ``offset``) as a conversation.

    ``tools``: tool name -> Tool class or instance (for the schemas and parameter names).
    Returns ``{"id", "messages", "tools"}``. Raises :class:`UserError` for a row without the
    fields an augmented row has.
    """
    try:
        text, calls = row["original"], sorted(row["calls"], key=lambda c: c["offset"])
    except (KeyError, TypeError):
        raise UserError(f"row {row.get('id', '?') if isinstance(row, dict) else '?'} is not an augmented "
                        f"row (needs 'original' and 'calls'); export reads the data.jsonl of toolformer augment") from None
    messages: List[Dict[str, Any]] = []
    pos = 0
    used: List[str] = []
    for i, call in enumerate(calls):
        segment = text[pos : call["offset"]]
        tool = tools.get(call["tool"])
        param = _parameter(tool) if tool is not None else DEFAULT_PARAMETER
        arguments = {param: call["args"]} if param else {}
        fn = {"type": "function", "function": {"name": call["tool"], "arguments": arguments}}
        if i == 0:
            messages.append({"role": "user", "content": segment})
            messages.append({"role": "assistant", "content": "", "tool_calls": [fn]})
        else:
            messages.append({"role": "assistant", "content": segment, "tool_calls": [fn]})
        messages.append({"role": "tool", "name": call["tool"], "content": call.get("result") or ""})
        if call["tool"] not in used:
            used.append(call["tool"])
        pos = call["offset"]
    if not calls:
        messages.append({"role": "user", "content": ""})
    messages.append({"role": "assistant", "content": text[pos:]})
    schemas = [tool_schema(tools[n]) for n in used if n in tools]
    return {"id": row.get("id"), "messages": messages, "tools": schemas}


def messages_text(messages: List[Dict[str, Any]]) -> str:
    """The document again: the user and assistant contents put together."""
    return "".join(m["content"] for m in messages if m["role"] in ("user", "assistant"))


def data_file(path: str) -> Path:
    """The ``data.jsonl`` of an augment output folder (or the file itself); a one-line
    :class:`UserError` when there is none."""
    p = Path(path)
    if p.is_dir():
        if (p / "data.jsonl").is_file():
            return p / "data.jsonl"
        raise UserError(f"{path} holds no augmented data (no data.jsonl); run `toolformer augment "
                        f"--output {path}` first, or pass the data.jsonl of a finished run")
    if p.is_file():
        return p
    raise UserError(f"{path} does not exist; pass an augment output folder or its data.jsonl")


def export_rows(path: str, fmt: str) -> Iterator[Dict[str, Any]]:
    """The rows of ``path`` (an augment output) in format ``fmt`` (``jsonl`` or ``chat``)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    from toolformer.records import iter_records

    source = data_file(path)
    tools: Dict[str, Any] = {}
    # the project's one record reader: a line that is not JSON (or not UTF-8) is a one-line error
    for where, row in iter_records(str(source), on_bad_line="raise"):
        if fmt == "jsonl":
            yield {"id": row.get("id"), "text": row.get("text", row.get("original", ""))}
            continue
        for call in row.get("calls", []) if isinstance(row, dict) else []:
            name = call.get("tool")
            if name and name not in tools:
                tools[name] = _tool_class(name)
        try:
            yield to_messages(row, tools)
        except UserError as exc:
            raise UserError(f"{source} {where}: {exc}") from None


def _tool_class(name: str) -> Any:
    from toolformer.tools.base import UnknownToolError, get_tool_class

    try:
        return get_tool_class(name)
    except UnknownToolError:  # a plug-in no longer installed: a generic schema
        return type(name, (), {"name": name, "description": f"the tool {name}"})
