"""A leveled corpus of generated arithmetic word problems (``--corpus ladder``): a curriculum
that climbs from the one-step problems of ``--corpus arithmetic`` to three-step ones.

Why: the model trained on :mod:`toolformer.selftrain.word_problems` solves its one-step
problems but picks the wrong operation when the phrasing decides it ("She ate six of them. How
many are left?" -> ``24 + 6``; "How many bags can he fill?" -> ``8 * 40``), misses numbers
written as words, uses distractor numbers, and fails two- and three-step problems. Each level
adds one of these difficulties, so Grow has problems at the edge of what the model solves:

1. today's one-step problems (:data:`toolformer.selftrain.word_problems.ONE_STEP`, drawn the
   same way);
2. still one operation, harder to read: operands as number words ("twenty-four", "a dozen",
   "twice as many", "half"), an unused distractor number, units and rates (dollars per hour,
   kilometers per hour, dollars per kilogram), and phrasings that decide the operation
   ("left", "more than"/"fewer than", "times as many", "how many bags can she fill", "how many
   days will N last", "how many did she have at first", "how many more does she need", "shared
   equally", "in total");
3. two operations (``a * b + c``, ``c - a * b``, ``(a + b) / c``, ``(a - b) * c``,
   ``a + b - c``, ``a / b + c``, ``a - a / b``, change from a payment ``p - a * b``, ...);
4. three operations (``a * b + c * d``, ``(a + b) * c - d``, ``(a * b - c) / d``,
   ``p - (a * b + c)``, ...).

Every row is ``{"question", "answer", "level", "expression"}``: ``answer`` has GSM8K's shape
(one ``<<a op b=c>>`` mark per operation, then ``\\n#### n``), ``expression`` is the whole
computation as one Calculator expression (``"(45 + 15) / 4"``) whose value is the answer. All
intermediate results are positive integers (divisions are exact). Every number of the
expression is written in the question, in digits or words that
:func:`toolformer.text.numbers.operands` reads (``words=True``), so a call is grounded.

The templates are generic school arithmetic written without reference to any evaluation set;
the selftrain contamination guard still compares every question with SVAMP, MAWPS and GSM8K.
Leveled curricula for generated problems are outside the Toolformer paper.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Dict, List, Optional, Tuple, Union

from toolformer.errors import UserError
from toolformer.selftrain import word_problems as wp
from toolformer.selftrain.spec import is_sized_spec, parse_sized_spec
from toolformer.text.numbers import format_number

SINGULAR = {plural: one for one, plural in wp.ITEMS + wp.GROUPS}  # "1 sticker", not "1 stickers"

NAME = "ladder"
DEFAULT_SIZE = 4000
LEVELS = (1, 2, 3, 4)
MAX_ANSWER = 5000

# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Op:
    """One operation of a problem's computation: ``left op right``; a leaf is an ``int``."""

    op: str  # "+", "-", "*", "/"
    left: "Expr"
    right: "Expr"


Expr = Union[int, Op]
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def add(a: Expr, b: Expr) -> Op:
    """``a + b``."""
    return Op("+", a, b)


def sub(a: Expr, b: Expr) -> Op:
    """``a - b``."""
    return Op("-", a, b)


def mul(a: Expr, b: Expr) -> Op:
    """``a * b``."""
    return Op("*", a, b)


def div(a: Expr, b: Expr) -> Op:
    """``a / b``."""
    return Op("/", a, b)


def value(e: Expr) -> Fraction:
    """The exact value of ``e`` (its leaves ``int`` or ``Fraction``); raises ZeroDivisionError
    for a division by zero."""
    if not isinstance(e, Op):
        return Fraction(e)
    a, b = value(e.left), value(e.right)
    return {"+": a + b, "-": a - b, "*": a * b}[e.op] if e.op != "/" else a / b


def marks(e: Expr) -> List[Tuple[str, Fraction]]:
    """The GSM8K marks of ``e``, one per operation in the order they are computed: ``[("8*5",
    40), ("40+3", 43)]`` for ``8 * 5 + 3`` (each operand is a number of the question or an
    earlier result)."""
    if isinstance(e, int):
        return []
    out = marks(e.left) + marks(e.right)
    a, b = format_number(value(e.left)), format_number(value(e.right))
    out.append((f"{a}{e.op}{b}", value(e)))
    return out


def render(e: Expr) -> str:
    """``e`` as one Calculator expression: spaces around operators, parentheses only where the
    usual precedence needs them (``"(45 + 15) / 4"``, ``"3 * 12 - 10"``); a ``Fraction`` leaf
    as a decimal (``0.5``)."""
    if not isinstance(e, Op):
        return str(e) if isinstance(e, int) else format_number(e)

    def side(child: Expr, right: bool) -> str:
        text = render(child)
        if isinstance(child, Op):
            lower = _PREC[child.op] < _PREC[e.op]
            # a - (b + c), a / (b * c): the right side of - and / keeps its parentheses
            if lower or (right and _PREC[child.op] == _PREC[e.op] and e.op in "-/"):
                return f"({text})"
        return text

    return f"{side(e.left, False)} {e.op} {side(e.right, True)}"


