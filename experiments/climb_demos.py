"""Does Grow find more right multi-step calls at a new level with the demonstrations shown
again (``grow.demonstrations_on_climb``) than zero-shot? One Grow + Improve (answer filter) at
one ladder level from one policy, with and without the ``ladder`` demonstrations, on the same
problems and seeds: right samples, and samples whose call is compound (two or more operations).

    python experiments/climb_demos.py --policy smollm2-135m-math --level 3 --problems 60

Each condition is a run folder under --out (resumes when rerun).
"""

from __future__ import annotations

import click

from toolformer.selftrain.config import SelfTrainConfig
from toolformer.selftrain.loop import SelfTrainer, _read_jsonl, wilson_interval
from toolformer.selftrain.programs import count_operations


def grow_once(out: str, policy: str, level: int, problems: int, demos: str, threads: int) -> dict:
    """Grow and Improve of round 1 at ``level`` from ``policy``; their stats."""
    cfg = SelfTrainConfig.from_dict(
        {
            "output": out,
            "tools": ["Calculator"],
            "init_adapter": policy if "/" in policy else None,
            "threads": threads,
            "round0_docs": 0,
            "progress": False,
            "data": {"corpus": "ladder:4000", "max_problem_steps": None},
            "dev": {"size": 100, "max_problem_steps": None},
            "grow": {
                "start_level": level,
                "climb_at": None,
                "review_fraction": 0.0,
                "corpus_size": problems,
                "samples_per_prompt": 4,
                "demonstrations": demos or None,
            },
        }
    ).validate()
    trainer = SelfTrainer(cfg)
    rd0 = trainer.round_dir(0)
    if not rd0.done("corpus"):
        rd0.record("corpus", trainer._corpus(rd0))
    rd = trainer.round_dir(1)
    if not rd.done("grow"):
        rd.record("grow", trainer._grow(rd, 1, policy))
    if not rd.done("improve_0"):
        rd.record("improve_0", trainer._improve(rd, 1, 0, policy))
    grown = _read_jsonl(rd.path / "grow.jsonl")
    scores = [r["score"] for r in _read_jsonl(rd.path / "scores.jsonl")]
    compound = [bool(g["calls"]) and count_operations(g["calls"][0]["args"]) >= 2 for g in grown]
    right = [s is not None and s >= 0.5 for s in scores]
    return {
        "samples": len(grown),
        "right": sum(right),
        "compound": sum(compound),
        "compound_right": sum(c and r for c, r in zip(compound, right)),
        "problems_solved": len({g["doc_id"] for g, r in zip(grown, right) if r}),
    }


@click.command()
@click.option("--policy", default="smollm2-135m-math", show_default=True)
@click.option("--level", type=int, default=3, show_default=True)
@click.option("--problems", type=int, default=60, show_default=True)
@click.option("--out", default="runs/climb_demos", show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def main(policy: str, level: int, problems: int, out: str, threads: int) -> None:
    """Grow at LEVEL from POLICY, zero-shot and with the ladder demonstrations."""
    print(f"Grow at level {level} from {policy}: {problems} problems x 4 samples, temperature 0.7")
    print(
        "| prompts | right samples [95% CI] | problems with a right sample | compound calls "
        "| compound and right |"
    )
    print("|---|---|---|---|---|")
    for name, demos in (("zero-shot", ""), ("ladder demonstrations", "ladder")):
        s = grow_once(f"{out}/{demos or 'zero-shot'}", policy, level, problems, demos, threads)
        lo, hi = wilson_interval(s["right"], s["samples"])
        print(
            f"| {name} | {s['right']}/{s['samples']} ({100 * s['right'] / s['samples']:.1f}%, "
            f"{100 * lo:.1f}-{100 * hi:.1f}) | {s['problems_solved']}/{problems} | "
            f"{s['compound']}/{s['samples']} | {s['compound_right']} |"
        )


if __name__ == "__main__":
    main()
