"""The inline call syntax: ``[Tool(args)]`` and ``[Tool(args) -> result]``.

The markers are plain text, so no vocabulary change is needed. Model-written calls are parsed
leniently (balanced parentheses first, then the first ``)`` that is followed by ``]`` or ``->``);
calls we format ourselves escape just enough (a backslash before ``\\ ( ) [ ]``) that
``parse_call(format_call(c)) == c`` holds for any text in ``args`` and ``result``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from typing import Iterator, List, Optional

CALL_START = "["
CALL_END = "]"
ARROW = "->"
RESULT_SEP = " -> "
# The error of a call that ended (``]``, token cap, end of output) before ``->``: generation records
# it, metrics recognise it.
UNCLOSED = "unclosed call"

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ESCAPABLE = set("\\()[]")


class CallSyntaxError(ValueError):
    """A text that should hold one call does not."""


@dataclass(frozen=True)
class APICall:
    """One tool call: the tool's name, its argument text and (once executed) its result."""

    tool: str
    args: str
    result: Optional[str] = None

    def with_result(self, result: Optional[str]) -> "APICall":
        return replace(self, result=result)

    def __str__(self) -> str:
        return format_call(self)


@dataclass(frozen=True)
class CallMatch:
    """A call found in a text, with its character span ``text[start:end]``."""

    call: APICall
    start: int
    end: int


# --------------------------------------------------------------------------- formatting


def _escape_args(args: str) -> str:
    """Escape backslashes before specials, brackets, and the parentheses that do not balance."""
    out: List[str] = []
    open_positions: List[int] = []  # indexes in ``out`` of unmatched "("
    for i, ch in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if ch == "\\":
            # Only a backslash that the parser would read as an escape needs doubling.
            out.append("\\\\" if (nxt in _ESCAPABLE or nxt == "") else "\\")
        elif ch in "[]":
            out.append("\\" + ch)
        elif ch == "(":
            open_positions.append(len(out))
            out.append("(")
        elif ch == ")":
            if open_positions:
                open_positions.pop()
                out.append(")")
            else:
                out.append("\\)")
        else:
            out.append(ch)
    for pos in open_positions:
        out[pos] = "\\("
    return "".join(out)


def _escape_result(result: str) -> str:
    out: List[str] = []
    for i, ch in enumerate(result):
        nxt = result[i + 1] if i + 1 < len(result) else ""
        if ch == "\\":
            out.append("\\\\" if (nxt in _ESCAPABLE or nxt == "") else "\\")
        elif ch in "[]":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def format_call(call: APICall, with_result: bool = True) -> str:
    """``[Tool(args)]``, or ``[Tool(args) -> result]`` when the call has a result."""
    if not _NAME_RE.fullmatch(call.tool):
        raise CallSyntaxError(f"invalid tool name {call.tool!r}: use letters, digits and '_'")
    head = f"{CALL_START}{call.tool}({_escape_args(call.args)})"
    if with_result and call.result is not None:
        return f"{head}{RESULT_SEP}{_escape_result(call.result)}{CALL_END}"
    return head + CALL_END


def format_call_prefix(call: APICall) -> str:
    """``[Tool(args) ->``: the text after which a generator runs the tool."""
    return f"{CALL_START}{call.tool}({_escape_args(call.args)}){RESULT_SEP.rstrip()}"


# --------------------------------------------------------------------------- parsing


