"""The Calculator tool: + - * / and parentheses, computed exactly, rounded to 2 decimals.

Paper semantics (Schick et al. 2023, Appendix A): only the four operations, the result rounded
to two decimals, no result on invalid input. The expression is never handed to ``eval`` or a
CAS: it is tokenized, parsed into a small AST of whitelisted nodes, and evaluated with
:class:`fractions.Fraction`, with bounds on every size so that hostile input fails in
milliseconds.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from toolformer.grammar import NO_CALL, CalculatorArgs
from toolformer.text.numbers import (
    EXPRESSION_NUMBER,
    exact_value,
    format_number,
    has_number,
    numbers_in,
)
from toolformer.tools.base import (
    COMPUTE_SETTINGS,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOptionsError,
    load_prompt,
)

MAX_EXPRESSION_CHARS = 500
MAX_LITERAL_DIGITS = 30
MAX_DEPTH = 50  # nested parentheses and unary signs
MAX_BITS = 512  # numerator / denominator of any intermediate (~154 digits)

_TOKEN_RE = re.compile(rf"\s*(?:(?P<num>{EXPRESSION_NUMBER})|(?P<op>\*\*|[-+*/()^x×X÷−]))")
_ALIASES = {"x": "*", "X": "*", "×": "*", "÷": "/", "−": "-"}
_BINARY: Dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    """A number of the expression, exact."""

    value: Fraction


@dataclass(frozen=True)
class Unary:
    op: str  # "+" or "-"
    operand: "Node"


@dataclass(frozen=True)
class Binary:
    op: str  # one of + - * /
    left: "Node"
    right: "Node"


Node = Union[Literal, Unary, Binary]
Token = Tuple[str, str]  # ("num" | "op", text)


# --------------------------------------------------------------------------- tokenizer


def tokenize(expression: str) -> List[Token]:
    """Split an expression into number and operator tokens; anything else is an error."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolInputError(
            f"expression too long ({len(expression)} characters, at most {MAX_EXPRESSION_CHARS})"
        )
    tokens: List[Token] = []
    pos = 0
    text = expression.rstrip()
    if text.endswith("="):  # "3 + 4 =" as a model may write it
        text = text[:-1].rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            bad = text[pos:].lstrip()[:1]
            raise ToolInputError(
                f"unsupported character {bad!r}: the Calculator "
                "takes numbers, + - * / and parentheses"
            )
        pos = m.end()
        if m.group("num") is not None:
            digits = sum(ch.isdigit() for ch in m.group("num"))
            if digits > MAX_LITERAL_DIGITS:
                raise ToolInputError(
                    f"number too long ({digits} digits, at most {MAX_LITERAL_DIGITS})"
                )
            tokens.append(("num", m.group("num")))
        else:
            op = m.group("op")
            if op in ("**", "^"):
                raise ToolInputError("powers are not supported: the Calculator takes + - * / only")
            tokens.append(("op", op))
    return _resolve_times_signs(tokens)