def leaves(e: Expr) -> List[int]:
    """The numbers of ``e`` (its leaves), left to right."""
    return [e] if isinstance(e, int) else leaves(e.left) + leaves(e.right)


def _valid(e: Expr) -> bool:
    """Every result is a positive integer and the answer at most :data:`MAX_ANSWER`."""
    if isinstance(e, int):
        return e > 0
    if not (_valid(e.left) and _valid(e.right)):
        return False
    v = value(e)
    return v > 0 and v.denominator == 1 and v <= MAX_ANSWER


# --------------------------------------------------------------------------- numbers in words

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """``n`` (1..100) in words: ``24`` -> ``"twenty-four"``, ``100`` -> ``"one hundred"``.
    Raises ValueError outside 1..100."""
    if not 1 <= n <= 100:
        raise ValueError(f"number_words takes 1..100, got {n}")
    if n == 100:
        return "one hundred"
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


class _Say:
    """Writes a problem's numbers: in a "words" problem most numbers up to 100 as words (12 of
    things sometimes as "a dozen"), else in digits."""

    def __init__(self, rng: random.Random, words: bool):
        self.rng, self.words = rng, words

    def n(self, x: int) -> str:
        if self.words and x <= 100 and self.rng.random() < 0.75:
            return number_words(x)
        return str(x)

    def count(self, x: int, noun: str) -> str:
        if self.words and x == 12 and self.rng.random() < 0.5:
            return f"a dozen {noun}"
        return f"{self.n(x)} {SINGULAR.get(noun, noun) if x == 1 else noun}"

    def money(self, x: int) -> str:
        text = self.n(x)
        return f"${text}" if text.isdigit() and self.rng.random() < 0.3 else f"{text} dollars"

    def times(self, k: int) -> str:
        """``k`` times: "twice" for 2 (a words problem), else "three times" / "3 times"."""
        if k == 2 and (self.words or self.rng.random() < 0.5):
            return "twice"
        return f"{self.n(k)} times"


# --------------------------------------------------------------------------- vocabulary

JOBS = ("walking dogs", "washing cars", "babysitting", "tutoring", "at the bakery", "mowing lawns")
VEHICLES = ("A train", "A bus", "A truck", "A car", "A cyclist", "A boat")
FOODS = ("rice", "cheese", "grapes", "potatoes", "flour", "cherries", "coffee beans", "carrots")
# (what is used each day, the one who uses it): "How many days will 12 glasses last?"
SUPPLIES = (
    ("glasses of milk", "drinks"),
    ("cans of cat food", "opens"),
    ("apples", "eats"),
    ("pages of a diary", "fills"),
    ("bottles of water", "drinks"),
    ("scoops of bird seed", "puts out"),
)
STOPS = ("Elm Street", "the museum", "the old bridge", "Oak Road", "the harbor", "the zoo")
SNACKS = ("cookies", "muffins", "cupcakes", "rolls", "pancakes", "tarts")


def _vocab(rng: random.Random) -> Dict[str, object]:
    a, b, c = rng.sample(wp.NAMES, 3)
    (item, items), (_, other) = rng.sample(wp.ITEMS, 2)
    group, groups = rng.choice(wp.GROUPS)
    d1, d2, d3 = sorted(rng.sample(wp.DAYS, 3), key=wp.DAYS.index)  # in the week's order
    return {
        "a": a,
        "b": b,
        "c": c,
        "item": item,
        "items": items,
        "other": other,
        "group": group,
        "groups": groups,
        "place": rng.choice(wp.PLACES),
        "d1": d1,
        "d2": d2,
        "d3": d3,
        "job": rng.choice(JOBS),
        "vehicle": rng.choice(VEHICLES),
        "food": rng.choice(FOODS),
        "snack": rng.choice(SNACKS),
    }


@dataclass
class Draft:
    """A problem before distractors: its sentences (the last asks the question) and its
    computation; ``who`` is the person it is about (None: no one), for a distractor."""

    sentences: List[str]
    expr: Expr
    who: Optional[str] = None
    extra: List[str] = field(default_factory=list)


Template = Callable[[random.Random, Dict[str, object], _Say], Draft]


# --------------------------------------------------------------------------- level 2
# One operation; the phrasing (not the order of the numbers) decides which.


