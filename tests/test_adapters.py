"""LoRA adapters loaded by folder path and by short name in ``generate``, ``chat`` and ``eval``,
on top of the base model their toolformer.json names."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_model

from toolformer.cli.main import cli
from toolformer.errors import UserError
from toolformer.models import ADAPTERS_ENV, adapter_dir, list_adapters, load_model, load_tokenizer


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, smol_tokenizer):
    path = tmp_path_factory.mktemp("adapter_base")
    make_tiny_model(len(smol_tokenizer), seed=2).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapters_root(tmp_path_factory, base_dir):
    """``<root>/calc-tiny``: a LoRA adapter with non-zero weights (it changes the outputs)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft = get_peft_model(
        model,
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules="all-linear",
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    folder = root / "calc-tiny"
    peft.save_pretrained(folder)
    (folder / "toolformer.json").write_text(
        json.dumps(
            {
                "base_model": str(base_dir),
                "tools": ["Calculator"],
                "tool_options": {"Calculator": {"numbers_from_text": True}},
            }
        )
    )
    return root


def _logits(model, tok, text="Q: 3 + 4 =\nA:"):
    with torch.inference_mode():
        return model(**tok(text, return_tensors="pt")).logits


def test_an_adapter_loads_by_folder_and_by_short_name_on_its_base(
    adapters_root, base_dir, monkeypatch
):
    folder = adapters_root / "calc-tiny"
    base, tok = load_model(str(base_dir))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        by_path, tok2 = load_model(str(folder))
    # peft's read of a deprecated transformers property is not the user's warning to see
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert tok2.name_or_path == tok.name_or_path
    assert not torch.allclose(_logits(base, tok), _logits(by_path, tok))
    # the same as base + adapter merged by peft itself
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_model(str(base_dir))[0], str(folder)).merge_and_unload()
    assert torch.allclose(_logits(merged, tok), _logits(by_path, tok), atol=1e-5)
    monkeypatch.setenv(ADAPTERS_ENV, str(adapters_root))
    assert list_adapters()["calc-tiny"] == folder
    assert adapter_dir("CALC-TINY") == folder and adapter_dir("smollm2-135m") is None
    by_name, _ = load_model("calc-tiny")
    assert torch.allclose(_logits(by_name, tok), _logits(by_path, tok))
    assert load_tokenizer("calc-tiny").name_or_path == tok.name_or_path


def test_a_finetune_output_without_its_merged_weights_loads_from_its_adapter(
    adapters_root, base_dir, tmp_path
):
    """``selftrain --keep-models best`` removes a round's merged weights and keeps ``adapter/``:
    the round's folder still loads (by path, as ``eval --model round_1/model_0``)."""
    import shutil

    run = tmp_path / "model_0"
    run.mkdir()
    shutil.copytree(adapters_root / "calc-tiny", run / "adapter")
    (run / "config.json").write_text("{}")  # what a pruned folder keeps beside the adapter
    assert adapter_dir(str(run)) == run / "adapter"
    model, tok = load_model(str(run))
    by_adapter, _ = load_model(str(run / "adapter"))
    assert torch.allclose(_logits(model, tok), _logits(by_adapter, tok))
    (run / "model.safetensors").write_bytes(b"")  # merged weights present: the folder is the model
    assert adapter_dir(str(run)) is None


def test_generate_chat_and_eval_take_an_adapter(adapters_root, tmp_path, monkeypatch):
    monkeypatch.setenv(ADAPTERS_ENV, str(adapters_root))
    runner = CliRunner()
    for model in ("calc-tiny", str(adapters_root / "calc-tiny")):
        res = runner.invoke(cli, ["generate", model, "Q: 3 + 4 =\nA:", "--max-new-tokens", "4"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli,
        ["chat", "calc-tiny", "--no-template", "--max-new-tokens", "3"],
        input="hello\n/tools\n/quit\n",
    )
    assert res.exit_code == 0, res.output
    assert "tools: Calculator" in res.output  # from the adapter's toolformer.json
    from toolformer.eval.harness import EvalConfig, evaluate
    from toolformer.models import manifest_tools

    assert manifest_tools("calc-tiny") == ["Calculator"]
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"question": "What is 3 + 4?", "answer": 7}) + "\n")
    res = evaluate(
        EvalConfig(model="calc-tiny", tasks=f"jsonl:{dev}", max_new_tokens=3, progress=False)
    )
    assert res["tools"] == ["Calculator"] and next(iter(res["tasks"].values()))["n"] == 1
    # the adapter's tool options are used, and the user's own win over them
    assert res["settings"]["tool_options"] == {"Calculator": {"numbers_from_text": True}}
    res = evaluate(
        EvalConfig(
            model="calc-tiny",
            tasks=f"jsonl:{dev}",
            max_new_tokens=3,
            progress=False,
            tool_options={"calculator": {"numbers_from_text": False, "decimals": 3}},
        )
    )
    assert res["settings"]["tool_options"] == {
        "Calculator": {"numbers_from_text": False, "decimals": 3}
    }
    from toolformer.cli.generate_cmd import build_generator

    gen, names, _ = build_generator(
        "calc-tiny",
        {"no_tools": False, "tool_names": None, "dtype": "fp32", "device": None, "date": None},
    )
    assert names == ["Calculator"] and gen.executor.tools["Calculator"].numbers_from_text is True


