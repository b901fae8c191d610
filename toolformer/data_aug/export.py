"""Export an augmented dataset: inline text (``jsonl``) or chat-template tool calls (``chat``).

``chat`` follows the Hugging Face convention for tool use, so a row goes straight into
``tokenizer.apply_chat_template(row["messages"], tools=row["tools"])`` and TRL's SFT trainer:

* ``messages``: a ``user`` turn with the text before the first call; then, per call, an
  ``assistant`` turn holding the text since the previous call as ``content`` and the call as
  ``tool_calls`` (``{"type": "function", "function": {"name", "arguments": {param: args}}}``),
  and a ``tool`` turn holding the result; a last ``assistant`` turn with the rest of the text.
  The turns' texts put together give the original document back.
* each call has an ``id`` of 9 letters and digits (Mistral's chat templates refuse any other),
  the same for the same row every time, and its ``tool`` turn names it as ``tool_call_id``.
* ``tools``: the JSON schema of each tool that occurs, from its Tool definition (name,
  description, and its one string parameter, constrained as its argument grammar says).
"""

from __future__ import annotations

import hashlib
import json
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
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": params},
    }


def _parameter(tool: Any) -> Optional[str]:
    if isinstance(getattr(tool, "arg_grammar", None), EmptyArgs):
        return None
    return getattr(tool, "argument_name", None) or DEFAULT_PARAMETER


def _kind(value: Any) -> str:
    """How a JSON value is named in a message: ``a string``, ``null``, ``a list``..."""
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def row_problem(row: Any, fmt: str = "chat") -> Optional[str]:
    """What keeps ``row`` (one parsed ``data.jsonl`` line) from being exported, else None.

    ``jsonl`` needs an object with a string ``text`` or ``original``; ``chat`` an object with a
    string ``original`` and a list ``calls`` of objects with a string ``tool``, a string
    ``args``, a string or null ``result`` and an integer ``offset`` inside the text.
    """
    if not isinstance(row, dict):
        return f"the row is {_kind(row)}, not an object"
    if fmt == "jsonl":
        text = row.get("text", row.get("original"))
        return None if isinstance(text, str) else f"'text' is {_kind(text)}, not a string"
    if not isinstance(row.get("original"), str) or "calls" not in row:
        return (
            f"row {row.get('id', '?')} is not an augmented row (needs 'original' and "
            f"'calls'); export reads the data.jsonl of toolformer augment"
        )
    calls, length = row["calls"], len(row["original"])
    if not isinstance(calls, list):
        return f"'calls' is {_kind(calls)}, not a list"
    for i, call in enumerate(calls, 1):
        if not isinstance(call, dict):
            return f"call {i} is {_kind(call)}, not an object"
        for key, ok, want in (
            ("tool", str, "a string"),
            ("args", str, "a string"),
            ("result", (str, type(None)), "a string or null"),
        ):
            if not isinstance(call.get(key, "" if key == "result" else None), ok):
                return f"call {i}: '{key}' is {_kind(call.get(key))}, not {want}"
        offset = call.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool):
            return f"call {i}: 'offset' is {_kind(offset)}, not an integer"
        if not 0 <= offset <= length:
            return f"call {i}: offset {offset} is outside the text (length {length})"
    return None


def call_ids(row: Dict[str, Any], n: int) -> List[str]:
    """``n`` distinct ids of 9 letters and digits for the calls of ``row``.

    Mistral's chat templates refuse a tool call whose id is not exactly 9 alphanumeric
    characters; the ids come from a hash of the row's id and text, so an export gives the
    same ids every time.
    """
    key = json.dumps([row.get("id"), row.get("original")], ensure_ascii=False, default=str)
    out: List[str] = []
    salt = 0
    while len(out) < n:
        digest = hashlib.sha256(f"{key}\x00{len(out)}\x00{salt}".encode("utf-8")).hexdigest()
        ident = digest[:9]
        if ident in out:  # a collision of 36 bits within one row: draw again
            salt += 1
            continue
        out.append(ident)
    return out


def to_messages(row: Dict[str, Any], tools: Dict[str, Any]) -> Dict[str, Any]:
    """One ``data.jsonl`` row (``original`` and ``calls`` with ``offset``) as a conversation.

    ``tools``: tool name -> Tool class or instance (for the schemas and parameter names).
    Returns ``{"id", "messages", "tools"}``. Raises :class:`UserError` for a row that is not
    an augmented row (:func:`row_problem` says what is wrong).
    """
    problem = row_problem(row, "chat")
    if problem is not None:
        raise UserError(problem)
    text, calls = row["original"], sorted(row["calls"], key=lambda c: c["offset"])
    messages: List[Dict[str, Any]] = []
    pos = 0
    used: List[str] = []
    for i, (call, ident) in enumerate(zip(calls, call_ids(row, len(calls)))):
        segment = text[pos : call["offset"]]
        tool = tools.get(call["tool"])
        param = _parameter(tool) if tool is not None else DEFAULT_PARAMETER
        arguments = {param: call["args"]} if param else {}
        fn = {
            "id": ident,
            "type": "function",
            "function": {"name": call["tool"], "arguments": arguments},
        }
        if i == 0:
            messages.append({"role": "user", "content": segment})
            messages.append({"role": "assistant", "content": "", "tool_calls": [fn]})
        else:
            messages.append({"role": "assistant", "content": segment, "tool_calls": [fn]})
        messages.append(
            {
                "role": "tool",
                "tool_call_id": ident,
                "name": call["tool"],
                "content": call.get("result") or "",
            }
        )
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
        raise UserError(
            f"{path} holds no augmented data (no data.jsonl); run augment with "
            f"AugmentConfig.output {path} first, or pass the data.jsonl of a finished "
            "run",
            field="AugmentConfig.output",
        )
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
        # a malformed row stops the export with one line naming it (nothing is dropped silently)
        problem = row_problem(row, fmt)
        if problem is not None:
            raise UserError(f"{source} {where}: {problem}")
        if fmt == "jsonl":
            yield {"id": row.get("id"), "text": row.get("text", row.get("original", ""))}
            continue
        for call in row["calls"]:
            if call["tool"] and call["tool"] not in tools:
                tools[call["tool"]] = _tool_class(call["tool"])
        yield to_messages(row, tools)


def _tool_class(name: str) -> Any:
    from toolformer.tools.base import UnknownToolError, get_tool_class

    try:
        return get_tool_class(name)
    except UnknownToolError:  # a plug-in no longer installed: a generic schema
        return type(name, (), {"name": name, "description": f"the tool {name}"})
