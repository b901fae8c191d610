"""Shared fixtures: the real SmolLM2 tokenizer, tiny random models built on it, the real model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub: everything they load is local or built in the test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(
    os.environ.get(
        "TOOLFORMER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


def pytest_configure(config):
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (skip when absent)."""
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The real SmolLM2 tokenizer (` [` and ` ->` are single tokens)."""
    from toolformer.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


def make_tiny_model(vocab_size: int, seed: int = 0, layers: int = 2, hidden: int = 32):
    """A tiny random Llama: fast enough for unit tests, real enough for the KV-cache paths."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    return model


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny-model ops are latency-bound: one thread avoids spin-waiting on a busy machine.
    Modules of tiny-model tests pull it in with an autouse fixture of their own."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_model(smol_tokenizer):
    """A tiny random model over SmolLM2's vocabulary (eval mode, fp32)."""
    return make_tiny_model(len(smol_tokenizer))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, smol_tokenizer):
    """A tiny random model and the SmolLM2 tokenizer saved in a folder (a model path)."""
    path = tmp_path_factory.mktemp("tiny_model")
    make_tiny_model(len(smol_tokenizer), seed=0).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def real_model():
    """The real SmolLM2-135M (integration tests)."""
    from toolformer.models import load_model

    return load_model("smollm2-135m")
