"""The MT tool: causal few-shot backend, seq2seq backend (NLLB-style and plain), passthrough."""

from __future__ import annotations

import math

import pytest
import torch

from toolformer.errors import UserError
from toolformer.syntax import APICall, find_calls
from toolformer.text.langdetect import detect_language
from toolformer.tools import ToolExecutor, create_tool
from toolformer.tools.base import COMPUTE_SETTINGS, ToolError, ToolInputError
from toolformer.tools.translate import MT, NLLB_CODES, Translation

FRENCH = "Le chat est sur la table et le chien dort dans le jardin."
ENGLISH = "The weather is nice today and we are going to the beach."


class Scripted(torch.nn.Module):
    """A real tiny LM whose greedy choice is forced to follow ``script`` after each prompt.

    A forward pass over more than one token is a (new) prompt and restarts the script; the real
    model still runs, so the KV-cache paths are exercised.
    """

    def __init__(self, inner, script):
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.script = list(script)
        self.calls = 0
        self._step = 0

    def forward(self, input_ids=None, past_key_values=None, use_cache=None, logits_to_keep=0):
        self.calls += 1
        if input_ids.shape[1] > 1:
            self._step = 0
        out = self.inner(
            input_ids=input_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )
        forced = self.script[min(self._step, len(self.script) - 1)]
        out.logits[:, -1, :] = -1e4
        out.logits[:, -1, forced] = 0.0
        self._step += 1
        return out


def _ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


# --------------------------------------------------------------------------- the tool itself


def test_tool_definition():
    assert MT.name == "MT"
    assert MT.annotation == COMPUTE_SETTINGS
    s = MT.annotation
    assert (s.tau_s, s.k, s.m, s.tau_f) == (0.0, 20, 10, 0.5)
    assert MT.prompt.startswith("Your task is to complete a given piece of text by using a Machine")
    assert MT.prompt.endswith("Input: {text}\nOutput:")
    assert MT().format_prompt("x y z").endswith("Input: x y z\nOutput:")


def test_annotation_prompt_examples_call_mt_on_foreign_chunks_without_results():
    lines = MT.prompt.splitlines()
    examples = [line[len("Output: ") :] for line in lines if line.startswith("Output: ")]
    assert len(examples) >= 3
    for line in examples:
        calls = find_calls(line)
        assert len(calls) == 1
        call = calls[0].call
        assert call.tool == "MT" and call.result is None
        assert call.args in line[: calls[0].start] + line[calls[0].end :]
        assert detect_language(call.args)[0] not in ("en", "und")


def test_registry_creates_mt_without_loading_a_model():
    mt = create_tool("MT")
    assert isinstance(mt, MT) and not mt.loaded
    assert mt.config.model == "gemma3-270m"


def test_options_override_config_and_unknown_options_are_rejected():
    mt = MT(budget_ratio=1.5, dtype="bf16")
    assert mt.config.budget_ratio == 1.5 and mt.config.dtype == "bf16"
    assert MT("/some/nllb").config.model == "/some/nllb"
    with pytest.raises(UserError, match="MT has no option 'beams'"):
        MT(beams=4)
    with pytest.raises(ToolInputError, match="tokenizer"):
        MT(model=torch.nn.Linear(2, 2))


@pytest.mark.parametrize("args", ["", "   ", '""', "' '"])
def test_empty_input_is_a_tool_input_error(args):
    with pytest.raises(ToolInputError):
        MT().run(args)


def test_english_input_comes_back_unchanged_without_loading_or_calling_a_model(
    smol_tokenizer, tiny_model
):
    lazy = MT()
    assert lazy.run(ENGLISH) == ENGLISH
    assert not lazy.loaded  # Gemma was never loaded
    spy = Scripted(tiny_model, [0])
    mt = MT(model=spy, tokenizer=smol_tokenizer)
    result = mt.translate("  " + ENGLISH + "\n")
    assert result == Translation(ENGLISH, "en", result.confidence, True, 0, 0, result.seconds)
    assert mt.run("12 + 7 = 19") == "12 + 7 = 19"  # nothing to translate
    assert spy.calls == 0


