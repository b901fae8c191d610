"""The KV cache's keyword across transformers versions (toolformer.kv_cache)."""

from __future__ import annotations

import warnings

import pytest

from toolformer.kv_cache import cache_kwargs, cache_name, returned_cache


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """One torch thread for this module's tiny models."""


class OldForward:
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):
        return None


class NewForward:
    def forward(self, input_ids=None, cache=None, use_cache=None):
        return None


class Wrapped:
    """Like a PEFT model: forward(*args, **kwargs), the real model behind get_base_model()."""

    def __init__(self, base):
        self.base = base

    def forward(self, *args, **kwargs):
        return None

    def get_base_model(self):
        return self.base


class PassesKwargsOn(NewForward):
    """Like a scripted test model: forward(input_ids, **kwargs) calls the parent's."""

    def forward(self, input_ids=None, **kwargs):
        return super().forward(input_ids=input_ids, **kwargs)


def test_the_cache_goes_by_the_name_the_forward_takes():
    assert cache_name(PassesKwargsOn()) == "cache"
    assert cache_name(OldForward()) == "past_key_values"
    assert cache_name(NewForward()) == "cache"
    assert cache_name(Wrapped(NewForward())) == "cache"
    assert cache_name(Wrapped(OldForward())) == "past_key_values"
    assert cache_kwargs(NewForward(), "kv") == {"cache": "kv"}


def test_the_returned_cache_is_read_under_either_name():
    assert returned_cache({"past_key_values": "old"}) == "old"
    assert returned_cache({"cache": "new", "logits": 1}) == "new"
    assert returned_cache({"logits": 1}) is None


def test_a_real_model_output_gives_its_cache_without_the_deprecated_property(
    tiny_model, smol_tokenizer
):
    import torch

    with torch.inference_mode():
        out = tiny_model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True)
    cache = returned_cache(out)
    assert cache is not None and cache.get_seq_length() == 3


def test_annotation_and_generation_pass_the_cache_without_deprecation_warnings(
    tiny_model, smol_tokenizer
):
    """transformers 5 warns (FutureWarning) on ``past_key_values=`` and removes it in 5.40: every
    cached forward pass of sampling, scoring, the reference annotator and generation must use
    the name the model takes."""
    from toolformer.data_aug.annotator import Annotator
    from toolformer.data_aug.reference import ReferenceAnnotator
    from toolformer.data_aug.types import AnnotatorConfig, Document
    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.tools.assembly import create_tools
    from toolformer.tools.executor import ToolExecutor

    tools = create_tools(["Calculator"])
    doc = Document("d", "Out of 12 boxes of 4 pens each, 48 pens were sold on 3 days.")
    cfg = AnnotatorConfig(
        prefilter=False,
        max_call_tokens=6,
        settings={"Calculator": {"k": 2, "m": 2, "tau_f": -100.0}},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Annotator(tiny_model, smol_tokenizer, tools, cfg) as ann:
            ours = ann.annotate(doc)
        ref = ReferenceAnnotator(tiny_model, smol_tokenizer, tools, cfg).annotate(doc)
        gen = ToolGenerator(tiny_model, smol_tokenizer, ToolExecutor(list(tools.values())))
        out = gen.generate(
            "What is 3 times 4?", GenerationConfig(max_new_tokens=6, call_top_k=len(smol_tokenizer))
        )[0]
    assert ours.error is None and ref.error is None
    assert ours.stats["candidates_sampled"] == 4 and out.num_tokens == 6
    cache_warnings = [str(w.message) for w in caught if "past_key_values" in str(w.message)]
    assert cache_warnings == []