def _unescape(text: str) -> str:
    out: List[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append(text[i + 1])
            i += 2
        elif ch == "\\" and i + 1 == len(text):
            out.append("\\")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Scan:
    """Every position a call parse needs, found in one pass over a text, so that parsing
    from each ``[`` costs a look-up instead of a scan to the end of the text (a text with
    many openings, e.g. 200,000 characters of ``[a(()``, was quadratic).

    Escapes are read left to right (``\\`` then an escapable character is one pair); every
    scan starts after a ``(``, ``>`` or space, which always ends a pair or stands alone, so
    reading each scan's escapes from its own start gives the same pairs as reading them once
    from the text's start. ``events``: positions of the unescaped ``( ) [ ]``; ``closes[k]``:
    the first event at or after ``k`` where the depth counted from ``k`` drops below zero
    (a ``)`` that closes at depth 0); ``brackets[k]``: the first ``[`` or ``]`` event at or
    after ``k``. The lenient scan reads escapes as before (a bracket not right after a
    backslash): ``loose_brackets`` and ``loose_ends`` (``)`` then ``]`` or ``->``).
    """

    def __init__(self, text: str):
        self.text = text
        pos: List[int] = []
        depth_pending: dict = {}
        closes: List[int] = []
        depth = 0
        for m in _STRUCTURE.finditer(text):
            ch = m.group(0)
            if len(ch) == 2:  # an escaped pair
                continue
            k = len(pos)
            pos.append(m.start())
            closes.append(-1)
            depth_pending.setdefault(depth, []).append(k)
            if ch == "(":
                depth += 1
            elif ch == ")":
                for j in depth_pending.pop(depth, ()):
                    closes[j] = k
                depth -= 1
        n = len(pos)
        brackets = [-1] * (n + 1)
        for k in range(n - 1, -1, -1):
            brackets[k] = k if text[pos[k]] in "[]" else brackets[k + 1]
        self.events, self.closes, self.brackets = pos, closes, brackets
        self.loose_brackets = [m.start() for m in _LOOSE_BRACKET.finditer(text)]
        self.loose_ends = [m.start() for m in _LENIENT_END.finditer(text)]
        self._after: dict = {}

    def balanced(self, start: int) -> Optional[int]:
        """Index of the ``)`` closing the args that start at ``start``, by balanced parentheses:
        the first ``)`` at depth 0 before any bracket, else None."""
        k = bisect.bisect_left(self.events, start)
        if k >= len(self.events):
            return None
        close, bracket = self.closes[k], self.brackets[k]
        if close < 0 or (0 <= bracket < close):
            return None
        return self.events[close]

    def lenient(self, start: int) -> Optional[int]:
        """Index of the first ``)`` followed by ``]`` or ``->``, with no bracket before it."""
        i = bisect.bisect_left(self.loose_ends, start)
        if i >= len(self.loose_ends):
            return None
        end = self.loose_ends[i]
        j = bisect.bisect_left(self.loose_brackets, start)
        if j < len(self.loose_brackets) and self.loose_brackets[j] < end:
            return None
        return end

    def next_bracket(self, start: int) -> int:
        """Index of the first unescaped ``[`` or ``]`` at or after ``start``, else -1."""
        k = bisect.bisect_left(self.events, start)
        b = self.brackets[k] if k < len(self.events) else -1
        return -1 if b < 0 else self.events[b]

    def after_args(self, close: int):
        """What follows the args' ``)``: ``]`` or ``-> result]``; ``(result, end)`` or False."""
        found = self._after.get(close)
        if found is None:
            found = self._after[close] = self._after_args(close)
        return found

    def _after_args(self, close: int):
        text, n = self.text, len(self.text)
        j = close + 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == CALL_END:
            return None, j + 1
        if text.startswith(ARROW, j):
            k = j + len(ARROW)
            if k < n and text[k] == " ":
                k += 1
            end = self.next_bracket(k)
            if end >= 0 and text[end] == CALL_END:
                return _unescape(text[k:end]), end + 1
        return False  # never closed, or a new call opens before this one closed


_STRUCTURE = re.compile(r"\\[\\()\[\]]|[()\[\]]")
_LOOSE_BRACKET = re.compile(r"(?<!\\)[\[\]]")
_LENIENT_END = re.compile(r"\)(?=\s*(?:\]|->))")


def _parse_at(text: str, start: int, scan: Optional[_Scan] = None) -> Optional[CallMatch]:
    """The call whose ``[`` is at ``start``, if one is well-formed there (``scan``: the
    text's :class:`_Scan`, shared by the parses of one text)."""
    if not text.startswith(CALL_START, start):
        return None
    m = _NAME_RE.match(text, start + 1)
    if m is None or m.end() >= len(text) or text[m.end()] != "(":
        return None
    scan = scan or _Scan(text)
    args_start = m.end() + 1
    for find in (scan.balanced, scan.lenient):
        close = find(args_start)
        if close is None:
            continue
        tail = scan.after_args(close)
        if tail is False:
            continue
        result, end = tail
        args = _unescape(text[args_start:close])
        return CallMatch(APICall(m.group(0), args, result), start, end)
    return None


def parse_call(text: str) -> APICall:
    """Parse a text that is exactly one call (surrounding whitespace allowed)."""
    stripped = text.strip()
    match = _parse_at(stripped, 0)
    if match is None or match.end != len(stripped):
        raise CallSyntaxError(
            f"not a tool call: {text[:80]!r}; expected [Tool(args)] or [Tool(args) -> result]"
        )
    return match.call


def iter_calls(text: str) -> Iterator[CallMatch]:
    """Yield every well-formed call in ``text`` in order; unclosed calls are skipped."""
    pos = 0
    scan: Optional[_Scan] = None
    while True:
        start = text.find(CALL_START, pos)
        if start < 0:
            return
        scan = scan or _Scan(text)  # built once per text: every parse below is a look-up
        match = _parse_at(text, start, scan)
        if match is None:
            pos = start + 1
        else:
            yield match
            pos = match.end


def find_calls(text: str) -> List[CallMatch]:
    """All well-formed calls in ``text`` with their character spans."""
    return list(iter_calls(text))


# After a call, these end a phrase: a space before the call was put there for the call.
_GLUE_AFTER = set(".,;:!?)]}'\"%")


def _space_is_ours(after: str) -> bool:
    return after == "" or after.isspace() or after in _GLUE_AFTER


def strip_calls(text: str) -> str:
    """Remove every call, and the space that :func:`insert_calls` put before it.

    That space goes when the call is followed by whitespace, punctuation or the end, which is
    exactly when :func:`insert_calls` writes one, so ``strip_calls(insert_calls(t, calls)) == t``
    for any text without brackets and any offsets. A model's
    ``is [Calculator(2+2) -> 4]4`` becomes ``is 4``.
    """
    out: List[str] = []
    pos = 0
    for m in iter_calls(text):
        chunk = text[pos : m.start]
        if chunk.endswith(" ") and _space_is_ours(text[m.end : m.end + 1]):
            chunk = chunk[:-1]
        out.append(chunk)
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def parse_pending_call(text: str) -> Optional[APICall]:
    """The call waiting for its result at the end of ``text`` (``... [Tool(args) ->``), if any.

    Generation uses this: once the model has written ``->`` inside an open call, the tool runs.
    The text is scanned the way :func:`find_calls` scans it, so a bracket escaped inside the
    arguments (``[T(\\[x(y)) ->``) is never mistaken for the start of the call.
    """
    stripped = text.rstrip()
    if not stripped.endswith(ARROW):
        return None
    # Close the call with an empty result: it parses exactly when the call is pending.
    closed = stripped + " " + CALL_END
    last: Optional[CallMatch] = None
    for last in iter_calls(closed):
        pass
    if last is None or last.end != len(closed) or last.call.result != "":
        return None
    return APICall(last.call.tool, last.call.args, None)


def _first_unescaped(text: str, ch: str, start: int) -> int:
    """Index of the first ``ch`` at or after ``start`` that no backslash escapes, else -1."""
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            i += 2
            continue
        if c == ch:
            return i
        i += 1
    return -1


def call_progress(text: str) -> tuple:
    """Where a call being written stands; ``text`` runs from its ``[`` to what is written so far.

    Returns one of ``("open", None)`` (not finished: go on), ``("pending", APICall)`` (it ends
    in ``->`` after ``[Tool(args)``: run the tool), ``("closed", end)`` (an unescaped ``]``
    at ``end - 1`` closed it before any ``->``) or ``("malformed", None)`` (``->`` after text
    that is not ``[Tool(args)``).

    A ``->`` inside the arguments (parentheses still open, escapes honoured) does not end the
    call: generation reads ``[Echo(what does -> mean) ->`` as one call
    with args ``what does -> mean``, as :func:`parse_call` and the annotation do, so every
    call :func:`format_call` writes is read back the same way while it is being written.
    """
    m = _NAME_RE.match(text, 1)
    if m is not None and m.end() < len(text) and text[m.end()] == "(":
        depth, i, n = 0, m.end() + 1, len(text)
        close = None
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
                i += 2
                continue
            if c == CALL_END:
                return ("closed", i + 1)
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    close = i
                    break
                depth -= 1
            i += 1
        if close is None:
            return ("open", None)  # still inside the arguments, whatever they end with
        rest_start = close + 1
    else:
        head = text[1:]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*|", head):
            return ("open", None)  # the name is still being written
        rest_start = 1
    end = _first_unescaped(text, CALL_END, rest_start)
    if end >= 0:
        return ("closed", end + 1)
    if text.rstrip().endswith(ARROW):
        call = parse_pending_call(text)
        return ("pending", call) if call is not None else ("malformed", None)
    return ("open", None)


def insert_calls(text: str, calls: List[tuple]) -> str:
    """Insert ``(char_offset, APICall)`` pairs into ``text``, each formatted with its result.

    A call goes in at its offset as `` [Tool(args) -> result]`` (a space first) when text
    precedes it and whitespace, punctuation or the end follows it (the call ends a phrase: the
    model's `` [`` token carries that space), else as ``[Tool(args) -> result]``:
    ``is [C] 5``, ``end [C].``, ``is [C]5``, ``1[C]2``. :func:`strip_calls` removes exactly
    those spaces, so it gives ``text`` back. Calls at the same offset keep their order.
    """
    out: List[str] = []
    pos = 0
    for offset, call in sorted(calls, key=lambda oc: oc[0]):
        if not 0 <= offset <= len(text):
            raise ValueError(f"offset {offset} outside the text (length {len(text)})")
        out.append(text[pos:offset])
        lead = " " if offset > 0 and _space_is_ours(text[offset : offset + 1]) else ""
        out.append(lead + format_call(call))
        pos = offset
    out.append(text[pos:])
    return "".join(out)
