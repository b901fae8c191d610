"""Ablations on one finished self-training round, measured on the run's own dev split:

1. more samples per problem in Grow: pass@k (the share of the round's problems with at least one
   right sample among k, the unbiased estimator of Chen et al. 2021) for k = 1..n from the n
   samples Grow drew, per level, i.e. what Improve could keep with fewer or (extrapolated) more;
2. preference pairs: DPO (TRL) from the round's SFT adapter on right-vs-wrong pairs of its own
   Grow samples (:mod:`toolformer.preference`), then the dev eval with the round's decoding;
   printed beside the round's own dev score (same split, same decoding).

    python experiments/round_ablation.py runs/climb/run --round 1 [--dpo-option max_steps=40]
"""

from __future__ import annotations

import json
from dataclasses import replace
from math import comb
from pathlib import Path

import click

from toolformer.preference import DPOSettings, DPOTrainConfig, dpo_train, preference_pairs
from toolformer.selftrain.candidates import Candidate
from toolformer.selftrain.config import SelfTrainConfig
from toolformer.selftrain.loop import wilson_interval


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn from n, c of them right, is right) (Chen et al. 2021)."""
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def _pass_table(rd: Path, levels: dict) -> None:
    grown = _jsonl(rd / "grow.jsonl")
    scores = [r["score"] for r in _jsonl(rd / "scores.jsonl")]
    tally: dict = {}
    for g, s in zip(grown, scores):
        if s is None:
            continue
        t = tally.setdefault(g["doc_id"], [0, 0])
        t[0] += s >= 0.5
        t[1] += 1
    n = max(t[1] for t in tally.values())
    print("| level | problems | " + " | ".join(f"pass@{k}" for k in range(1, n + 1)) + " |")
    print("|---|---|" + "---|" * n)
    for level in sorted({levels.get(d) for d in tally}, key=lambda x: (x is None, x)):
        docs = [t for d, t in tally.items() if levels.get(d) == level and t[1] == n]
        cells = [sum(pass_at_k(n, c, k) for c, _ in docs) / len(docs) for k in range(1, n + 1)]
        print(f"| {level} | {len(docs)} | " + " | ".join(f"{x:.3f}" for x in cells) + " |")


def _dev_eval(run: Path, cfg: SelfTrainConfig, model: str, out: Path) -> dict:
    from toolformer.eval.harness import EvalConfig, evaluate

    dev = (run / "round_0" / "corpus" / "dev.jsonl").resolve()
    key = f"jsonl:{dev}"
    res = evaluate(
        EvalConfig(
            model=model,
            tasks=key,
            tools=list(cfg.tools),
            tool_options=cfg.tool_options,
            output_dir=str(out),
            generation=cfg.dev.decoding(cfg.seed),
            dtype=cfg.dtype,
            threads=cfg.threads,
            progress=False,
            name=out.name,
            max_new_tokens=cfg.dev.max_new_tokens,
        )
    )
    return res["tasks"][key]


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--round", "k", type=int, default=1, show_default=True)
@click.option("--dpo-option", multiple=True, help="KEY=VALUE DPOSettings field (repeatable)")
@click.option("--threads", type=int, default=2, show_default=True)
def main(run: Path, k: int, dpo_option: tuple, threads: int) -> None:
    """Pass@k of round K's Grow, and DPO from its SFT adapter scored on the dev split."""
    recorded = json.loads((run / "run.json").read_text())
    cfg = replace(SelfTrainConfig.from_dict(recorded.get("config") or {}), threads=threads)
    rd = run / f"round_{k}"
    levels = {d["id"]: d.get("level") for d in _jsonl(run / "round_0" / "corpus" / "train.jsonl")}
    _pass_table(rd, levels)

    cands = [Candidate.from_dict(r) for r in _jsonl(rd / "grow.jsonl")]
    scores = [r["score"] for r in _jsonl(rd / "scores.jsonl")]
    settings = DPOSettings(
        **{
            key: type(getattr(DPOSettings(), key))(value)
            for key, _, value in (o.partition("=") for o in dpo_option)
        }
    )
    pairs = preference_pairs(cands, scores, settings.max_pairs_per_prompt)
    print(f"\npreference pairs from round {k}'s Grow: {len(pairs)}")
    state = json.loads((rd / "state.json").read_text())["stages"]
    sft = run / state["finetune_0"]["adapter"]
    out = run / f"ablation_round_{k}"
    dpo_dir = out / "dpo"
    if not (dpo_dir / "toolformer.json").is_file():
        metrics = dpo_train(
            DPOTrainConfig(
                pairs=pairs,
                model=cfg.model,
                adapter=str(sft),
                output_dir=str(dpo_dir),
                settings=settings,
                seed=cfg.seed + k,
                threads=threads,
                manifest={"tool_options": cfg.tool_options},
            )
        )
        print("DPO:", json.dumps(metrics))
    rows = [("round %d (SFT)" % k, state["eval"])]
    dpo = _dev_eval(run, cfg, str(dpo_dir), out / "dev_dpo")
    rows.append((f"round {k} + DPO", dpo))
    print("\n| model | dev score | 95% CI | n | call rate |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        lo, hi = wilson_interval(r["correct"], r["n"])
        print(
            f"| {name} | {r['score']:.3f} | {lo:.3f}-{hi:.3f} | {r['n']} | "
            f"{r['tool_call_rate']:.2f} |"
        )


if __name__ == "__main__":
    main()
