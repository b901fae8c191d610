"""An adapter is data from whoever made it: one that fills none or only some of the model's LoRA
weights, or whose folder lacks its weights file, is refused with one line (every peft load goes
through ``models.peft_from_pretrained``)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_tiny_model

from toolformer.errors import UserError
from toolformer.models import load_model


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, smol_tokenizer):
    path = tmp_path_factory.mktemp("trust_base")
    make_tiny_model(len(smol_tokenizer), seed=3).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return path


def _save_adapter(base_dir, folder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

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
    peft.save_pretrained(folder)
    (folder / "toolformer.json").write_text(json.dumps({"base_model": str(base_dir)}))
    return folder


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, base_dir):
    return _save_adapter(base_dir, tmp_path_factory.mktemp("trust_adapters") / "good")


def _rewrite(src, dst, keep):
    """A copy of adapter ``src`` at ``dst`` whose tensors are ``keep(name, tensor)``'s pairs."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(str(src / "adapter_model.safetensors"))
    kept = dict(pair for name, t in sorted(tensors.items()) for pair in keep(name, t))
    save_file(kept, str(dst / "adapter_model.safetensors"))
    return dst


def _renamed(name, t):
    """Every tensor, under a name the model has no module for."""
    return [(name.replace("lora_A", "lora_down").replace("lora_B", "lora_up"), t)]


def _first_layer_only(name, t):
    """The tensors of layer 0 only."""
    return [(name, t)] if ".layers.0." in name else []


def _none(name, t):
    """No tensor at all."""
    return []


