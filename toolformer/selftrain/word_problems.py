"""A generated corpus of easy arithmetic word problems with gold answers (``--corpus arithmetic``).

Why: at 135M parameters the model's own samples answer 0.2-2% of GSM8K-train's problems (even
its one-step ones hide a quantity: "a triangle with height 8 and area 24"), so Grow finds a
handful of right answers per round and the answer filter has nothing to keep. A curriculum of
problems one or two operations deep on numbers the question states gives Grow problems the
model can solve some of the time; the model still writes every call itself and the answer filter
keeps only its right ones (STaR's outcome supervision, Zelikman et al. 2022). Curriculum on
generated problems is outside the Toolformer paper (which annotates web text without answers).

The templates are generic school arithmetic (combine, take away, compare, equal groups, sharing,
rates, prices), written without reference to any evaluation set; the selftrain contamination
guard still compares every generated question with SVAMP, MAWPS and GSM8K and drops
near-duplicates. Rows have GSM8K's shape (``question``; ``answer`` ending in ``#### n``, one
``<<a op b=c>>`` mark per operation) so that :func:`toolformer.selftrain.corpus.load_corpus`
reads them like GSM8K.
"""

from __future__ import annotations

import random
from typing import Callable, Dict, List, Tuple

from toolformer.errors import UserError
from toolformer.selftrain.spec import is_sized_spec, parse_sized_spec
from toolformer.text.numbers import format_number

NAME = "arithmetic"
DEFAULT_SIZE = 3000

NAMES = (
    "Ava",
    "Ben",
    "Carla",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wes",
    "Xena",
    "Yusuf",
    "Zoe",
    "Arjun",
    "Bella",
    "Chen",
    "Dana",
    "Emil",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
)
# (singular, plural)
ITEMS = (
    ("apple", "apples"),
    ("book", "books"),
    ("pencil", "pencils"),
    ("sticker", "stickers"),
    ("marble", "marbles"),
    ("cookie", "cookies"),
    ("card", "cards"),
    ("flower", "flowers"),
    ("stamp", "stamps"),
    ("balloon", "balloons"),
    ("shell", "shells"),
    ("candy", "candies"),
    ("egg", "eggs"),
    ("orange", "oranges"),
    ("coin", "coins"),
    ("toy car", "toy cars"),
    ("bead", "beads"),
    ("crayon", "crayons"),
    ("muffin", "muffins"),
    ("seed", "seeds"),
    ("ribbon", "ribbons"),
    ("button", "buttons"),
    ("peach", "peaches"),
    ("puzzle", "puzzles"),
)
# (singular, plural) of containers for equal groups
GROUPS = (
    ("box", "boxes"),
    ("bag", "bags"),
    ("basket", "baskets"),
    ("jar", "jars"),
    ("pack", "packs"),
    ("shelf", "shelves"),
    ("row", "rows"),
    ("tray", "trays"),
)
PLACES = ("the market", "school", "the fair", "the shop", "the library", "the park")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNITS = (
    ("mile", "miles", "hour", "hours"),
    ("page", "pages", "day", "days"),
    ("kilometer", "kilometers", "hour", "hours"),
    ("word", "words", "minute", "minutes"),
)

Problem = Tuple[str, List[Tuple[str, float]], float]  # question, [(expr, value)], answer


def _pick(rng: random.Random) -> Dict[str, object]:
    a, b = rng.sample(NAMES, 2)
    item, items = rng.choice(ITEMS)
    group, groups = rng.choice(GROUPS)
    d1, d2 = rng.sample(DAYS, 2)
    return {
        "a": a,
        "b": b,
        "item": item,
        "items": items,
        "group": group,
        "groups": groups,
        "place": rng.choice(PLACES),
        "d1": d1,
        "d2": d2,
    }


def _add(rng, v) -> Problem:
    x, y = rng.randint(2, 90), rng.randint(2, 90)
    q = rng.choice(
        [
            (
                f"{v['a']} has {x} {v['items']}. {v['b']} gives {v['a']} {y} more "
                f"{v['items']}. How many {v['items']} does {v['a']} have now?"
            ),
            (
                f"{v['a']} picked {x} {v['items']} on {v['d1']} and {y} {v['items']} "
                f"on {v['d2']}. How many {v['items']} did {v['a']} pick in all?"
            ),
            (
                f"There are {x} red {v['items']} and {y} blue {v['items']} in a "
                f"{v['group']}. How many {v['items']} are in the {v['group']}?"
            ),
            (
                f"{v['a']} has {x} {v['items']} and {v['b']} has {y} "
                f"{v['items']}. How many {v['items']} do they have together?"
            ),
            (
                f"A {v['group']} held {x} {v['items']}. Then {y} more {v['items']} "
                f"were put in it. How many {v['items']} are in the {v['group']} now?"
            ),
            (
                f"{v['a']} bought {x} {v['items']} at {v['place']} and "
                f"already had {y}. How many {v['items']} does {v['a']} have?"
            ),
        ]
    )
    return q, [(f"{x}+{y}", x + y)], x + y


