"""Every reader of user and run files, as a kind: lines end at "\\n" only (never at U+2028,
U+2029 or U+0085), a UTF-8 byte order mark is accepted, a truncated or mislabelled compressed
file is one line naming it, a bad row is named by its physical line, and an example that cannot
be scored (a null question, a NaN or infinite answer) is refused with its line."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.errors import UserError
from toolformer.eval import loaders
from toolformer.records import RecordStats, iter_records
from toolformer.selftrain import loop

BOM = "\ufeff".encode("utf-8")
SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x0b\x0c\x1c\x1d\x1e"]


# --------------------------------------------------------------------------- line separators


def test_selftrain_run_file_keeps_rows_holding_unicode_line_separators(tmp_path):
    """str.splitlines split a row holding U+2028 and the JSON error dropped every later row."""
    rows = [{"i": i, "text": f"a{sep}b"} for i, sep in enumerate(SEPARATORS)] + [{"i": 9}]
    path = tmp_path / "grow.jsonl"
    loop._write_jsonl(path, rows)
    assert loop._read_jsonl(path) == rows


def test_selftrain_run_file_still_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "partial.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ', encoding="utf-8")
    assert loop._read_jsonl(path) == [{"a": 1}, {"a": 2}]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), inner, max_size=3
        )
    ),
    max_leaves=8,
)
_rows = st.lists(
    st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), _json, max_size=4
    ),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(rows=_rows)
def test_property_jsonl_rows_round_trip_through_every_jsonl_reader(tmp_path_factory, rows):
    """Any JSON rows, strings with any character but a lone surrogate (separators, BOM, NUL,
    CR included), come back as written: by the run-folder reader and by the shared reader."""
    path = tmp_path_factory.mktemp("prop") / "rows.jsonl"
    loop._write_jsonl(path, rows)
    assert loop._read_jsonl(path) == rows
    stats = RecordStats()
    assert [r for _, r in iter_records(str(path), stats=stats)] == rows
    assert not stats.skipped


# --------------------------------------------------------------------------- byte order marks


@pytest.mark.parametrize(
    "name,data",
    [
        ("in.jsonl", b'{"text": "first"}\n{"text": "second"}\n'),
        ("in.json", b'[{"text": "first"}, {"text": "second"}]'),
        ("in.csv", b"text\nfirst\nsecond\n"),
        ("in.tsv", b"text\nfirst\nsecond\n"),
        ("in.txt", b"first\n\nsecond\n"),
    ],
)
def test_shared_reader_accepts_a_byte_order_mark(tmp_path, caplog, name, data):
    path = tmp_path / name
    path.write_bytes(BOM + data)
    stats = RecordStats()
    assert [r["text"] for _, r in iter_records(str(path), stats=stats)] == ["first", "second"]
    assert not stats.skipped and "skipped" not in caplog.text


def test_shared_reader_accepts_a_byte_order_mark_inside_a_gzip_file(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(BOM + b'{"text": "first"}\n'))
    assert [r["text"] for _, r in iter_records(str(path))] == ["first"]


def test_eval_jsonl_task_keeps_the_first_example_of_a_file_with_bom(tmp_path, caplog):
    path = tmp_path / "q.jsonl"
    path.write_bytes(
        BOM + b'{"question": "1+1?", "answer": 2}\n{"question": "2+2?", "answer": 4}\n'
    )
    examples = loaders.load_generic_jsonl(path)
    assert [e.fields["question"] for e in examples] == ["1+1?", "2+2?"]
    assert "skipped" not in caplog.text


def test_eval_json_and_text_files_accept_a_byte_order_mark(tmp_path):
    svamp = tmp_path / "SVAMP.json"
    svamp.write_bytes(BOM + json.dumps([{"Body": "b", "Question": "q", "Answer": 3}]).encode())
    assert [e.gold for e in loaders.load_svamp(svamp)] == [3.0]
    text = tmp_path / "t.txt"
    text.write_bytes(BOM + b"Some text.\r\n")
    assert loaders.load_text(text)[0].fields["text"] == "Some text.\n"


def test_selftrain_corpus_accepts_a_byte_order_mark(tmp_path):
    from toolformer.selftrain.corpus import load_corpus

    path = tmp_path / "gsm8k_train.jsonl"
    path.write_bytes(BOM + b'{"question": "2+2?", "answer": "2+2=<<2+2=4>>4\\n#### 4"}\n')
    docs = load_corpus(str(path), "{question} {solution}", "{question}")
    assert [d.answer for d in docs] == [4.0]


@pytest.mark.parametrize(
    "name,data",
    [
        ("p.jsonl", b'{"prompt": "Hello"}\n'),
        ("p.txt", b"Hello\n"),
        ("p.json", b'{"prompt": "Hello"}\n'),  # read as JSONL by its first character
    ],
)
def test_generate_prompts_file_accepts_a_byte_order_mark(tmp_path, name, data):
    from toolformer.cli.generate_cmd import read_prompts

    path = tmp_path / name
    path.write_bytes(BOM + data)
    assert read_prompts(str(path)) == ["Hello"]


def test_selftrain_config_file_and_eval_report_accept_a_byte_order_mark(tmp_path):
    from toolformer.cli.selftrain_cmd import build_config
    from toolformer.eval.report import load_run

    config = tmp_path / "c.json"
    config.write_bytes(BOM + b'{"seed": 7}')
    assert build_config({"config_file": str(config)}).seed == 7
    results = tmp_path / "results.json"
    results.write_bytes(BOM + b'{"model": "m", "tasks": {}}')
    assert load_run(results)["model"] == "m"


def test_eval_report_of_a_file_that_is_not_utf8_is_one_line(tmp_path):
    from toolformer.eval.report import load_run

    results = tmp_path / "results.json"
    results.write_bytes(b'{"model": "caf\xe9", "tasks": {}}')
    with pytest.raises(UserError, match=r"results.json is not valid UTF-8 \(byte 0xe9"):
        load_run(results)


# --------------------------------------------------------------------------- compressed inputs

ROWS = b"".join(b'{"text": "row %d with some words"}\n' % i for i in range(2000))
COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
@pytest.mark.parametrize("name", ["in.jsonl", "in.csv"])
def test_compressed_inputs_are_read(tmp_path, suffix, name):
    data = ROWS if name.endswith(".jsonl") else b"text\n" + b"row\n" * 2000
    path = tmp_path / (name + suffix)
    path.write_bytes(COMPRESS[suffix](data))
    assert len(list(iter_records(str(path)))) == 2000


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_truncated_compressed_input_is_one_line_naming_the_file(tmp_path, suffix):
    data = COMPRESS[suffix](ROWS)
    path = tmp_path / f"in.jsonl{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"in\.jsonl\.\w+ is not a complete \w+ file") as exc:
        list(iter_records(str(path)))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_mislabelled_compressed_input_is_one_line_naming_the_file(tmp_path, suffix):
    path = tmp_path / f"in.jsonl{suffix}"
    path.write_bytes(ROWS[:200])  # plain JSONL under a compressed name
    with pytest.raises(UserError, match=rf"in\.jsonl\{suffix} is not \w+-compressed") as exc:
        list(iter_records(str(path)))
    assert "\n" not in str(exc.value)


def test_truncated_input_through_augment_and_eval_readers(tmp_path):
    from toolformer.data_aug.inputs import load_documents

    data = gzip.compress(b'{"question": "1+1?", "answer": 2}\n' * 2000)
    path = tmp_path / "q.jsonl.gz"
    path.write_bytes(data[:-20])
    with pytest.raises(UserError, match="q.jsonl.gz is not a complete gzip file"):
        loaders.load_generic_jsonl(path)
    with pytest.raises(UserError, match="q.jsonl.gz is not a complete gzip file"):
        list(load_documents(str(path), text_field="question"))


def test_truncated_wikipedia_dump_is_one_line(tmp_path):
    from toolformer.retrieval.corpus import iter_wikipedia_articles

    page = "<page><title>T</title><ns>0</ns><id>1</id><revision><text>%s</text></revision></page>"
    xml = "<mediawiki>" + "".join(page % ("word " * 60) for _ in range(50)) + "</mediawiki>"
    data = bz2.compress(xml.encode())
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="dump.xml.bz2 could not be read to its end"):
        list(iter_wikipedia_articles(path, cache=False))


# --------------------------------------------------------------------------- unscoreable rows


@pytest.mark.parametrize(
    "row",
    [
        '{"question": null, "answer": 3}',
        '{"question": "  ", "answer": 3}',
        '{"question": ["a"], "answer": 3}',
        '{"question": "q?", "answer": NaN}',
        '{"question": "q?", "answer": Infinity}',
        '{"question": "q?", "answer": -Infinity}',
        '{"question": "q?", "answer": 1e999}',
        '{"question": "q?", "answer": [NaN]}',
        '{"question": "q?", "answer": ["a", ""]}',
    ],
)
def test_eval_jsonl_refuses_an_unscoreable_example_naming_its_line(tmp_path, row):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "1+1?", "answer": 2}\n' + row + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"q\.jsonl:2: (question|answer) ") as exc:
        loaders.load_generic_jsonl(path)
    assert "fix or remove the row" in str(exc.value)


def test_math_loaders_refuse_a_nan_gold(tmp_path):
    svamp = tmp_path / "SVAMP.json"
    svamp.write_text('[{"Body": "b", "Question": "q", "Answer": NaN}]', encoding="utf-8")
    with pytest.raises(UserError, match=r"item 0: answer nan is not a finite number"):
        loaders.load_svamp(svamp)


def test_eval_jsonl_still_takes_numbers_strings_and_lists(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "a?", "answer": "2"}\n{"question": "b?", "answer": ["x", 3]}\n'
        '{"question": 12, "answer": "twelve"}\n',
        encoding="utf-8",
    )
    golds = [e.gold for e in loaders.load_generic_jsonl(path)]
    assert golds == [2.0, ["x", "3"], ["twelve"]] and math.isfinite(golds[0])


# --------------------------------------------------------------------------- messages


def test_eval_jsonl_names_the_physical_line_of_a_bad_row(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '\n{"question": "1+1?", "answer": 2}\n{oops\n\n{"question": "x"}\n', encoding="utf-8"
    )
    with pytest.raises(UserError, match=r"q\.jsonl:5: missing field\(s\) answer"):
        loaders.load_generic_jsonl(path)


@pytest.mark.parametrize(
    "loader,row",
    [
        (loaders.load_gsm8k, '{"question": "q"}'),
        (loaders.load_mawps_jsonl, '{"question": "q"}'),
        (loaders.load_nq_open, '{"question": "q"}'),
        (loaders.load_lama_squad, '{"obj_label": "q"}'),
    ],
)
def test_every_jsonl_loader_names_the_physical_line(tmp_path, loader, row):
    path = tmp_path / "data.jsonl"
    path.write_text("\n\n[1]\n" + row + "\n", encoding="utf-8")  # blank, blank, not an object
    with pytest.raises(UserError, match=r"data\.jsonl:4: missing field"):
        loader(path)


def test_missing_dev_data_names_the_file_not_data_dir(tmp_path):
    from toolformer.selftrain.config import DevEvalConfig, SelfTrainConfig

    missing = tmp_path / "dev.jsonl"
    with pytest.raises(
        UserError, match=rf"SelfTrainConfig.dev.data {missing}: no such file"
    ) as exc:
        SelfTrainConfig(
            dev=DevEvalConfig(data=str(missing)), output=str(tmp_path / "run")
        ).validate()
    assert "data_dir" not in str(exc.value) and exc.value.field == "SelfTrainConfig.dev.data"
    with pytest.raises(UserError, match="dev.jsonl: no such file") as exc:
        loaders.load_generic_jsonl(missing)
    assert "--data-dir" not in str(exc.value)
