"""Argument grammars: what a tool's call may hold, as small automata over UTF-8 bytes.

Each tool declares an :class:`ArgGrammar` for the text between ``(`` and ``)`` of its call:
the Calculator numbers, ``+ - * / ( ) .`` and spaces (optionally only numbers
that occur in the text before the call), the Calendar nothing, the text tools (WikiSearch, QA,
MT) text without ``[``, ``]``, ``->``, a backslash or a newline, up to a length. A tool that
declares nothing gets :data:`PERMISSIVE`. :class:`CallGrammar` puts them together into the
whole call after ``[``: a registered tool's name, ``(``, its arguments, ``)`` and then ``]``
(candidate sampling) or `` ->`` (generation). A tool whose grammar for the text before the
call is :data:`NO_CALL` (the Calculator with ``numbers_from_text`` after a text without a
number) is left out of that call's grammar; :func:`call_grammar` is None when no tool is left,
and the ``[`` must then not be written at all.

The automata work on bytes, not characters, so that a token holding part of a multi-byte
character can be checked on its own (every byte >= 0x80 is ordinary text to an argument
grammar). :class:`CallGrammar` also reads the argument bytes as UTF-8: only well-formed
characters, and the call cannot close in the middle of one (a ``)`` there would leave half a
character, decoded as U+FFFD, in the output). Every state they
can reach has a way to finish the call, so a decoder that only ever picks allowed tokens ends
with a call that :func:`toolformer.syntax.parse_call` accepts. :mod:`toolformer.constrain`
turns a grammar into token masks for a tokenizer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import FrozenSet, Hashable, Iterable, Optional, Sequence, Tuple

from toolformer.errors import UserError

State = Hashable

_SPACE = 0x20
_OPEN, _CLOSE = ord("("), ord(")")
_DASH, _GT = ord("-"), ord(">")
# Bytes no text argument may hold: call brackets, the escape character, line breaks.
_TEXT_FORBIDDEN = frozenset(b"[]\\\n\r") | frozenset(range(0x20)) | {0x7F}
# Bytes whose meaning depends on the state; every other byte is "plain" text.
SPECIAL_BYTES = frozenset(b"[]()\\->") | frozenset(range(0x21))  # controls and space too


def utf8_step(pending: object, byte: int) -> Optional[object]:
    """One byte of UTF-8 (RFC 3629): the decoder's next state, or None for an ill-formed byte.

    ``pending``: 0 at a character boundary, else ``(bytes still needed, lowest, highest)``
    allowed for the next byte (``E0`` needs ``A0..BF`` next: no overlong forms; ``ED`` needs
    ``80..9F``: no surrogates; ``F4`` needs ``80..8F``: nothing above U+10FFFF). ``C0``, ``C1``
    and ``F5..FF`` never occur.
    """
    if pending == 0:
        if byte < 0x80:
            return 0
        if 0xC2 <= byte <= 0xDF:
            return (1, 0x80, 0xBF)
        if 0xE0 <= byte <= 0xEF:
            return (2, 0xA0 if byte == 0xE0 else 0x80, 0x9F if byte == 0xED else 0xBF)
        if 0xF0 <= byte <= 0xF4:
            return (3, 0x90 if byte == 0xF0 else 0x80, 0x8F if byte == 0xF4 else 0xBF)
        return None
    need, lo, hi = pending  # type: ignore[misc]
    if not lo <= byte <= hi:
        return None
    return 0 if need == 1 else (need - 1, 0x80, 0xBF)


def utf8_bad_tail(data: bytes) -> int:
    """The last position of ``data`` inside an ill-formed piece of UTF-8 (a stray continuation
    byte, a byte that never occurs, a character cut short, at the end too), else -1.

    UTF-8 synchronises at every lead byte, so from any character boundary after that
    position the bytes decode the same way, as whole characters.
    """
    try:
        data.decode("utf-8")
        return -1  # the common case, at C speed
    except UnicodeDecodeError:
        pass
    bad, pending = -1, 0
    for k, b in enumerate(data):
        nxt = utf8_step(pending, b)
        if nxt is None and pending != 0:  # the character in progress was cut short
            bad = k - 1
            nxt = utf8_step(0, b)
        if nxt is None:
            bad, nxt = k, 0
        pending = nxt
    if pending != 0:
        bad = len(data) - 1
    return bad


_OPERATORS = frozenset(b"+-*/")
_DIGITS = frozenset(b"0123456789")


class GrammarError(UserError):
    """A grammar that cannot be used: it admits nothing, or no token sequence can write it."""


class ArgGrammar:
    """An automaton over the bytes of a call's argument text (between ``(`` and ``)``).

    ``step(state, byte)`` returns the next state or None (the byte is not allowed);
    ``can_close(state)``: whether the arguments may end here (a ``)`` at depth 0 follows);
    ``absorbs(state)``: the state every plain byte (not in :data:`SPECIAL_BYTES`) leads to
    from ``state`` if that is always the same accepted state, else None (lets the token-mask
    builder accept whole runs of plain tokens at once). ``max_bytes`` is a soft cap for
    decoding: once the arguments are that long, only tokens that bring the call closer to its
    end are allowed (the last token may pass the cap by a few bytes).
    """

    max_bytes: int = 200

    def start(self) -> State:
        raise NotImplementedError

    def step(self, state: State, byte: int) -> Optional[State]:
        raise NotImplementedError

    def can_close(self, state: State) -> bool:
        raise NotImplementedError

    def absorbs(self, state: State) -> Optional[State]:
        return None

    def accepts(self, args: str) -> bool:
        """Whether ``args`` (the text between the parentheses) is in the grammar."""
        state: Optional[State] = self.start()
        for b in args.encode("utf-8"):
            state = self.step(state, b)
            if state is None:
                return False
        return self.can_close(state)

    def check(self, tool: str) -> None:
        """Raise :class:`GrammarError` if the grammar admits no argument text at all."""
        if self.max_bytes < 0 or not self._admits_something():
            raise GrammarError(
                f"the argument grammar of tool {tool} admits no argument text; "
                f"declare one that accepts at least one call (e.g. TextArgs())"
            )

    def _admits_something(self) -> bool:
        # breadth-first over printable ASCII, up to max_bytes: enough for every grammar here
        seen, frontier = set(), [self.start()]
        for _ in range(min(self.max_bytes, 64) + 1):
            nxt = []
            for s in frontier:
                if self.can_close(s):
                    return True
                for b in range(0x20, 0x7F):
                    t = self.step(s, b)
                    if t is not None and t not in seen:
                        seen.add(t)
                        nxt.append(t)
            frontier = nxt
            if not frontier:
                return False
        return False


@dataclass(frozen=True)
class EmptyArgs(ArgGrammar):
    """No arguments at all: ``[Calendar()]``."""

    max_bytes: int = 0

    def start(self) -> State:
        return 0

    def step(self, state: State, byte: int) -> Optional[State]:
        return None

    def can_close(self, state: State) -> bool:
        return True


@dataclass(frozen=True)
class TextArgs(ArgGrammar):
    """Free text without ``[``, ``]``, ``->``, a backslash or a line break; at least one
    non-space byte; parentheses balanced (nested up to ``max_depth``), so that the first
    ``)`` at depth 0 is the end of the arguments, as :func:`toolformer.syntax.parse_call` reads it.

    State: ``(depth, after_dash, non_empty)``.
    """

    max_bytes: int = 120
    max_depth: int = 2

    def start(self) -> State:
        return (0, False, False)

    def step(self, state: State, byte: int) -> Optional[State]:
        depth, dash, nonempty = state
        if byte in _TEXT_FORBIDDEN or (dash and byte == _GT):
            return None
        if byte == _OPEN:
            return (depth + 1, False, True) if depth < self.max_depth else None
        if byte == _CLOSE:
            return (depth - 1, False, True) if depth > 0 else None
        return (depth, byte == _DASH, nonempty or byte != _SPACE)

    def can_close(self, state: State) -> bool:
        return state[0] == 0 and state[2]

    def absorbs(self, state: State) -> Optional[State]:
        # plain bytes keep the depth, clear the dash and make the text non-empty
        return (state[0], False, True) if state[2] else None


PERMISSIVE = TextArgs(max_bytes=200, max_depth=3)


@dataclass(frozen=True)
class CalculatorArgs(ArgGrammar):
    """Arithmetic: numbers, ``+ - * /``, parentheses, a decimal point and spaces.

    With ``numbers``, only those numbers may appear (e.g.
    :func:`toolformer.text.numbers.numbers_in` the text before the call); with
    ``require_operator``, at least one operation (a bare number teaches nothing; the paper's
    examples all compute something).

    State: ``(phase, depth, number_so_far, has_operator)``; phases: ``o`` expecting an
    operand, ``n`` after a unary minus, ``i`` integer digits, ``p`` just after a point, ``f``
    fraction digits, ``a`` after an operand.
    """

    numbers: Optional[FrozenSet[str]] = None
    require_operator: bool = True
    max_bytes: int = 40
    max_depth: int = 2

    def __post_init__(self) -> None:
        if self.numbers is not None:
            prefixes = {n[:k] for n in self.numbers for k in range(len(n) + 1)}
            object.__setattr__(self, "_prefixes", frozenset(prefixes))

    def _digit_ok(self, number: str) -> bool:
        return self.numbers is None or number in self._prefixes  # type: ignore[attr-defined]

    def _keep(self, number: str) -> str:
        # the digits matter only when numbers are restricted (fewer states otherwise)
        return "" if self.numbers is None else number

    def _end_ok(self, number: str) -> bool:
        return self.numbers is None or number in self.numbers

    def start(self) -> State:
        return ("o", 0, "", False)

    def step(self, state: State, byte: int) -> Optional[State]:
        phase, depth, num, has_op = state
        ch = chr(byte)
        if phase in ("o", "n"):
            if byte in _DIGITS:
                return ("i", depth, self._keep(ch), has_op) if self._digit_ok(ch) else None
            if byte == _OPEN:
                return ("o", depth + 1, "", has_op) if depth < self.max_depth else None
            if phase == "o" and byte == _SPACE:
                return state
            if phase == "o" and byte == _DASH:
                return ("n", depth, "", has_op)
            return None
        if phase in ("i", "p", "f"):
            if byte in _DIGITS:
                nxt = num + ch
                return (
                    ("f" if phase != "i" else "i", depth, self._keep(nxt), has_op)
                    if self._digit_ok(nxt)
                    else None
                )
            if phase == "i" and byte == ord("."):
                return (
                    ("p", depth, self._keep(num + "."), has_op)
                    if self._digit_ok(num + ".")
                    else None
                )
            if phase == "p" or not self._end_ok(num):
                return None
            state = ("a", depth, "", has_op)  # the number ends here; go on as after an operand
        # phase "a"
        if byte == _SPACE:
            return state
        if byte in _OPERATORS:
            return ("o", depth, "", True)
        if byte == _CLOSE and depth > 0:
            return ("a", depth - 1, "", has_op)
        return None

    def can_close(self, state: State) -> bool:
        phase, depth, num, has_op = state
        if depth or (self.require_operator and not has_op):
            return False
        return phase == "a" or (phase in ("i", "f") and self._end_ok(num))


# --------------------------------------------------------------------------- the whole call


@dataclass(frozen=True)
class CallGrammar:
    """The text of a call after its ``[``: ``Name(args)`` then ``]`` or `` ->``.

    ``tools``: ``(name, ArgGrammar)`` pairs; ``ending``: ``"]"`` (candidate sampling: the
    call closes) or ``"->"`` (generation: the tool runs next); one space may precede it.
    With ending ``"->"`` the call ends exactly as :func:`toolformer.syntax.format_call_prefix`
    writes it, ``) ->`` (a budget that closes the call wrote ``)->`` before).
    States: ``("n", prefix)`` in the name, ``("a", tool, arg_state, utf8)`` in the arguments
    (``utf8``: :func:`utf8_step`'s state), ``("t", tool, written)`` after the ``)``,
    ``("d", tool)`` done (nothing may follow).
    """

    tools: Tuple[Tuple[str, ArgGrammar], ...]
    ending: str = "]"

    def __post_init__(self) -> None:
        if not self.tools:
            raise GrammarError("a call grammar needs at least one tool")
        if self.ending not in ("]", "->"):
            raise ValueError("ending must be ']' or '->'")
        heads = {}
        for name, grammar in self.tools:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise GrammarError(f"tool name {name!r} cannot be written in a call")
            grammar.check(name)
            heads[name + "("] = name
        prefixes = {h[:k] for h in heads for k in range(len(h))}
        object.__setattr__(self, "_heads", heads)
        object.__setattr__(self, "_name_prefixes", frozenset(prefixes))
        object.__setattr__(self, "_args", dict(self.tools))
        # "]" or " ]" closes a candidate; a call that the tool is to run ends " ->", as written
        tails = (self.ending, " " + self.ending) if self.ending == "]" else (" " + self.ending,)
        object.__setattr__(self, "_tails", tails)
        object.__setattr__(self, "_distances", {})

    @classmethod
    def for_tools(cls, tools: Iterable[Tuple[str, ArgGrammar]], ending: str = "]") -> "CallGrammar":
        return cls(tuple(sorted(tools, key=lambda t: t[0])), ending)

    def start(self) -> State:
        return ("n", "")

    def arg_grammar(self, tool: str) -> ArgGrammar:
        return self._args[tool]  # type: ignore[attr-defined]

    def step(self, state: State, byte: int) -> Optional[State]:
        kind = state[0]
        if kind == "n":
            text = state[1] + chr(byte)
            if text in self._heads:  # type: ignore[attr-defined]
                tool = self._heads[text]  # type: ignore[attr-defined]
                return ("a", tool, self._args[tool].start(), 0)  # type: ignore[attr-defined]
            return ("n", text) if byte < 0x80 and text in self._name_prefixes else None  # type: ignore[attr-defined]
        if kind == "a":
            tool, inner, pending = state[1], state[2], state[3]
            grammar = self._args[tool]  # type: ignore[attr-defined]
            if byte == _CLOSE and pending == 0 and grammar.can_close(inner):
                # the first ")" at depth 0 ends the arguments (no grammar lets one through)
                return ("t", tool, "")
            utf8 = utf8_step(pending, byte)
            nxt = None if utf8 is None else grammar.step(inner, byte)
            return None if nxt is None else ("a", tool, nxt, utf8)
        if kind == "t":
            text = state[2] + chr(byte)
            if text in self._tails:  # type: ignore[attr-defined]
                return ("d", state[1])
            return ("t", state[1], text) if any(t.startswith(text) for t in self._tails) else None  # type: ignore[attr-defined]
        return None

    def absorbs(self, state: State) -> Optional[State]:
        # the state after any run of plain bytes that is well-formed UTF-8 to its end (the
        # character in progress completed): the token-mask builder checks that each token of
        # the range is (TokenIndex.last_special), so a run never ends inside a character
        if state[0] != "a":
            return None
        inner = self._args[state[1]].absorbs(state[2])  # type: ignore[attr-defined]
        return None if inner is None else ("a", state[1], inner, 0)

    def distance(self, state: State) -> int:
        """The fewest bytes that complete the call from ``state`` (0 when done)."""
        cache = self._distances  # type: ignore[attr-defined]
        found = cache.get(state)
        if found is None:
            found = cache[state] = self._bfs(state)
        return found

    def _bfs(self, state: State) -> int:
        seen, frontier, steps = {state}, [state], 0
        while frontier:
            if any(self.done(s) for s in frontier):
                return steps
            nxt = []
            for s in frontier:
                # printable ASCII; inside a character, the lowest byte that continues it
                probe = range(0x20, 0x7F) if s[0] != "a" or s[3] == 0 else (s[3][1],)
                for b in probe:
                    t = self.step(s, b)
                    if t is not None and t not in seen:
                        seen.add(t)
                        nxt.append(t)
            frontier, steps = nxt, steps + 1
            if steps > 512:
                break
        return 1 << 20  # cannot finish (a grammar check prevents this for the start state)

    @staticmethod
    def done(state: State) -> bool:
        return state[0] == "d"

    @staticmethod
    def in_args(state: State) -> bool:
        return state[0] == "a"

    def advance(self, state: State, data: bytes) -> Tuple[Optional[State], int]:
        """``(state after data, bytes of data that went into the arguments)``; None if rejected."""
        arg_bytes = 0
        for b in data:
            if state[0] == "a":
                arg_bytes += 1
            state = self.step(state, b)
            if state is None:
                return None, arg_bytes
        return state, arg_bytes

    def accepts(self, text: str) -> bool:
        """Whether ``text`` (after the ``[``) is exactly one complete call of the grammar."""
        state, _ = self.advance(self.start(), text.encode("utf-8"))
        return state is not None and self.done(state)


class _NoCall(ArgGrammar):
    """The marker :data:`NO_CALL`: no argument text at all (never part of a CallGrammar)."""

    max_bytes = 0

    def start(self) -> State:
        return 0

    def step(self, state: State, byte: int) -> Optional[State]:
        return None

    def can_close(self, state: State) -> bool:
        return False

    def __repr__(self) -> str:
        return "NO_CALL"


NO_CALL = _NoCall()
"""What ``tool.argument_grammar(before)`` returns when the tool cannot be called after the text
``before`` (the Calculator with ``numbers_from_text`` when it holds no number): the tool is
left out of that call's :func:`call_grammar`."""


def tool_arg_grammar(tool: object, before: Optional[str] = None) -> ArgGrammar:
    """The argument grammar a tool declares (``tool.argument_grammar(before)``), else PERMISSIVE;
    may be :data:`NO_CALL`.

    ``before``: the text before the call (the Calculator may restrict numbers to it); None
    (the text is not known, e.g. to check a grammar against a tokenizer): the tool's grammar for
    any text (``tool.argument_grammar()`` with its own default).
    """
    fn = getattr(tool, "argument_grammar", None)
    grammar = (fn() if before is None else fn(before)) if callable(fn) else None
    if grammar is None:
        return PERMISSIVE
    if grammar is NO_CALL:
        return grammar
    if not isinstance(grammar, ArgGrammar):
        raise GrammarError(
            f"tool {getattr(tool, 'name', tool)}: argument_grammar() must return an "
            f"ArgGrammar, got {type(grammar).__name__}"
        )
    return grammar


def tool_available(tool: object, before: str) -> bool:
    """Whether ``tool`` may be called after the text ``before`` (its ``available(before)``;
    True for a tool without one): exactly when :func:`tool_arg_grammar` is not
    :data:`NO_CALL` there, and cheaper to ask."""
    fn = getattr(tool, "available", None)
    return bool(fn(before)) if callable(fn) else True


def call_grammar(
    tools: Sequence[object], ending: str = "]", before: Optional[str] = None
) -> Optional[CallGrammar]:
    """The :class:`CallGrammar` of ``tools`` (objects with ``name`` and maybe ``argument_grammar``)
    for a call after the text ``before`` (None: any text, see :func:`tool_arg_grammar`).

    Tools whose grammar there is :data:`NO_CALL` are left out; None when no tool is left (no
    call may open there). Equal grammars come back as the same object (cached), so their token
    masks are shared.
    """
    pairs = tuple(sorted((t.name, tool_arg_grammar(t, before)) for t in tools))  # type: ignore[attr-defined]
    pairs = tuple(p for p in pairs if p[1] is not NO_CALL)
    return _cached_call_grammar(pairs, ending) if pairs else None


@functools.lru_cache(maxsize=4096)
def _cached_call_grammar(pairs: Tuple[Tuple[str, ArgGrammar], ...], ending: str) -> CallGrammar:
    return CallGrammar(pairs, ending)