def _more_than(rng, v, s) -> Draft:
    x, d = rng.randint(5, 80), rng.randint(2, 40)
    a, b, items = v["a"], v["b"], v["items"]
    if rng.random() < 0.5:  # "more than": the larger one is asked, add
        sentences = rng.choice(
            [
                [
                    f"{b} keeps {s.count(d, 'more')} {items} in a {v['group']} than {a} does.",
                    f"{a} keeps {s.count(x, items)} in a {v['group']}.",
                    f"How many {items} does {b} keep in the {v['group']}?",
                ],
                [
                    f"{a} has collected {s.count(x, items)} so far this year.",
                    f"{b} has collected {s.count(d, 'more')} {items} than {a}.",
                    f"How many {items} has {b} collected?",
                ],
            ]
        )
        return Draft(sentences, add(x, d), a)
    return Draft(  # "fewer than": the smaller one is asked, subtract
        [
            f"{a} has {s.count(x + d, items)}.",
            f"{b} has {s.n(d)} fewer {items} than {a}.",
            f"How many {items} does {b} have?",
        ],
        sub(x + d, d),
        a,
    )


def _than_inverse(rng, v, s) -> Draft:
    x, d = rng.randint(5, 80), rng.randint(2, 40)
    a, b, items = v["a"], v["b"], v["items"]
    if rng.random() < 0.5:  # A has d fewer than B: B has more, add
        return Draft(
            [
                f"{a} has {s.count(x, items)}, which is {s.n(d)} fewer than {b} has.",
                f"How many {items} does {b} have?",
            ],
            add(x, d),
            a,
        )
    return Draft(  # A has d more than B: B has fewer, subtract
        [
            f"{a} has {s.count(x + d, items)}, which is {s.n(d)} more than {b} has.",
            f"How many {items} does {b} have?",
        ],
        sub(x + d, d),
        a,
    )


def _left(rng, v, s) -> Draft:
    y = rng.randint(2, 50)
    x = y + rng.randint(2, 50)
    a, items = v["a"], v["items"]
    verb = rng.choice(["ate", "lost", "used", "gave away", "sold", "broke"])
    if verb in ("ate", "broke"):
        items = v["snack"] if verb == "ate" else rng.choice(["eggs", "plates", "cups", "pencils"])
    return Draft(
        [
            f"{a} had {s.count(x, items)}.",
            f"{a} {verb} {s.n(y)} of them.",
            rng.choice([f"How many {items} are left?", f"How many {items} does {a} have left?"]),
        ],
        sub(x, y),
        a,
    )


def _at_first(rng, v, s) -> Draft:
    x, y = rng.randint(3, 70), rng.randint(2, 60)
    a, b, items = v["a"], v["b"], v["items"]
    if rng.random() < 0.5:
        first = [
            f"{a} gave {s.count(y, items)} to {b}.",
            f"Now {a} has {s.n(x)} {items} left.",
        ]
    elif rng.random() < 0.5:
        first = [f"{a} spent {s.money(y)} at {v['place']} and has {s.money(x)} left."]
        items = "dollars"
    else:
        first = [f"{a} ate {s.count(y, v['snack'])} and has {s.n(x)} left."]
        items = v["snack"]
    return Draft(first + [f"How many {items} did {a} have at first?"], add(x, y), a)


def _need_more(rng, v, s) -> Draft:
    y = rng.randint(2, 60)
    x = y + rng.randint(2, 60)
    a, items = v["a"], v["items"]
    sentences = rng.choice(
        [
            [
                f"{a} wants to collect {s.count(x, items)} and has {s.n(y)} so far.",
                f"How many more {items} does {a} need?",
            ],
            [
                f"A game costs {s.money(x)}. {a} has saved {s.money(y)}.",
                f"How many more dollars does {a} need to buy the game?",
            ],
            [
                f"{a} needs {s.n(x)} {v['groups']} for a party and already has {s.n(y)}.",
                f"How many more {v['groups']} does {a} need?",
            ],
        ]
    )
    return Draft(sentences, sub(x, y), a)


def _compare(rng, v, s) -> Draft:
    y = rng.randint(5, 60)
    x = y + rng.randint(2, 50)
    a, b = v["a"], v["b"]
    return Draft(
        [
            f"{a} scored {s.n(x)} points in a game and {b} scored {s.n(y)} points.",
            f"How many more points did {a} score than {b}?",
        ],
        sub(x, y),
        a,
    )