def test_an_adapter_without_a_base_is_one_line(tmp_path):
    folder = tmp_path / "orphan"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    with pytest.raises(UserError) as exc:
        load_model(str(folder))
    assert "names no base model" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.slow
def test_the_shipped_calculator_adapter_calls_with_the_questions_numbers():
    """The committed self-trained adapter (RESULTS.md, 'Self-training') loads by its short name,
    carries its tool options, and answers an unseen word problem with a Calculator call over the
    question's numbers whose result is the answer."""
    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.models import manifest_tool_options
    from toolformer.tools.assembly import create_tools

    assert "smollm2-135m-calculator" in list_adapters()
    options = manifest_tool_options("smollm2-135m-calculator")
    assert options == {"Calculator": {"numbers_from_text": True}}
    model, tokenizer = load_model("smollm2-135m-calculator")
    gen = ToolGenerator(model, tokenizer, list(create_tools(["Calculator"], options).values()))
    out = gen.generate(
        [
            (
                "Q: A farmer has 12 boxes with 8 eggs in each "
                "box. How many eggs does the farmer have?\nA:"
            )
        ],
        GenerationConfig(max_new_tokens=24, stop_strings=("\n",)),
    )[0]
    assert out.calls and out.calls[0].tool == "Calculator" and out.calls[0].error is None
    assert out.calls[0].result == "96"


@pytest.mark.slow
def test_the_shipped_math_adapter_computes_with_numbers_written_in_words():
    """The ladder-trained adapter (RESULTS.md, 'Math depth') loads by its short name with its
    tool options, and answers a problem whose numbers are words with a call on them."""
    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.models import manifest_tool_options
    from toolformer.tools.assembly import create_tools

    name = "smollm2-135m-math"
    assert name in list_adapters()
    options = manifest_tool_options(name)
    assert options == {"Calculator": {"numbers_from_text": True}}
    model, tokenizer = load_model(name)
    gen = ToolGenerator(model, tokenizer, list(create_tools(["Calculator"], options).values()))
    prompt = "Q: Maria had twenty-four cookies. She ate six of them. How many cookies are left?\nA:"
    out = gen.generate([prompt], GenerationConfig(max_new_tokens=24, stop_strings=("\n",)))[0]
    assert out.calls and out.calls[0].args.replace(" ", "") == "24-6"
    assert out.calls[0].result == "18"


@pytest.mark.slow
def test_the_shipped_toolformer_adapter_decides_when_and_which():
    """The committed mixed adapter (RESULTS.md, 'When and which tool') loads by its short name
    with its calibrated trigger, and, decoded as `generate` decodes it: a word problem gets a
    Calculator call, a question about today's date a Calendar call, a request for a haiku none.
    Under the paper's top-10 rule the same haiku prompt gets a call: the trigger decides."""
    from dataclasses import replace

    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.generation.trigger import resolve_trigger
    from toolformer.models import manifest_call_trigger
    from toolformer.tools.assembly import create_tools

    name = "smollm2-135m-toolformer"
    assert name in list_adapters()
    trigger = manifest_call_trigger(name)
    assert trigger is not None and trigger["call_threshold"] > 0
    model, tokenizer = load_model(name)
    tools = create_tools(["Calculator", "Calendar"], {"Calculator": {"numbers_from_text": True}})
    gen = ToolGenerator(model, tokenizer, list(tools.values()))
    base = GenerationConfig(max_new_tokens=24, stop_strings=("\n",))
    calibrated = resolve_trigger(base, name, explicit=False)
    assert calibrated.call_threshold == trigger["call_threshold"]
    prompts = [
        "Q: A farmer has 12 boxes with 8 eggs in each box. How many eggs does the farmer have?\nA:",
        "Q: What day of the week is it today?\nA:",
        "Q: Write a haiku about the sea.\nA:",
    ]
    outs = gen.generate(prompts, calibrated)
    assert [o.calls[0].tool if o.calls else None for o in outs] == ["Calculator", "Calendar", None]
    paper = gen.generate(prompts[2:], replace(base, call_top_k=10, call_threshold=0.0))[0]
    assert paper.calls  # the paper's rule calls on it
