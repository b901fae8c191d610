"""The generated sets: row shape, answers, seeding, disjoint splits, bad input."""

import datetime as dt
import re

import pytest

from toolformer.datasets import answer_matches, assert_disjoint, check_row, overlap
from toolformer.datasets.dateset import FAMILIES, date_split, generate_dateset, split_dates
from toolformer.datasets.notool import all_prompts, generate_notool, split_pool
from toolformer.datasets.rows import ROW_KEYS, SPLITS
from toolformer.errors import UserError
from toolformer.tools.base import ToolContext
from toolformer.tools.calendar import Calendar

MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _parse_long(text):
    m = re.fullmatch(r"(\w+) (\d+), (\d{4})", text)
    return dt.date(int(m.group(3)), MONTHS.index(m.group(1)) + 1, int(m.group(2)))


def test_dateset_rows_have_the_shared_shape_and_right_answers():
    rows = generate_dateset(400, seed=3, split="train")
    assert len(rows) == 400 and len({r["id"] for r in rows}) == 400
    families = set()
    for row in rows:
        check_row(row)
        assert set(ROW_KEYS) <= set(row) and row["kind"] == "dates"
        assert row["tools"] == ["Calendar"] and row["split"] == "train"
        assert row["answer"] == row["answers"][0]
        today = dt.date.fromisoformat(row["date"])
        assert row["date"] not in row["question"]
        families.add(row["family"])
        q, a = row["question"], row["answer"]
        n = re.search(r"(\d+) days", q)
        if row["family"] in ("today", "yesterday", "tomorrow", "days_ago", "days_ahead"):
            shift = {"today": 0, "yesterday": -1, "tomorrow": 1}.get(row["family"])
            if shift is None:
                shift = int(n.group(1)) * (1 if row["family"] == "days_ahead" else -1)
            assert _parse_long(a) == today + dt.timedelta(days=shift)
            assert (today + dt.timedelta(days=shift)).isoformat() in row["answers"]
        elif row["family"] == "weekday":
            assert a == Calendar().run("", ToolContext(date=today)).split()[2].rstrip(",")
        elif row["family"] == "year":
            assert a == str(today.year)
        elif row["family"] in ("days_until", "days_since"):
            other = _parse_long(re.search(r"(?:until|since|was) (\w+ \d+, \d{4})", q).group(1))
            assert abs((other - today).days) == int(a)
    assert families == set(FAMILIES)


def test_generators_are_seeded():
    assert generate_dateset(50, 1, "eval") == generate_dateset(50, 1, "eval")
    assert generate_dateset(50, 1, "eval") != generate_dateset(50, 2, "eval")
    assert generate_notool(50, 1, "eval") == generate_notool(50, 1, "eval")
    assert generate_notool(50, 1, "eval") != generate_notool(50, 2, "eval")


def test_splits_are_disjoint_by_construction_and_checked():
    dates = {s: set(split_dates(s)) for s in SPLITS}
    assert not dates["train"] & dates["eval"] and not dates["dev"] & dates["eval"]
    assert len(dates["eval"]) > 1000
    big = {s: generate_dateset(2000, 0, s) for s in SPLITS}
    for a, b in (("train", "dev"), ("train", "eval"), ("dev", "eval")):
        assert overlap(big[a], big[b]) == []
        assert_disjoint(big[a], big[b])
        assert not set(split_pool(a)) & set(split_pool(b))
    assert all(date_split(dt.date.fromisoformat(r["date"])) == "eval" for r in big["eval"])


def test_overlap_check_finds_a_shared_item():
    train = generate_dateset(20, 0, "train")
    leaked = dict(train[5], split="eval", question="  " + train[5]["question"].upper())
    assert overlap(train, [leaked]) == [(train[5]["question"].lower(), train[5]["date"])]
    with pytest.raises(UserError, match="share 1 item"):
        assert_disjoint(train, [leaked], "train and eval")
    # the same question on another day is another item
    assert overlap(train, [dict(train[5], date="1999-01-01")]) == []


def test_notool_has_over_a_thousand_prompts_without_numbers_or_dates():
    prompts = all_prompts()
    assert len(set(prompts)) >= 1000 and len(split_pool("eval")) >= 300
    assert not [p for p in prompts if re.search(r"\d", p)]
    rows = generate_notool(300, 0, "eval")
    assert len({r["question"] for r in rows}) == 300
    for row in rows:
        check_row(row)
        assert (row["tools"], row["answers"], row["answer"], row["date"]) == ([], [], None, None)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: generate_dateset(5, 0, "test"), "unknown split 'test'"),
        (lambda: generate_notool(5, 0, "valid"), "unknown split 'valid'"),
        (lambda: generate_dateset(-1, 0, "eval"), "whole number >= 0"),
        (lambda: generate_notool(-3, 0, "eval"), "whole number >= 0"),
        (lambda: generate_notool(10**6, 0, "eval"), "at most"),
        (lambda: generate_dateset(10**7, 0, "eval"), "at most"),
    ],
)
def test_bad_input_is_one_line(call, message):
    with pytest.raises(UserError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_dates_item_without_a_date_is_refused():
    row = dict(generate_dateset(1, 0, "dev")[0], date=None)
    with pytest.raises(UserError, match="has no date"):
        check_row(row)
    with pytest.raises(UserError, match="not YYYY-MM-DD"):
        check_row(dict(row, date="30/01/2023"))
    with pytest.raises(UserError, match="lacks date"):
        check_row({k: v for k, v in row.items() if k != "date"})
    assert generate_dateset(0, 0, "dev") == []


def test_answer_matches_is_lenient_but_on_word_boundaries():
    answers = ["January 30, 2023", "2023-01-30", "30 January 2023"]
    assert answer_matches("Today is Monday, January 30, 2023.", answers)
    assert answer_matches("it was 30 january 2023 then", answers)
    assert answer_matches("January 30,2023", answers)
    assert not answer_matches("January 3, 2023", answers)
    assert answer_matches("There are 12 days left.", ["12", "12 days"])
    assert not answer_matches("There are 120 days left.", ["12", "12 days"])
    assert not answer_matches(" ".join(["word"] * 20) + " Monday", ["Monday"])
    assert not answer_matches("anything", [])