# --------------------------------------------------------------------------- causal backend


def test_tiny_causal_model_translates_within_budget(smol_tokenizer, tiny_model):
    mt = MT(model=tiny_model, tokenizer=smol_tokenizer)
    result = mt.translate(FRENCH)
    n_source = len(_ids(smol_tokenizer, FRENCH))
    assert result.budget == min(256, math.ceil(2.0 * n_source) + 8)
    assert 0 < result.new_tokens <= result.budget
    assert isinstance(result.text, str) and result.text
    assert result.source_lang == "fr" and not result.skipped
    assert mt.run(FRENCH) == result.text  # greedy: deterministic


def test_budget_is_exact_when_the_model_never_ends_the_line(smol_tokenizer, tiny_model):
    cat = _ids(smol_tokenizer, " cat")[0]
    mt = MT(
        model=Scripted(tiny_model, [cat]),
        tokenizer=smol_tokenizer,
        budget_ratio=0.5,
        budget_extra=3,
    )
    result = mt.translate(FRENCH)
    assert result.budget == math.ceil(0.5 * len(_ids(smol_tokenizer, FRENCH))) + 3
    assert result.new_tokens == result.budget
    assert result.text == " ".join(["cat"] * result.budget)
    assert MT(max_new_tokens=4).budget_for(1000) == 4


def test_stops_at_newline(smol_tokenizer, tiny_model):
    script = _ids(smol_tokenizer, " The cat\nEnglish: more")
    mt = MT(model=Scripted(tiny_model, script), tokenizer=smol_tokenizer)
    result = mt.translate(FRENCH)
    assert result.text == "The cat"
    assert result.new_tokens == 2


def test_stops_at_eos_and_empty_output_is_an_error(smol_tokenizer, tiny_model):
    mt = MT(model=Scripted(tiny_model, [smol_tokenizer.eos_token_id]), tokenizer=smol_tokenizer)
    with pytest.raises(ToolError, match="empty"):
        mt.translate(FRENCH)


def test_prompt_cache_gives_the_same_output_as_a_full_forward(smol_tokenizer, tiny_model):
    short = {"budget_ratio": 0.5, "budget_extra": 2}
    cached = MT(model=tiny_model, tokenizer=smol_tokenizer, **short)
    full = MT(model=tiny_model, tokenizer=smol_tokenizer, cache_prompt=False, **short)
    for text in (FRENCH, "Der Hund schläft unter dem Tisch.", "Мы поехали на море с детьми."):
        assert cached.translate(text).text == full.translate(text).text


def test_prompt_names_the_detected_language(smol_tokenizer, tiny_model):
    seen = []

    class Recorder(Scripted):
        def forward(self, input_ids=None, **kw):
            seen.append(smol_tokenizer.decode(input_ids[0]))
            return super().forward(input_ids=input_ids, **kw)

    mt = MT(model=Recorder(tiny_model, [198]), tokenizer=smol_tokenizer)
    with pytest.raises(ToolError):
        mt.translate("Die Kinder spielen im Garten mit dem Ball und sind sehr froh.")
    query = "German: Die Kinder spielen im Garten mit dem Ball und sind sehr froh.\nEnglish:"
    assert seen[-1].endswith(query)
    assert "French: " in seen[0]  # the few-shot prefix was encoded first


def test_too_long_input_is_rejected(smol_tokenizer, tiny_model):
    mt = MT(model=tiny_model, tokenizer=smol_tokenizer, max_input_tokens=5)
    with pytest.raises(ToolInputError, match="over the limit"):
        mt.translate(FRENCH)