def _in_total(rng, v, s) -> Draft:
    x, y = rng.randint(2, 70), rng.randint(2, 70)
    a = v["a"]
    sentences = rng.choice(
        [
            [
                f"{a} walked {s.n(x)} kilometers on {v['d1']} and {s.n(y)} kilometers "
                f"on {v['d2']}.",
                f"How many kilometers did {a} walk in total?",
            ],
            [
                f"A class collected {s.count(x, v['items'])} in the morning and "
                f"{s.n(y)} in the afternoon.",
                f"How many {v['items']} did the class collect in total?",
            ],
            [
                f"{a} spent {s.money(x)} on a coat and {s.money(y)} on shoes.",
                f"How many dollars did {a} spend in total?",
            ],
        ]
    )
    return Draft(sentences, add(x, y), a)


def _times_as_many(rng, v, s) -> Draft:
    x, k = rng.randint(3, 40), rng.choice([2, 2, 3, 4, 5, 6])
    a, b, items = v["a"], v["b"], v["items"]
    # the product is named before its factors (level 1 states the factors first)
    first = rng.choice(
        [
            [f"{b} has {s.times(k)} as many {items} as {a}.", f"{a} has {s.count(x, items)}."],
            [f"{b} has {s.times(k)} as many {items} as {a}, who has {s.count(x, items)}."],
        ]
    )
    return Draft(first + [f"How many {items} does {b} have?"], mul(x, k), a)


def _each_per(rng, v, s) -> Draft:
    g, k = rng.randint(2, 15), rng.randint(2, 25)
    a, items = v["a"], v["items"]
    sentences = rng.choice(
        [
            [
                f"There are {s.n(g)} {v['groups']} and each {v['group']} holds "
                f"{s.count(k, items)}.",
                f"How many {items} are there in total?",
            ],
            [
                f"{a} buys {s.count(g, items)} at {s.money(k)} each.",
                f"How many dollars does {a} pay in total?",
            ],
            [
                f"A box holds a dozen eggs. {a} buys {s.n(g)} boxes.",
                f"How many eggs does {a} buy?",
            ],
        ]
    )
    expr = mul(12, g) if "dozen eggs" in sentences[0] else mul(g, k)
    return Draft(sentences, expr, a)


def _rate(rng, v, s) -> Draft:
    """Units and rates, multiplied: wage * hours, speed * time, price per kilogram * kilograms."""
    r, t = rng.randint(2, 60), rng.randint(2, 12)
    a = v["a"]
    kind = rng.randrange(3)
    if kind == 0:
        sentences = [
            f"{a} earns {s.money(r)} per hour {v['job']}.",
            f"How many dollars does {a} earn in {s.n(t)} hours?",
        ]
    elif kind == 1:
        sentences = [
            f"{v['vehicle']} travels at {s.n(r)} kilometers per hour.",
            f"How many kilometers does it travel in {s.n(t)} hours?",
        ]
    else:
        sentences = [
            f"The price of {v['food']} is {s.money(r)} per kilogram.",
            f"How many dollars do {s.n(t)} kilograms of {v['food']} cost?",
        ]
    return Draft(sentences, mul(r, t), a if kind == 0 else None)


def _rate_inverse(rng, v, s) -> Draft:
    """Units and rates, divided: total / hours, distance / speed, cost / kilograms."""
    r, t = rng.randint(2, 40), rng.randint(2, 12)
    a, total = v["a"], r * t
    kind = rng.randrange(4)
    if kind == 0:
        sentences = [
            f"{a} earned {s.money(total)} for {s.n(t)} hours of {v['job']}.",
            f"How many dollars does {a} earn per hour?",
        ]
    elif kind == 1:
        sentences = [
            f"{v['vehicle']} went {s.n(total)} kilometers in {s.n(t)} hours at a steady speed.",
            "How many kilometers per hour did it go?",
        ]
    elif kind == 2:
        sentences = [
            f"{v['vehicle']} travels {s.n(total)} kilometers at {s.n(r)} kilometers per hour.",
            "How many hours does the trip take?",
        ]
        return Draft(sentences, div(total, r))
    else:
        sentences = [
            f"{s.n(t).capitalize()} kilograms of {v['food']} cost {s.money(total)}.",
            "What is the price per kilogram in dollars?",
        ]
    return Draft(sentences, div(total, t), a if kind == 0 else None)


def _fill(rng, v, s) -> Draft:
    k, n = rng.randint(2, 12), rng.randint(2, 15)
    a, items = v["a"], v["items"]
    if rng.random() < 0.5:
        a, items = rng.choice(["A baker", "A cook", "The shopkeeper"]), v["snack"]
        who = None
    else:
        who = a
    return Draft(
        [
            f"{a} puts {s.count(k, items)} in each {v['group']}.",
            f"{'He' if who is None else a} has {s.count(k * n, items)}."
            if rng.random() < 0.5
            else f"There are {s.count(k * n, items)}.",
            f"How many {v['groups']} can {'he' if who is None else a} fill?",
        ],
        div(k * n, k),
        who,
    )