def _resolve_times_signs(tokens: List[Token]) -> List[Token]:
    """``x``/``×``/``÷`` count as * and / only between operands (``3 x 4``, ``(2)×(3)``)."""
    out: List[Token] = []
    for i, (kind, text) in enumerate(tokens):
        if kind == "op" and text in ("x", "X", "×", "÷"):
            prev = tokens[i - 1] if i > 0 else None
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            left_ok = prev is not None and (prev[0] == "num" or prev[1] == ")")
            right_ok = nxt is not None and (nxt[0] == "num" or nxt[1] in ("(", "-", "+", "−"))
            if not (left_ok and right_ok):
                raise ToolInputError(
                    f"{text!r} is read as a multiplication or division sign only between numbers"
                )
        out.append((kind, _ALIASES.get(text, text) if kind == "op" else text))
    return out


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over: expr := term (+|- term)*; term := factor (*|/ factor)*;
    factor := (+|-) factor | number | ( expr )."""

    def __init__(self, tokens: List[Token]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> Optional[Token]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ToolInputError("incomplete expression: it ends with an operator or '('")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if not self.tokens:
            raise ToolInputError("empty expression")
        node = self.expr()
        tok = self.peek()
        if tok is not None:
            hint = "unbalanced ')'" if tok == ("op", ")") else f"unexpected {tok[1]!r}"
            raise ToolInputError(f"malformed expression: {hint}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            node = Binary(op, node, self.factor())
        return node

    def factor(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolInputError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        try:
            kind, text = self.take()
            if kind == "num":
                return Literal(exact_value(text))
            if text in ("+", "-"):
                return Unary(text, self.factor())
            if text == "(":
                node = self.expr()
                if self.peek() != ("op", ")"):
                    raise ToolInputError("malformed expression: missing ')'")
                self.take()
                return node
            raise ToolInputError(f"malformed expression: unexpected {text!r}")
        finally:
            self.depth -= 1


def parse_expression(expression: str) -> Node:
    """Parse an arithmetic expression into a whitelisted AST (raises ToolInputError)."""
    return _Parser(tokenize(expression)).parse()


def has_operation(node: Node) -> bool:
    """Whether the expression holds a binary + - * / (a sign alone is no operation)."""
    if isinstance(node, Binary):
        return True
    return isinstance(node, Unary) and has_operation(node.operand)


# --------------------------------------------------------------------------- evaluation


def _bounded(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise ToolInputError(
            "result too large: an intermediate value exceeds the Calculator's range"
        )
    return value


def evaluate_node(node: Node) -> Fraction:
    """Evaluate an AST exactly; only Literal, Unary and Binary nodes of + - * / exist."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Unary):
        value = evaluate_node(node.operand)
        return -value if node.op == "-" else value
    if isinstance(node, Binary):
        left, right = evaluate_node(node.left), evaluate_node(node.right)
        if node.op == "/" and right == 0:
            raise ToolError("division by zero")
        return _bounded(_BINARY[node.op](left, right))
    raise ToolInputError(f"unsupported expression node {type(node).__name__}")


def evaluate(expression: str) -> Fraction:
    """The exact value of an expression of numbers, + - * / and parentheses."""
    return evaluate_node(parse_expression(expression))


def calculate(expression: str, decimals: int = 2) -> str:
    """Evaluate and format (:func:`~toolformer.text.numbers.format_number`, rounded half away
    from zero): ``calculate("400/1400") == "0.29"``."""
    return format_number(evaluate(expression), decimals)


class Calculator(Tool):
    """+ - * / with parentheses, exact arithmetic, the result rounded to 2 decimals."""

    name = "Calculator"
    description = (
        "Computes an arithmetic expression with + - * / and parentheses; "
        "the result is rounded to 2 decimals."
    )
    prompt = load_prompt("calculator.txt")
    annotation = COMPUTE_SETTINGS
    example_args = "400 / 1400"
    arg_grammar = CalculatorArgs()  # see argument_grammar(): numbers may come from the text
    argument_name = "expression"
    manifest_safe_options = frozenset({"decimals", "numbers_from_text"})

    def __init__(self, decimals: int = 2, numbers_from_text: bool = False):
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 10:
            raise ToolOptionsError(
                f"Calculator option decimals={decimals!r}: expected an integer from 0 to 10"
            )
        if not isinstance(numbers_from_text, bool):
            raise ToolOptionsError(
                f"Calculator option numbers_from_text={numbers_from_text!r}: expected true or false"
            )
        self.decimals = decimals
        self.numbers_from_text = numbers_from_text

    def argument_grammar(self, before: Optional[str] = None) -> Any:
        """Numbers, ``+ - * / ( ) .`` and spaces, with at least one operation (as
        :meth:`check_call` asks); with ``numbers_from_text``, only numbers written in ``before``,
        in digits or in words (:func:`~toolformer.text.numbers.numbers_in`), and
        :data:`~toolformer.grammar.NO_CALL` (no call at all) when it has none: "What is the
        capital of France?" has nothing to compute. ``before`` None: any text (every number)."""
        if not self.numbers_from_text or before is None:
            return CalculatorArgs()
        numbers = numbers_in(before, words=True)
        return CalculatorArgs(numbers=numbers) if numbers else NO_CALL

    def available(self, before: str) -> bool:
        """With ``numbers_from_text``, only after a text that holds a number (digits or words)."""
        return not self.numbers_from_text or has_number(before, words=True)

    def check_call(self, args: str) -> Optional[str]:
        """A well-formed expression with at least one operation (+ - * /), as in every example
        of the paper: ``Calculator(180000)`` computes nothing and only echoes its argument."""
        try:
            node = parse_expression(self.parse_args(args))
        except ToolInputError as exc:
            return str(exc)
        return (
            None
            if has_operation(node)
            else (f"Calculator needs an operation (+ - * /), e.g. Calculator({self.example_args})")
        )

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        return calculate(self.parse_args(args), self.decimals)
