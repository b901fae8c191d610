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
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
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


@pytest.mark.parametrize("case", ["renamed", "half", "none"])
def test_an_adapter_that_fits_no_or_part_of_the_model_is_refused(adapter, tmp_path, case):
    n = len(__import__("safetensors.torch").torch.load_file(str(adapter / "adapter_model.safetensors")))
    if case == "renamed":
        keep = lambda name, t: [(name.replace("lora_A", "lora_down").replace("lora_B", "lora_up"), t)]
    elif case == "half":
        keep = lambda name, t: [(name, t)] if ".layers.0." in name else []
    else:
        keep = lambda name, t: []
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


def test_finetune_init_adapter_goes_through_the_same_check(adapter, base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from toolformer.models import peft_from_pretrained

    bad = _rewrite(adapter, tmp_path / "bad", lambda name, t: [])
    with pytest.raises(UserError):
        peft_from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(bad), is_trainable=True)