def _last(rng, v, s) -> Draft:
    r, n = rng.randint(2, 9), rng.randint(2, 15)
    a = v["a"]
    what, verb = rng.choice(SUPPLIES)
    return Draft(
        [
            f"{a} {verb} {s.n(r)} {what} each day.",
            f"How many days will {s.n(r * n)} {what} last?",
        ],
        div(r * n, r),
        a,
    )


def _shared(rng, v, s) -> Draft:
    k, n = rng.randint(2, 10), rng.randint(2, 15)
    a, items = v["a"], v["items"]
    if rng.random() < 0.25:  # "half" is the divisor 2
        return Draft(
            [
                f"{a} had {s.count(2 * n, items)} and gave half of them to {v['b']}.",
                f"How many {items} did {v['b']} get?",
            ],
            div(2 * n, 2),
            a,
        )
    choice = rng.randrange(3)
    sentences = (
        [
            [
                f"{a} has {s.count(k * n, items)} to share equally among {s.n(k)} friends.",
                f"How many {items} will each friend get?",
            ],
            [
                f"A teacher has {s.count(k * n, items)} to be shared equally among "
                f"{s.n(k)} students.",
                f"How many {items} does each student get?",
            ],
            [
                f"{a} splits {s.count(k * n, items)} equally into {s.n(k)} {v['groups']}.",
                f"How many {items} go in each {v['group']}?",
            ],
        ]
    )[choice]
    return Draft(sentences, div(k * n, k), None if choice == 1 else a)  # 1: the teacher's


LEVEL2: Tuple[Template, ...] = (
    _more_than,
    _than_inverse,
    _left,
    _at_first,
    _need_more,
    _compare,
    _in_total,
    _times_as_many,
    _each_per,
    _rate,
    _rate_inverse,
    _fill,
    _last,
    _shared,
)

# --------------------------------------------------------------------------- level 3
# Two operations.


def _groups_plus(rng, v, s) -> Draft:  # a * b + c
    g, k, c = rng.randint(2, 12), rng.randint(2, 20), rng.randint(2, 40)
    a, items = v["a"], v["items"]
    if rng.random() < 0.5:
        return Draft(
            [
                f"{a} has {s.n(g)} {v['groups']} with {s.count(k, items)} in each "
                f"{v['group']} and {s.n(c)} more {items} on the table.",
                f"How many {items} does {a} have in all?",
            ],
            add(mul(g, k), c),
            a,
        )
    return Draft(
        [
            f"{a} earns {s.money(k)} per hour {v['job']} and worked {s.n(g)} hours this week.",
            f"{a} also got a tip of {s.money(c)}.",
            f"How many dollars did {a} get in total?",
        ],
        add(mul(k, g), c),
        a,
    )


def _groups_minus(rng, v, s) -> Draft:  # a * b - c
    g, k = rng.randint(2, 12), rng.randint(3, 20)
    c = rng.randint(1, g * k - 1)
    a, b, items = v["a"], v["b"], v["items"]
    return Draft(
        [
            f"{a} bought {s.n(g)} {v['groups']} of {items} with {s.n(k)} {items} in each.",
            f"{a} gave {s.n(c)} {SINGULAR.get(items, items) if c == 1 else items} to {b}.",
            f"How many {items} does {a} have left?",
        ],
        sub(mul(g, k), c),
        a,
    )


def _pages_left(rng, v, s) -> Draft:  # c - a * b
    p, d = rng.randint(5, 40), rng.randint(2, 9)
    total = p * d + rng.randint(5, 120)
    a = v["a"]
    return Draft(
        [
            f"A book has {total} pages.",
            f"{a} reads {s.n(p)} pages a day for {s.n(d)} days.",
            f"How many pages does {a} still have to read?",
        ],
        sub(total, mul(p, d)),
        a,
    )


def _pool_share(rng, v, s) -> Draft:  # (a + b) / c
    k, n = rng.randint(2, 10), rng.randint(3, 20)
    x = rng.randint(1, k * n - 1)
    a, b, items = v["a"], v["b"], v["items"]
    if rng.random() < 0.5:
        sentences = [
            f"{a} has {s.count(x, items)} and {b} has {s.count(k * n - x, items)}.",
            f"They put them together and share them equally among {s.n(k)} friends.",
            f"How many {items} does each friend get?",
        ]
    else:
        sentences = [
            f"{a} picked {s.count(x, items)} on {v['d1']} and {s.n(k * n - x)} on {v['d2']}.",
            f"{a} packs all of them into {v['groups']} of {s.n(k)}.",
            f"How many {v['groups']} does {a} fill?",
        ]
    return Draft(sentences, div(add(x, k * n - x), k), a)