def _sub(rng, v) -> Problem:
    y = rng.randint(2, 60)
    x = y + rng.randint(1, 60)
    q = rng.choice(
        [
            (
                f"{v['a']} had {x} {v['items']} and gave {y} of them to "
                f"{v['b']}. How many {v['items']} does {v['a']} have left?"
            ),
            (
                f"There were {x} {v['items']} at {v['place']}. {y} "
                f"{v['items']} were sold. How many {v['items']} are left?"
            ),
            (
                f"{v['a']} has {x} {v['items']} and {v['b']} has {y} {v['items']}. "
                f"How many more {v['items']} does {v['a']} have than {v['b']}?"
            ),
            (
                f"{v['a']} needs {x} {v['items']} and already has "
                f"{y}. How many more {v['items']} does {v['a']} need?"
            ),
            (
                f"A {v['group']} had {x} {v['items']}. {v['a']} took out {y} "
                f"{v['items']}. How many {v['items']} are still in the {v['group']}?"
            ),
            (
                f"{v['b']} has {y} {v['items']}, which is fewer than the {x} {v['items']} "
                f"that {v['a']} has. How many fewer {v['items']} does {v['b']} have?"
            ),
            (
                f"{v['a']} had some {v['items']}. After getting {y} more, {v['a']} "
                f"has {x}. How many {v['items']} did {v['a']} have at first?"
            ),
        ]
    )
    return q, [(f"{x}-{y}", x - y)], x - y


def _mul(rng, v) -> Problem:
    x, y = rng.randint(2, 12), rng.randint(2, 25)
    u = rng.choice(UNITS)
    q = rng.choice(
        [
            (
                f"{v['a']} has {x} {v['groups']} with {y} {v['items']} in "
                f"each {v['group']}. How many {v['items']} does {v['a']} have?"
            ),
            (
                f"There are {y} {v['items']} in each {v['group']}. "
                f"How many {v['items']} are in {x} {v['groups']}?"
            ),
            (
                f"{v['a']} buys {x} {v['items']} that cost {y} "
                f"dollars each. How many dollars does {v['a']} spend?"
            ),
            (
                f"{v['a']} reads {y} {u[1]} every {u[2]}. How "
                f"many {u[1]} does {v['a']} read in {x} {u[3]}?"
            )
            if u[1] == "pages"
            else (
                f"A car travels {y} {u[1]} each {u[2]}. How "
                f"many {u[1]} does it travel in {x} {u[3]}?"
            ),
            (
                f"{v['a']} makes {x} {v['groups']} of {v['items']}. Each {v['group']} "
                f"has {y} {v['items']}. How many {v['items']} did {v['a']} make in all?"
            ),
            (
                f"{v['a']} has {y} {v['items']}. {v['b']} has {x} times as many "
                f"{v['items']} as {v['a']}. How many {v['items']} does {v['b']} have?"
            ),
        ]
    )
    return q, [(f"{x}*{y}", x * y)], x * y


def _div(rng, v) -> Problem:
    y, z = rng.randint(2, 12), rng.randint(2, 15)
    x = y * z
    q = rng.choice(
        [
            (
                f"{v['a']} shares {x} {v['items']} equally among {y} "
                f"friends. How many {v['items']} does each friend get?"
            ),
            (
                f"{x} {v['items']} are packed into {v['groups']} "
                f"of {y}. How many {v['groups']} are needed?"
            ),
            (
                f"{v['a']} has {x} {v['items']} and puts them equally into {y} "
                f"{v['groups']}. How many {v['items']} are in each {v['group']}?"
            ),
            f"{y} {v['items']} cost {x} dollars. How many dollars does one {v['item']} cost?",
            (
                f"{v['a']} read {x} pages in {y} days, the same number "
                f"each day. How many pages did {v['a']} read each day?"
            ),
            (
                f"A teacher splits {x} students into {y} equal "
                "teams. How many students are on each team?"
            ),
        ]
    )
    return q, [(f"{x}/{y}", z)], z


