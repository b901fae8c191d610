"""Integration: fine-tune the real SmolLM2 on Calculator-augmented texts, then generate with the
tool-calling generator on a new prompt and check that a real Calculator call ran and that its
correct result is in the output."""

from __future__ import annotations

import json
import random

import pytest

pytestmark = pytest.mark.slow

TEMPLATES = [
    "The shop sold {a} boxes of {b} eggs, that is [Calculator({a}*{b}) -> {p}] {p} eggs.",
    "A farmer planted {a} rows of {b} trees, that is [Calculator({a}*{b}) -> {p}] {p} trees.",
    (
        "The class has {a} tables with {b} pupils each, "
        "that is [Calculator({a}*{b}) -> {p}] {p} pupils."
    ),
]


def _texts(n: int, seed: int):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 19), rng.randint(2, 19)
        out.append(TEMPLATES[i % len(TEMPLATES)].format(a=a, b=b, p=a * b))
    return out


def test_finetuned_smollm2_calls_the_calculator(tmp_path):
    from toolformer.finetune import FinetuneConfig, finetune
    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.models import load_model
    from toolformer.tools.assembly import create_tools
    from toolformer.tools.executor import ToolExecutor

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts(24, seed=0)))
    out = tmp_path / "model"
    result = finetune(
        FinetuneConfig(
            model="smollm2-135m",
            data=str(data),
            output_dir=str(out),
            max_length=64,
            eval_fraction=0.0,
            progress=False,
            training_args=dict(
                learning_rate=3e-4,
                warmup_ratio=0.1,
                max_steps=12,
                per_device_train_batch_size=4,
                gradient_accumulation_steps=1,
                save_steps=0,
                logging_steps=4,
                seed=0,
            ),
        )
    )
    assert result.metrics["train_loss_last"] < result.metrics["train_loss"]

    model, tok = load_model(str(out))
    executor = ToolExecutor(create_tools(["Calculator"]))
    gen = ToolGenerator(model, tok, executor)
    prompts = [
        "The shop sold 13 boxes of 7 eggs, that is",
        "A farmer planted 6 rows of 17 trees, that is",
    ]
    outputs = gen.generate(prompts, GenerationConfig(max_new_tokens=32, max_calls=1))
    for prompt, o, want in zip(prompts, outputs, ("91", "102")):
        ran = [c for c in o.calls if c.tool == "Calculator" and c.result is not None]
        assert ran, f"no Calculator call ran for {prompt!r}: {o.text!r} {o.calls}"
        assert ran[0].result.strip() in (want, want + ".0", want + ".00"), (o.text, ran[0])
        assert f"-> {ran[0].result}]" in o.text, o.text  # the tool's result went into the text
        after = o.text.split("]", 1)[1]
        assert want in after, o.text  # and the model used it