def _rest_times(rng, v, s) -> Draft:  # (a - b) * c
    y = rng.randint(2, 20)
    x = y + rng.randint(3, 30)
    k = rng.randint(2, 9)
    a = v["a"]
    if rng.random() < 0.5:
        return Draft(
            [
                f"A class has {s.n(x)} students and {s.n(y)} of them are absent today.",
                f"The teacher gives each student who is there {s.count(k, 'pencils')}.",
                "How many pencils does the teacher give out?",
            ],
            mul(sub(x, y), k),
            None,
        )
    snack = v["snack"]
    return Draft(
        [
            f"{a} baked {s.count(x, snack)} and ate {s.n(y)} of them.",
            f"{a} sold the rest for {s.money(k)} each.",
            f"How many dollars did {a} make?",
        ],
        mul(sub(x, y), k),
        a,
    )


def _add_sub(rng, v, s) -> Draft:  # a + b - c
    x, y = rng.randint(5, 60), rng.randint(2, 40)
    z = rng.randint(1, x + y - 1)
    a = v["a"]
    if rng.random() < 0.5:
        stop = rng.choice(STOPS)
        return Draft(
            [
                f"A tram left the depot with {s.n(x)} riders.",
                f"At {stop}, {s.n(y)} riders got on and {s.n(z)} riders got off.",
                f"How many riders were on the tram after {stop}?",
            ],
            sub(add(x, y), z),
            None,
        )
    return Draft(
        [
            f"{a} had {s.money(x)}.",
            f"{a} earned {s.money(y)} more on {v['d1']} and spent {s.money(z)} on {v['d2']}.",
            f"How many dollars does {a} have now?",
        ],
        sub(add(x, y), z),
        a,
    )


def _share_plus(rng, v, s) -> Draft:  # a / b + c
    k, n, c = rng.randint(2, 10), rng.randint(2, 15), rng.randint(2, 20)
    a, b, items = v["a"], v["b"], v["items"]
    return Draft(
        [
            f"{a} shared {s.count(k * n, items)} equally among {s.n(k)} friends, "
            f"and {b} was one of them.",
            f"Then {b} found {s.n(c)} more {items}.",
            f"How many {items} does {b} have now?",
        ],
        add(div(k * n, k), c),
        a,
    )


def _part_away(rng, v, s) -> Draft:  # a - a / b
    k, n = rng.choice([2, 3, 4, 5]), rng.randint(2, 20)
    a, b, items = v["a"], v["b"], v["items"]
    part = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}[k]
    return Draft(
        [
            f"{a} had {s.count(k * n, items)} and gave {part} of them to {b}.",
            f"How many {items} does {a} have left?",
        ],
        sub(k * n, div(k * n, k)),
        a,
    )


def _change(rng, v, s) -> Draft:  # p - a * b
    n, price = rng.randint(2, 9), rng.randint(2, 15)
    bill = next(b for b in (10, 20, 50, 100) if b > n * price) if n * price < 100 else 0
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} buys {s.count(n, items)} that cost {s.money(price)} each.",
            f"{a} pays with a {bill} dollar bill.",
            f"How many dollars of change does {a} get?",
        ],
        sub(bill, mul(n, price)),
        a,
    )


def _groups_share(rng, v, s) -> Draft:  # a * b / c
    g, k = rng.randint(2, 10), rng.randint(2, 12)
    f = rng.choice([x for x in range(2, 9) if x not in (g, k)])  # not "7 * 6 / 6"
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} buys {s.n(g)} {v['groups']} with {s.count(k, items)} in each.",
            f"{a} shares all the {items} equally among {s.n(f)} friends.",
            f"How many {items} does each friend get?",
        ],
        div(mul(g, k), f),
        a,
    )


def _speed_more(rng, v, s) -> Draft:  # a * b + c (a rate and a leftover distance)
    r, t, c = rng.randint(20, 90), rng.randint(2, 6), rng.randint(3, 50)
    return Draft(
        [
            f"{v['vehicle']} travels at {s.n(r)} kilometers per hour for {s.n(t)} hours "
            f"and then goes {s.n(c)} kilometers more.",
            "How many kilometers does it travel in all?",
        ],
        add(mul(r, t), c),
        None,
    )


LEVEL3: Tuple[Template, ...] = (
    _groups_plus,
    _groups_minus,
    _pages_left,
    _pool_share,
    _rest_times,
    _add_sub,
    _share_plus,
    _part_away,
    _change,
    _groups_share,
    _speed_more,
)

# --------------------------------------------------------------------------- level 4
# Three operations.


