"""QA: retrieval-augmented reader: answer cleaning, prompts, injected tiny model, real SmolLM2."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.errors import UserError
from toolformer.syntax import find_calls
from toolformer.tools.assembly import create_tool
from toolformer.tools.base import RETRIEVAL_SETTINGS, ToolError, ToolInputError
from toolformer.tools.executor import ToolExecutor
from toolformer.tools.qa import QA, QAConfig, _stop_at_line_or_sentence, clean_answer, focus
from toolformer.tools.wiki_search import WikiSearch

RECORDS = [
    {
        "id": "1",
        "title": "Montgomery, Alabama",
        "text": "Montgomery is the capital city of the U.S. state of Alabama.",
    },
    {
        "id": "2",
        "title": "Ulm",
        "text": "Ulm is a city on the Danube. Albert Einstein was born in Ulm in 1879.",
    },
    {
        "id": "3",
        "title": "Thetis",
        "text": "Thetis was a sea nymph. She was the mother of the hero Achilles.",
    },
]


@pytest.fixture
def search(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return WikiSearch(corpus=str(path), cache_dir=str(tmp_path / "cache"))


# --------------------------------------------------------------------------- answer cleaning


@pytest.mark.parametrize(
    "raw,question,titles,expected",
    [
        ("Montgomery", "What is the capital of Alabama?", (), "Montgomery"),
        (
            "The capital of Alabama is Montgomery.",
            "What is the capital of Alabama?",
            (),
            "Montgomery",
        ),
        ("The mother of Achilles is Thetis", "Who was Achilles' mother?", (), "Thetis"),
        (
            "Answer: George Orwell.\nHe wrote it in 1945.",
            "Who wrote Animal Farm?",
            (),
            "George Orwell",
        ),
        ("[2] Ulm: Ulm, in Germany", "Where was Einstein born?", ("Ulm",), "Ulm, in Germany"),
        ('"3.5 km". It is long', "How long is it?", (), "3.5 km"),
        (
            "He lived in the U.S. for years",
            "Where did he live?",
            (),
            "He lived in the U.S. for years",
        ),
        (
            "In which country was Andrei Tarkovsky born",
            "In which country was Andrei Tarkovsky born?",
            (),
            "",
        ),
        ("  \n  ", "Who?", (), ""),
        (
            "The answer to the question is: 14 March 1879",
            "When was Albert Einstein born?",
            (),
            "14 March 1879",
        ),
        (
            "Anchorage, which is also the largest city in",
            "What is the largest city in Alaska?",
            (),
            "Anchorage",
        ),
        (
            "The author of the novella Animal Farm is George Orwell",
            "Who wrote the novella Animal Farm?",
            (),
            "George Orwell",
        ),
        ("Paris is the capital", "What is the capital of France?", (), "Paris is the capital"),
        ("written by George Orwell", "Who wrote the novella Animal Farm?", (), "George Orwell"),
        ("created by Morihei Ueshiba (\u690d\ufffd", "Who founded aikido?", (), "Morihei Ueshiba"),
        ("Ulm (Germany)", "Where?", (), "Ulm (Germany)"),
    ],
)
def test_clean_answer(raw, question, titles, expected):
    assert clean_answer(raw, question, titles) == expected


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.text(max_size=80), st.integers(min_value=1, max_value=20))
def test_clean_answer_is_short_and_one_line(raw, question, max_words):
    out = clean_answer(raw, question, max_words=max_words)
    assert "\n" not in out and len(out.split()) <= max_words and out == out.strip()


def test_focus_keeps_the_best_sentence_and_its_neighbours():
    text = (
        "Ulm is a city. It lies on the Danube river. Albert Einstein was born in Ulm in 1879. "
        "The minster has the tallest church steeple. Many tourists visit it every year."
    )
    assert focus(text, "Where was Albert Einstein born?", 100) == text
    assert focus(text, "Where was Albert Einstein born?", 18) == (
        "Albert Einstein was born in Ulm in 1879. The minster has the tallest church steeple."
    )
    assert focus(text, "Where was Albert Einstein born?", 4) == "Albert Einstein was born"


def test_stopping_criterion_stops_at_line_or_sentence_end(smol_tokenizer):
    import torch

    prompt = smol_tokenizer("Question: where?", return_tensors="pt")["input_ids"]
    n = prompt.shape[1]
    stop = _stop_at_line_or_sentence(smol_tokenizer, n)[0]

    def done(answer):
        ids = smol_tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return bool(stop(torch.cat([prompt, ids], dim=1), None)[0])

    assert done("Montgomery. The") and done("Ulm\nQuestion")
    assert not done("Montgomery") and not done("3.5") and not done("the U.S. Army")


# --------------------------------------------------------------------------- tool plumbing


def test_prompt_file_and_metadata(search, tiny_model, smol_tokenizer):
    qa = QA(search=search, model=tiny_model, tokenizer=smol_tokenizer)
    assert qa.annotation == RETRIEVAL_SETTINGS and qa.name == "QA"
    assert qa.prompt.startswith("Your task is to add calls to a Question Answering API")
    assert '"[QA(question)]"' in qa.prompt and qa.prompt.endswith("Input: {text}\nOutput:")
    calls = find_calls(qa.prompt)
    assert calls[0].call.args == "question"  # the instruction's own example
    examples = calls[1:]
    assert len(examples) >= 5 and all(
        c.call.tool == "QA" and c.call.args.endswith("?") for c in examples
    )
    assert all(c.call.result is None for c in calls)


def test_reader_prompt_chat_and_plain(search, smol_tokenizer):
    qa = QA(search=search)
    passages = qa.retrieve("Where was Albert Einstein born?")
    assert passages[0].title == "Ulm"
    text, is_chat = qa.build_prompt("Where was Albert Einstein born?", passages, smol_tokenizer)
    assert is_chat and text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert (
        "[1] Ulm: Ulm is a city on the Danube." in text
        and "Question: Where was Albert Einstein born?" in text
    )
    plain = QA(search=search, use_chat_template=False)
    text, is_chat = plain.build_prompt("Where?", passages, smol_tokenizer)
    assert not is_chat and text.endswith("\nQuestion: Where?\nAnswer:")


def test_tiny_random_model_answers_without_crashing(search, tiny_model, smol_tokenizer):
    qa = QA(search=search, model=tiny_model, tokenizer=smol_tokenizer, max_new_tokens=8)
    answer = qa.answer("What is the capital of Alabama?")
    assert isinstance(answer, str) and "\n" not in answer and len(answer.split()) <= 12
    try:
        out = qa.run("What is the capital of Alabama?")
        assert out == answer and out
    except ToolError as exc:  # a random model may say nothing usable: that is a recorded failure
        assert "could not answer" in str(exc)
    result = ToolExecutor([qa]).run(("QA", "Who was the mother of Achilles?"))
    assert result.ok or "could not answer" in result.error
    with pytest.raises(ToolInputError):
        qa.run("  ")


def test_options_and_lazy_loading(search, monkeypatch):
    import toolformer.models as models

    loaded = []

    def fake_load(name, dtype="fp32", device=None):
        loaded.append((name, dtype))
        raise RuntimeError("stop here")

    monkeypatch.setattr(models, "load_model", fake_load)
    qa = QA(search=search, model="gemma3-270m", dtype="bf16")
    assert loaded == [] and qa.config.model == "gemma3-270m"
    with pytest.raises(RuntimeError, match="stop here"):
        qa.reader()
    assert loaded == [("gemma3-270m", "bf16")]
    with pytest.raises(UserError, match="needs tokenizer"):
        QA(model=object())
    with pytest.raises(UserError, match="QA has no option .passage.. Did you mean .passages."):
        QA(passage=3)
    assert isinstance(create_tool("QA", search=search), QA)
    assert QAConfig().model == "smollm2-135m"


def test_setup_loads_reader_and_index(search, tiny_model, smol_tokenizer):
    qa = QA(search=search, model=tiny_model, tokenizer=smol_tokenizer)
    assert search.searcher._bm25 is None
    assert qa.setup() is qa and search.searcher._bm25 is not None


def test_default_search_is_built_lazily(tmp_path, monkeypatch):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    monkeypatch.setenv("TOOLFORMER_CACHE", str(tmp_path / "cache"))
    qa = QA(corpus=str(path))
    assert qa._search is None
    assert (
        qa.search.config.corpus == str(path) and qa.retrieve("Thetis mother")[0].title == "Thetis"
    )


# --------------------------------------------------------------------------- real SmolLM2


@pytest.mark.slow
def test_real_smollm2_answers_from_default_corpus(real_model):
    model, tok = real_model
    qa = QA(search=WikiSearch(), model=model, tokenizer=tok)
    answers = {
        q: qa.run(q)
        for q in ["What is the capital of Alabama?", "Who wrote the novella Animal Farm?"]
    }
    print(answers)
    for answer in answers.values():
        assert answer and len(answer.split()) <= 12 and "\n" not in answer
    assert "Montgomery" in answers["What is the capital of Alabama?"]
    assert "Orwell" in answers["Who wrote the novella Animal Farm?"]
