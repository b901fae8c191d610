"""Gold programs: a GSM8K-style solution's calculator marks composed into one Calculator
expression over the question's own numbers.

GSM8K rationales mark each calculation, ``<<48/2=24>>`` then ``<<48+24=72>>``. Where every
operand of every mark is a number the question writes (digits or words, read as the Calculator's
grammar reads them with ``numbers_from_text``) or the result of an earlier mark, the marks compose
into one expression, ``48 / 2 + 48`` style, which is the training form the math metric rewards (one
compound call: RESULTS.md, "Several steps"). A mark with any other constant (``/ 100`` for a
percent the question writes as ``20%``, ``* 60`` minutes an hour) makes the problem unusable: the
constrained grammar could not write it.

Parsing uses Python's own expression grammar (:mod:`ast`), never ``eval``.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple, Union

from toolformer.selftrain.ladder import Op, render
from toolformer.selftrain.ladder import value as exact_value
from toolformer.text.numbers import operands

MARK = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


Expr = Union[Fraction, Op]


def _exact(text: str) -> Optional[Fraction]:
    try:
        return Fraction(text.strip().replace(",", "").replace("$", ""))
    except (ValueError, ZeroDivisionError):
        return None


def parse_mark(text: str) -> Optional[Expr]:
    """A mark's left side (``"48/2"``, ``"(3+4)*2"``) as a tree of the ladder's :class:`Op`
    with exact number leaves; None for anything but numbers, ``+ - * /`` and parentheses."""
    try:
        tree = ast.parse(text.replace(",", "").replace("$", "").strip(), mode="eval").body
    except SyntaxError:
        return None

    def walk(n: ast.AST) -> Optional[Expr]:
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            return Fraction(str(n.value))
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            left, right = walk(n.left), walk(n.right)
            if left is None or right is None:
                return None
            return Op(_OPS[type(n.op)], left, right)
        return None

    return walk(tree)


def value(e: Expr) -> Optional[Fraction]:
    """The exact value of ``e``; None where it divides by zero."""
    try:
        return exact_value(e)
    except ZeroDivisionError:
        return None


def operations(e: Expr) -> int:
    """How many operations ``e`` holds."""
    return 0 if not isinstance(e, Op) else 1 + operations(e.left) + operations(e.right)


def count_operations(expression: str) -> int:
    """The ``+ - * /`` operators of an expression whose tokens are spaced, infix or prefix:
    a call's arguments (``"5 * 8 + 3"``: 2), SVAMP's ``"( 76.0 - 25.0 )"`` (1), MAWPS's
    ``"* 56.0 9.0"`` (1); a signed number (``-5``) is no operator."""
    return sum(1 for tok in expression.replace("(", " ").replace(")", " ").split() if tok in "+-*/")


def _ground(e: Expr, given: Sequence[Fraction], earlier: Dict[Fraction, Expr]) -> Optional[Expr]:
    """``e`` with each leaf that is not one of the question's numbers replaced by the earlier
    mark that computed it; None when a leaf is neither, or both (``2 * 8 = 16`` then ``32 +
    16`` where the question also writes 16: the program is ambiguous, so it is not used)."""
    if isinstance(e, Fraction):
        if e in given and e in earlier:  # which one the mark meant is unknown
            return None
        return e if e in given else earlier.get(e)
    left, right = _ground(e.left, given, earlier), _ground(e.right, given, earlier)
    return None if left is None or right is None else Op(e.op, left, right)


def compose(question: str, rationale: str, gold: float, max_operations: int = 3) -> Optional[str]:
    """The solution of ``rationale`` (GSM8K marks) as one Calculator expression over the
    numbers of ``question``, or None where it cannot be written so: a mark that does not
    parse or whose stated result is not its value, an operand that is neither a number of the
    question nor an earlier result (or is both), more than ``max_operations`` operations, or a
    final value other than ``gold``.

    Example: ``compose("... 48 of her friends ... 24 more ...", "<<48+24=72>>72", 72)`` ->
    ``"48 + 24"``."""
    given = [Fraction(str(x)) for x in operands(question, words=True)]
    earlier: Dict[Fraction, Expr] = {}
    last: Optional[Expr] = None
    for lhs, rhs in MARK.findall(rationale):
        tree = parse_mark(lhs)
        stated = _exact(rhs)
        if tree is None or stated is None or value(tree) != stated:
            return None
        grounded = _ground(tree, given, earlier)
        if grounded is None:
            return None
        earlier.setdefault(stated, grounded)
        last = grounded
    if last is None or not isinstance(last, Op) or operations(last) > max_operations:
        return None
    if value(last) != Fraction(str(gold)):
        return None
    return render(last)


def gsm8k_programs(
    rows: Sequence[Dict[str, str]], max_operations: int = 3
) -> List[Tuple[str, str, float]]:
    """``(question, expression, gold)`` for each GSM8K row whose marks compose
    (:func:`compose`); rows that do not are left out."""
    from toolformer.selftrain.gsm8k import parse_gsm8k

    out = []
    for i, row in enumerate(rows):
        question, _, gold = parse_gsm8k(row, f"row {i + 1}")
        expr = compose(question, str(row["answer"]), gold, max_operations)
        if expr is not None:
            out.append((question, expr, gold))
    return out