def _two_prices(rng, v, s) -> Draft:  # a * b + c * d
    x, p, y, q = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(2, 15)
    a = v["a"]
    if rng.random() < 0.3:
        return Draft(
            [
                f"A farm has {s.n(x + 1)} cows and {s.n(y + 2)} chickens.",
                "Each cow has 4 legs and each chicken has 2 legs.",
                "How many legs are there on the farm?",
            ],
            add(mul(x + 1, 4), mul(y + 2, 2)),
            None,
        )
    return Draft(
        [
            f"{a} buys {s.n(x)} notebooks at {s.money(p)} each and {s.n(y)} pens at "
            f"{s.money(q)} each.",
            f"How many dollars does {a} spend in total?",
        ],
        add(mul(x, p), mul(y, q)),
        a,
    )


def _earn_spend(rng, v, s) -> Draft:  # a * b - c * d
    w, h = rng.randint(5, 20), rng.randint(3, 10)
    n, p = rng.randint(2, 6), rng.randint(2, 12)
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} earns {s.money(w)} per hour {v['job']} and works {s.n(h)} hours.",
            f"Then {a} buys {s.count(n, items)} at {s.money(p)} each.",
            f"How many dollars does {a} have left?",
        ],
        sub(mul(w, h), mul(n, p)),
        a,
    )


def _pool_times_minus(rng, v, s) -> Draft:  # (a + b) * c - d
    x, y, k = rng.randint(2, 9), rng.randint(2, 9), rng.randint(3, 15)
    d = rng.randint(1, (x + y) * k - 1)
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} has {s.n(x)} red {v['groups']} and {s.n(y)} blue {v['groups']}, with "
            f"{s.count(k, items)} in each {v['group']}.",
            f"{a} gives away {s.n(d)} {items}.",
            f"How many {items} does {a} have left?",
        ],
        sub(mul(add(x, y), k), d),
        a,
    )


def _bake_pack(rng, v, s) -> Draft:  # (a * b - c) / d
    t, k, bag = rng.randint(2, 8), rng.randint(6, 24), rng.randint(2, 10)
    rest = t * k - bag * rng.randint(1, max(1, (t * k) // bag - 1))
    a, snack = v["a"], v["snack"]
    return Draft(
        [
            f"{a} bakes {s.n(t)} trays of {snack} with {s.n(k)} {snack} on each tray.",
            f"{a} eats {s.n(rest)} of them and packs the rest into bags of {s.n(bag)}.",
            f"How many bags does {a} fill?",
        ],
        div(sub(mul(t, k), rest), bag),
        a,
    )


def _change_two(rng, v, s) -> Draft:  # p - (a * b + c)
    n, price, c = rng.randint(2, 8), rng.randint(2, 12), rng.randint(2, 15)
    total = n * price + c
    bill = next((b for b in (20, 50, 100) if b > total), 0)
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} buys {s.count(n, items)} at {s.money(price)} each and a drink for {s.money(c)}.",
            f"{a} pays with a {bill} dollar bill.",
            f"How many dollars of change does {a} get?",
        ],
        sub(bill, add(mul(n, price), c)),
        a,
    )


def _three_days_share(rng, v, s) -> Draft:  # (a + b + c) / d
    k, n = rng.randint(2, 10), rng.randint(3, 20)
    x = rng.randint(1, k * n - 2)
    y = rng.randint(1, k * n - x - 1)
    z = k * n - x - y
    a, items = v["a"], v["items"]
    return Draft(
        [
            f"{a} collected {s.count(x, items)} on {v['d1']}, {s.n(y)} on {v['d2']} and "
            f"{s.n(z)} on {v['d3']}.",
            f"{a} shares them equally among {s.n(k)} friends.",
            f"How many {items} does each friend get?",
        ],
        div(add(add(x, y), z), k),
        a,
    )


def _rest_times_plus(rng, v, s) -> Draft:  # (a - b) * c + d
    y = rng.randint(2, 15)
    x = y + rng.randint(3, 30)
    k, d = rng.randint(2, 6), rng.randint(3, 20)
    return Draft(
        [
            f"A class has {s.n(x)} students and {s.n(y)} of them are away on a trip.",
            f"The teacher gives each student who stayed {s.count(k, 'stickers')} and keeps "
            f"{s.n(d)} stickers for later.",
            "How many stickers did the teacher have?",
        ],
        add(mul(sub(x, y), k), d),
        None,
    )


def _trip(rng, v, s) -> Draft:  # a * b + c * d (two legs of a trip)
    r1, t1, r2, t2 = rng.randint(30, 90), rng.randint(2, 5), rng.randint(5, 20), rng.randint(2, 5)
    return Draft(
        [
            f"{v['vehicle']} travels at {s.n(r1)} kilometers per hour for {s.n(t1)} hours, "
            f"then at {s.n(r2)} kilometers per hour for {s.n(t2)} hours.",
            "How many kilometers does it travel in all?",
        ],
        add(mul(r1, t1), mul(r2, t2)),
        None,
    )