@pytest.mark.parametrize("case", ["renamed", "half", "none"])
def test_an_adapter_that_fits_no_or_part_of_the_model_is_refused(adapter, tmp_path, case):
    from safetensors.torch import load_file

    n = len(load_file(str(adapter / "adapter_model.safetensors")))
    keep = {"renamed": _renamed, "half": _first_layer_only, "none": _none}[case]
    bad = _rewrite(adapter, tmp_path / case, keep)
    load_model(str(adapter))  # the intact adapter loads
    with pytest.raises(UserError) as exc:
        load_model(str(bad))
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg
    matched = {"renamed": 0, "half": n // 2, "none": 0}[case]
    assert f"{matched} of the model's {n} LoRA weights" in msg


def test_an_adapter_folder_without_its_weights_says_so(adapter, tmp_path):
    import shutil

    folder = tmp_path / "no_weights"
    shutil.copytree(adapter, folder)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(UserError) as exc:
        load_model(str(folder))
    msg = str(exc.value)
    assert "adapter_model.safetensors" in msg and str(folder) in msg and "\n" not in msg
    assert "outgoing traffic" not in msg


def test_a_model_folder_without_its_weights_says_so(base_dir, tmp_path):
    import shutil

    folder = tmp_path / "no_weights_model"
    shutil.copytree(base_dir, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(UserError) as exc:
        load_model(str(folder))
    msg = str(exc.value)
    assert "lacks its weights" in msg and "model.safetensors" in msg and "\n" not in msg


def test_finetune_init_adapter_goes_through_the_same_check(adapter, base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from toolformer.models import peft_from_pretrained

    bad = _rewrite(adapter, tmp_path / "bad", lambda name, t: [])
    with pytest.raises(UserError):
        peft_from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir), str(bad), is_trainable=True
        )


# --------------------------------------------------------------------------- manifest options

UNSAFE = {
    "WikiSearch": {"corpus": "/etc/passwd", "cache_dir": "/tmp/made-by-a-manifest"},
    "QA": {"model": "/somewhere/else"},
}


@pytest.fixture()
def steering_adapter(adapter, tmp_path):
    """The adapter with a manifest that names a corpus file, an index folder and a reader model."""
    import shutil

    folder = tmp_path / "steering"
    shutil.copytree(adapter, folder)
    meta = json.loads((folder / "toolformer.json").read_text())
    meta.update(
        tools=["Calculator", "WikiSearch"],
        tool_options={
            "Calculator": {"numbers_from_text": True},
            "WikiSearch": {**UNSAFE["WikiSearch"], "top_k": 2},
            "QA": UNSAFE["QA"],
        },
    )
    (folder / "toolformer.json").write_text(json.dumps(meta))
    return folder


def test_builtin_tools_let_a_manifest_choose_no_file_folder_or_model():
    from toolformer.tools.base import available_tools, get_tool_class

    for name in available_tools():
        cls = get_tool_class(name)
        safe = set(cls.manifest_safe_options)
        assert safe <= set(cls.option_types()), name
        assert not safe & {
            "corpus",
            "cache_dir",
            "model",
            "dense_model",
            "device",
            "search",
            "tokenizer",
            "retriever",
            "today",
            "config",
        }, name
    assert "numbers_from_text" in get_tool_class("Calculator").manifest_safe_options


def test_generate_drops_a_manifests_paths_and_models_and_says_which_it_used(
    steering_adapter, capsys
):
    from toolformer.cli.generate_cmd import build_generator

    opts = {"no_tools": False, "tool_names": None, "dtype": "fp32", "device": None, "date": None}
    gen, names, _ = build_generator(str(steering_adapter), opts)
    err = capsys.readouterr().err
    search = gen.executor.tools["WikiSearch"]
    assert search.config.corpus is None and search.config.cache_dir is None
    assert search.config.top_k == 2 and gen.executor.tools["Calculator"].numbers_from_text is True
    lines = [line for line in err.splitlines() if "tool options from" in line]
    assert len(lines) == 2, err
    assert "Calculator.numbers_from_text=true" in lines[0] and "WikiSearch.top_k=2" in lines[0]
    assert all(o in lines[1] for o in ("WikiSearch.corpus", "WikiSearch.cache_dir", "QA.model"))
    # what the user passes is used, and is no longer reported as dropped
    gen, _, _ = build_generator(
        str(steering_adapter), {**opts, "tool_option": ("WikiSearch.corpus=mine.jsonl",)}
    )
    assert gen.executor.tools["WikiSearch"].config.corpus == "mine.jsonl"
    assert "WikiSearch.corpus" not in capsys.readouterr().err


def test_eval_drops_a_manifests_paths_and_models(steering_adapter, tmp_path, capsys):
    from toolformer.eval.harness import EvalConfig, evaluate

    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"question": "What is 3 + 4?", "answer": 7}) + "\n")
    res = evaluate(
        EvalConfig(
            model=str(steering_adapter),
            tasks=f"jsonl:{dev}",
            max_new_tokens=2,
            tools=["Calculator"],
            progress=False,
        )
    )
    assert res["settings"]["tool_options"] == {
        "Calculator": {"numbers_from_text": True},
        "WikiSearch": {"top_k": 2},
    }
    assert "ignored tool options from" in capsys.readouterr().err


# --------------------------------------------------------------------------- resumes


def _retrain(folder, base_dir, seed):
    """Save another adapter (other weights) over ``folder``, as a retraining run would."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules="all-linear",
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    model.save_pretrained(folder)


def test_eval_refuses_to_resume_after_the_adapters_weights_changed(adapter, base_dir, tmp_path):
    import shutil

    from toolformer.eval.harness import EvalConfig, evaluate

    folder = tmp_path / "calc"
    shutil.copytree(adapter, folder)
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"question": "What is 3 + 4?", "answer": 7}) + "\n")
    cfg = EvalConfig(
        model=str(folder),
        tasks=f"jsonl:{dev}",
        max_new_tokens=2,
        progress=False,
        tools=["Calculator"],
        output_dir=str(tmp_path / "run"),
    )
    evaluate(cfg)
    copy = tmp_path / "copied"  # the same files elsewhere, with other times: still the same model
    shutil.copytree(folder, copy)
    shutil.rmtree(folder)
    shutil.copytree(copy, folder)
    evaluate(cfg)
    _retrain(folder, base_dir, seed=7)
    with pytest.raises(UserError) as exc:
        evaluate(cfg)
    msg = str(exc.value)
    assert (
        "adapter_model.safetensors" in msg and "EvalConfig.resume=False" in msg and "\n" not in msg
    )
    from dataclasses import replace

    evaluate(replace(cfg, resume=False))  # afresh, as the message says
    evaluate(cfg)  # and that run resumes