def test_executor_records_results_and_load_failures(smol_tokenizer, tiny_model):
    with ToolExecutor([MT(model=tiny_model, tokenizer=smol_tokenizer)]) as ex:
        ok = ex.run(APICall("MT", FRENCH))
        assert ok.ok and ok.output
    broken = MT(model="/nonexistent/mt-model")
    with ToolExecutor([broken]) as ex:
        first = ex.run(APICall("MT", FRENCH))
        second = ex.run(APICall("MT", "Der Hund schläft unter dem Tisch."))
    assert not first.ok and "could not load model '/nonexistent/mt-model'" in first.error
    assert not second.ok and second.error == first.error  # the failed load is not retried


# --------------------------------------------------------------------------- seq2seq backend


def _save_tiny_bart(path, tok):
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
        forced_eos_token_id=None,
    )
    BartForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)


def test_plain_seq2seq_model_from_a_path(tmp_path, smol_tokenizer):
    _save_tiny_bart(tmp_path, smol_tokenizer)
    mt = MT(model=str(tmp_path))  # loaded from the folder: AutoConfig says encoder-decoder
    result = mt.translate(FRENCH)
    assert mt.loaded and type(mt._backend).__name__ == "_Seq2SeqBackend"
    assert mt._backend.kind == "plain"
    assert isinstance(result.text, str) and result.text
    assert 0 < result.new_tokens <= result.budget


def _tiny_nllb(path):
    """A real NllbTokenizer over a character vocabulary and a tiny random M2M100 (NLLB's class)."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    chars = "▁abcdefghijklmnopqrstuvwxyzàâçéèêëîïôûùüäöß.,'?!"
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    # only a few language codes, so that a random model mostly writes letters
    codes = ["eng_Latn", "fra_Latn", "deu_Latn"]
    tok = NllbTokenizer(vocab=vocab, merges=[], additional_special_tokens=codes)
    torch.manual_seed(0)
    config = M2M100Config(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    M2M100ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)


@pytest.fixture(scope="module")
def nllb_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-nllb")
    _tiny_nllb(path)
    return path


@pytest.mark.parametrize(
    "text,lang", [(FRENCH, "fr"), ("Der Hund schläft unter dem Tisch und träumt.", "de")]
)
def test_nllb_sets_source_language_and_forces_english(nllb_dir, text, lang):
    mt = MT(model=str(nllb_dir), budget_ratio=0.25, budget_extra=2).setup()
    backend = mt._backend
    assert backend.kind == "nllb"
    tok, model = backend.tok, backend.model
    captured = {}
    real_generate = model.generate

    def spy(**kwargs):
        captured.update(kwargs)
        out = real_generate(**kwargs)
        captured["output"] = out
        return out

    model.generate = spy
    result = mt.translate(text)
    src_id = tok.convert_tokens_to_ids(NLLB_CODES[lang])
    eng_id = tok.convert_tokens_to_ids("eng_Latn")
    assert tok.src_lang == NLLB_CODES[lang]
    assert captured["input_ids"][0, 0].item() == src_id  # NLLB: [src_lang] tokens </s>
    assert captured["input_ids"][0, -1].item() == tok.eos_token_id
    assert captured["forced_bos_token_id"] == eng_id
    assert captured["output"][0, 1].item() == eng_id  # after the decoder start token
    assert captured["max_new_tokens"] == result.budget
    assert result.source_lang == lang


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def gemma_mt():
    return MT().setup()


@pytest.mark.slow
@pytest.mark.parametrize(
    "text,lang,words",
    [
        ("Le chat est sur la table.", "fr", ["cat", "table"]),
        ("Der Hund schläft unter dem Tisch.", "de", ["dog", "table"]),
    ],
)
def test_gemma_translates_simple_sentences(gemma_mt, text, lang, words):
    result = gemma_mt.translate(text)
    assert result.source_lang == lang
    out = result.text.lower()
    assert all(w in out for w in words), result.text
    assert "\n" not in result.text and result.new_tokens < result.budget