def _mul_add(rng, v) -> Problem:
    x, y, z = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 30)
    q = rng.choice(
        [
            (
                f"{v['a']} has {x} {v['groups']} with {y} {v['items']} each and "
                f"{z} loose {v['items']}. How many {v['items']} does {v['a']} have?"
            ),
            (
                f"{v['a']} bought {x} {v['groups']} of {y} {v['items']} and {v['b']} "
                f"gave {v['a']} {z} more. How many {v['items']} does {v['a']} have now?"
            ),
        ]
    )
    return q, [(f"{x}*{y}", x * y), (f"{x * y}+{z}", x * y + z)], x * y + z


def _mul_sub(rng, v) -> Problem:
    x, y = rng.randint(2, 9), rng.randint(3, 12)
    z = rng.randint(1, x * y - 1)
    q = rng.choice(
        [
            (
                f"{v['a']} bought {x} {v['groups']} with {y} {v['items']} in each "
                f"and gave away {z} {v['items']}. How many {v['items']} are left?"
            ),
            (
                f"There are {x} {v['groups']} of {y} {v['items']}. {v['a']} "
                f"ate {z} of the {v['items']}. How many {v['items']} remain?"
            ),
        ]
    )
    return q, [(f"{x}*{y}", x * y), (f"{x * y}-{z}", x * y - z)], x * y - z


def _add_sub(rng, v) -> Problem:
    x, y = rng.randint(5, 60), rng.randint(2, 40)
    z = rng.randint(1, x + y - 1)
    q = rng.choice(
        [
            (
                f"{v['a']} had {x} {v['items']}, found {y} more and then "
                f"lost {z}. How many {v['items']} does {v['a']} have now?"
            ),
            (
                f"A {v['group']} had {x} {v['items']}. {v['a']} added {y} {v['items']} and "
                f"{v['b']} took out {z}. How many {v['items']} are in the {v['group']}?"
            ),
        ]
    )
    return q, [(f"{x}+{y}", x + y), (f"{x + y}-{z}", x + y - z)], x + y - z


def _add3(rng, v) -> Problem:
    x, y, z = (rng.randint(2, 50) for _ in range(3))
    q = (
        f"{v['a']} collected {x} {v['items']} on {v['d1']}, {y} on {v['d2']} and "
        f"{z} on the next day. How many {v['items']} did {v['a']} collect in all?"
    )
    return q, [(f"{x}+{y}", x + y), (f"{x + y}+{z}", x + y + z)], x + y + z


# one-operation kinds first: two-step kinds are a quarter of a corpus
ONE_STEP: Tuple[Callable, ...] = (_add, _sub, _mul, _div)
TWO_STEP: Tuple[Callable, ...] = (_mul_add, _mul_sub, _add_sub, _add3)


def generate_problems(
    n: int = DEFAULT_SIZE, seed: int = 0, two_step_fraction: float = 0.25
) -> List[Dict[str, str]]:
    """``n`` distinct problems as GSM8K rows: ``{"question", "answer"}``, the answer
    ``"<<x+y=z>> ... #### z"`` (one mark per operation). Deterministic for a ``seed``.

    Raises :class:`UserError` for ``n < 1`` or a fraction outside [0, 1]."""
    if n < 1:
        raise UserError(f"the arithmetic corpus needs a size >= 1, got {n}")
    if not 0 <= two_step_fraction <= 1:
        raise UserError(f"two_step_fraction must be in [0, 1], got {two_step_fraction}")
    rng = random.Random(seed)
    rows, seen = [], set()
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > 50 * n:  # cannot happen at sane sizes: the templates admit millions of problems
            raise UserError(f"could not generate {n} distinct arithmetic problems")
        kind = rng.choice(TWO_STEP if rng.random() < two_step_fraction else ONE_STEP)
        question, steps, answer = kind(rng, _pick(rng))
        if question in seen:
            continue
        seen.add(question)
        marks = " ".join(f"<<{e}={format_number(val)}>>" for e, val in steps)
        rows.append({"question": question, "answer": f"{marks}\n#### {format_number(answer)}"})
    return rows


def parse_spec(spec: str) -> int:
    """The size in ``arithmetic`` or ``arithmetic:N``; raises :class:`UserError` otherwise."""
    return parse_sized_spec(spec, NAME, DEFAULT_SIZE)


def is_spec(spec: str) -> bool:
    """True for ``arithmetic`` / ``arithmetic:N`` (a generated corpus rather than a path)."""
    return is_sized_spec(spec, NAME)