LEVEL4: Tuple[Template, ...] = (
    _two_prices,
    _earn_spend,
    _pool_times_minus,
    _bake_pack,
    _change_two,
    _three_days_share,
    _rest_times_plus,
    _trip,
)

# --------------------------------------------------------------------------- distractors

# (probability that a problem is written with number words, that it gets a distractor)
STYLE = {2: (0.45, 0.35), 3: (0.15, 0.2), 4: (0.1, 0.15)}


def _distract(rng: random.Random, v: Dict[str, object], d: Draft, say: _Say) -> None:
    """Adds one sentence with a number the computation does not use, before the question."""
    used = set(leaves(d.expr))
    n = rng.choice([x for x in range(3, 60) if x not in used])
    who = d.who
    options = [
        f"{v['place'][0].upper()}{v['place'][1:]} is {say.n(n)} minutes from home.",
        f"{v['c']} has {say.count(n, v['other'])}.",
    ]
    if who is not None:
        age = rng.choice([x for x in range(6, 16) if x not in used])
        options += [f"{who} is {say.n(age)} years old.", f"{who} also has {say.n(n)} {v['other']}."]
    sentence = rng.choice(options)
    # "also" needs the person introduced first
    lo = 1 if " also " in sentence else 0
    d.sentences.insert(rng.randint(lo, max(lo, len(d.sentences) - 1)), sentence)


# --------------------------------------------------------------------------- the corpus


def _one_step(rng: random.Random) -> Tuple[str, Expr]:
    """A level-1 problem: one of today's :data:`word_problems.ONE_STEP` problems, as drawn by
    :func:`word_problems.generate_problems`."""
    question, steps, _ = rng.choice(wp.ONE_STEP)(rng, wp._pick(rng))
    ((text, _value),) = steps
    m = re.fullmatch(r"(\d+)([-+*/])(\d+)", text)
    if m is None:  # cannot happen: the one-step templates write "x+y"
        raise AssertionError(f"unexpected one-step mark {text!r}")
    return question, Op(m.group(2), int(m.group(1)), int(m.group(3)))


_LEVEL_TEMPLATES = {2: LEVEL2, 3: LEVEL3, 4: LEVEL4}


def _problem(level: int, rng: random.Random) -> Optional[Tuple[str, Expr]]:
    """One problem of ``level`` (None: the draw broke a rule, e.g. a non-integer result)."""
    if level == 1:
        return _one_step(rng)
    p_words, p_distract = STYLE[level]
    v = _vocab(rng)
    say = _Say(rng, rng.random() < p_words)
    draft = rng.choice(_LEVEL_TEMPLATES[level])(rng, v, say)
    if not _valid(draft.expr):
        return None
    if rng.random() < p_distract:
        _distract(rng, v, draft, say)
    return " ".join(draft.sentences), draft.expr


def row(question: str, expr: Expr, level: int) -> Dict[str, object]:
    """A corpus row ``{"question", "answer", "level", "expression"}`` (see the module doc)."""
    steps = " ".join(f"<<{e}={format_number(val)}>>" for e, val in marks(expr))
    return {
        "question": question,
        "answer": f"{steps}\n#### {format_number(value(expr))}",
        "level": level,
        "expression": render(expr),
    }


def generate_ladder(n: int = DEFAULT_SIZE, seed: int = 0) -> List[Dict[str, object]]:
    """``n`` distinct problems, split equally over :data:`LEVELS` (the first levels get the
    remainder), level 1 first. Deterministic for a ``seed``; each level draws from its own
    generator, so a level's problems do not depend on the others' sizes.

    Raises :class:`UserError` for ``n < 1``."""
    if n < 1:
        raise UserError(f"the ladder corpus needs a size >= 1, got {n}")
    per, extra = divmod(n, len(LEVELS))
    rows: List[Dict[str, object]] = []
    seen = set()
    for i, level in enumerate(LEVELS):
        want = per + (1 if i < extra else 0)
        rng = random.Random(f"{NAME}:{seed}:{level}")
        got = tries = 0
        while got < want:
            tries += 1
            if tries > 50 * want + 100:  # cannot happen at sane sizes
                raise UserError(f"could not generate {want} distinct level-{level} problems")
            drawn = _problem(level, rng)
            if drawn is None or drawn[0] in seen:
                continue
            seen.add(drawn[0])
            rows.append(row(drawn[0], drawn[1], level))
            got += 1
    return rows


def parse_spec(spec: str) -> int:
    """The size in ``ladder`` or ``ladder:N``; raises :class:`UserError` otherwise."""
    return parse_sized_spec(spec, NAME, DEFAULT_SIZE)


def is_spec(spec: str) -> bool:
    """True for ``ladder`` / ``ladder:N`` (a generated corpus rather than a path)."""
    return is_sized_spec(spec, NAME)
