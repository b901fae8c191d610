"""Tool-calling generation speed against plain ``model.generate`` (real SmolLM2-135M, fp32, CPU).

For each output length, the same prompts (arithmetic word problems behind a few-shot Calculator
prompt) are continued by exactly the same number of tokens with

  (a) plain   ``model.generate`` (greedy, ``min_new_tokens`` = ``max_new_tokens``),
  (b) ours    tools disabled ("Toolformer (disabled)"),
  (c) ours    with calls (``call_top_k`` = vocabulary size: a call is forced at the first step
              where one is allowed, so every output holds ``--max-calls`` calls),
  (d) the re-encoding reference (same calls; re-encodes the whole sequence after each call).

Times are the best of ``--repeats`` runs; the tools' own seconds are subtracted from (c) and (d).
Each ratio to (a) is printed as ``NAME: <number>x``, the with-calls ones last.

    python benchmarks/generate_bench.py                     # lengths 32 and 512
    python benchmarks/generate_bench.py --lengths 64 --prompts 2 --repeats 1
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Dict, List, Tuple

FEW_SHOT = (
    "Your task is to add calls to a Calculator API to a piece of text. You can call the API by "
    'writing "[Calculator(expression)]" where "expression" is the expression to be computed.\n'
    "Input: The number in the next term is 18 + 12 x 3 = 54.\n"
    "Output: The number in the next term is 18 + 12 x 3 = [Calculator(18 + 12 * 3) -> 54] 54.\n"
    "Input: Out of 1400 participants, 400 passed the test.\n"
    "Output: Out of 1400 participants, 400 "
    "[Calculator(400 / 1400) -> 0.29] or 29% passed the test.\n"
    "Input: {q}\nOutput:"
)
QUESTIONS = [
    "A pack holds 25 pencils, so 12 packs hold 300 pencils.",
    "Sam had 48 apples and gave 17 to his friends, so he has 31 apples left.",
    "The train covers 120 miles in 3 hours, an average of 40 miles per hour.",
    "Each of the 7 boxes weighs 14 kg, a total of 98 kg.",
]


def _calculator():
    """The project's Calculator; a small + - * / stand-in while that module is not there."""
    from toolformer.tools.assembly import create_tool
    from toolformer.tools.base import Tool, ToolError

    try:
        return create_tool("Calculator")
    except ImportError:
        import ast
        import operator

        print("note: toolformer.tools.calculator is missing; using a stand-in", file=sys.stderr)
        ops = {
            ast.Add: operator.add,
            ast.Sub: operator.sub,
            ast.Mult: operator.mul,
            ast.Div: operator.truediv,
        }

        class Calculator(Tool):
            name = "Calculator"
            description = "+ - * /"

            def run(self, args, context=None):
                def ev(n):
                    if isinstance(n, ast.BinOp) and type(n.op) in ops:
                        return ops[type(n.op)](ev(n.left), ev(n.right))
                    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
                        return n.value
                    raise ToolError("not arithmetic")

                return str(round(ev(ast.parse(self.parse_args(args), mode="eval").body), 2))

        return Calculator()


def _prompt(tok, question: str, context_tokens: int) -> str:
    """The few-shot prompt for ``question``, its examples repeated up to ``context_tokens``."""
    head, _, tail = FEW_SHOT.partition("Input: {q}")
    intro, _, examples = head.partition("Input:")
    examples = "Input:" + examples
    body = examples
    while context_tokens and len(tok(intro + body + examples).input_ids) < context_tokens:
        body += examples
    return (intro + body + "Input: {q}" + tail).format(q=question)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--lengths", default="32,512", help="output lengths in tokens, comma-separated"
    )
    parser.add_argument(
        "--prompts", type=int, default=4, help="how many prompts (of %d)" % len(QUESTIONS)
    )
    parser.add_argument("--long-prompts", type=int, default=2, help="prompts for lengths >= 256")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (short lengths)")
    parser.add_argument(
        "--long-repeats", type=int, default=2, help="best of N runs for lengths >= 256"
    )
    parser.add_argument("--max-calls", type=int, default=1, help="calls per output in (c) and (d)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--context-tokens",
        type=int,
        default=0,
        help="lengthen each prompt to about this many tokens with more few-shot examples "
        "(re-encoding costs grow with the context)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)

    import torch

    from toolformer.generation import GenerationConfig, ToolGenerator, generate_reencode
    from toolformer.models import load_model
    from toolformer.tools.executor import ToolExecutor

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, dtype="fp32")
    executor = ToolExecutor([_calculator()])
    gen = ToolGenerator(model, tok, executor)
    lengths = [int(x) for x in args.lengths.split(",")]
    print(
        f"model {args.model} fp32, {torch.get_num_threads()} threads, batch 1, "
        f"max_calls {args.max_calls}, {args.clock} clock, best of repeats, prompt "
        f"{len(tok(_prompt(tok, QUESTIONS[0], args.context_tokens)).input_ids)} tokens",
        file=sys.stderr,
    )

    ratios: Dict[str, float] = {}
    call_ratios: Dict[str, float] = {}
    for n in lengths:
        long = n >= 256
        prompts = [
            _prompt(tok, q, args.context_tokens)
            for q in QUESTIONS[: args.long_prompts if long else args.prompts]
        ]
        repeats = args.long_repeats if long else args.repeats
        enc = [tok(p, return_tensors="pt") for p in prompts]

        def timed(
            work: Callable[[], list], tool_seconds: Callable[[list], float]
        ) -> Callable[[], Tuple]:
            """(wall, cpu, outputs) of one run, the tools' own seconds taken off both."""

            def run() -> Tuple[float, float, list]:
                wall, cpu = time.perf_counter(), time.process_time()
                with torch.inference_mode():
                    outs = work()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                tools = tool_seconds(outs)
                return wall - tools, cpu - tools, outs

            return run

        def plain() -> list:
            return [
                model.generate(
                    **e,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
                for e in enc
            ]

        def tool_time(outs: list) -> float:
            return sum(o.tool_seconds for o in outs)

        disabled = GenerationConfig(max_new_tokens=n, min_new_tokens=n, tools_enabled=False)
        calls = GenerationConfig(
            max_new_tokens=n, min_new_tokens=n, call_top_k=len(tok), max_calls=args.max_calls
        )
        # warm-up (first-call allocations, tokenizer caches)
        gen.generate(prompts[0], GenerationConfig(max_new_tokens=4))
        with torch.inference_mode():
            model.generate(**enc[0], max_new_tokens=4, pad_token_id=tok.pad_token_id)

        # methods take turns within each repeat so that load drifts on a shared machine hit all
        methods = [
            ("plain", timed(plain, lambda outs: 0.0)),
            ("disabled", timed(lambda: [gen.generate(p, disabled)[0] for p in prompts], tool_time)),
            ("calls", timed(lambda: [gen.generate(p, calls)[0] for p in prompts], tool_time)),
            (
                "reencode",
                timed(lambda: generate_reencode(model, tok, prompts, executor, calls), tool_time),
            ),
        ]
        pick = 1 if args.clock == "cpu" else 0
        results: Dict[str, Tuple[float, object]] = {}
        walls: Dict[str, float] = {}
        for _ in range(repeats):
            for name, fn in methods:
                wall, cpu, outs = fn()
                seconds = (wall, cpu)[pick]
                walls[name] = min(walls.get(name, wall), wall)
                if name not in results or seconds < results[name][0]:
                    results[name] = (seconds, outs)
        t_plain = results["plain"][0]
        for name in ("disabled", "calls", "reencode"):
            outs = results[name][1]
            assert all(o.num_tokens == n for o in outs), f"{name}: not {n} tokens each"
        made = [len(o.calls) for o in results["calls"][1]]
        ok = sum(c.ok for o in results["calls"][1] for c in o.calls)
        same = all(a.text == b.text for a, b in zip(results["calls"][1], results["reencode"][1]))
        steps = n * len(prompts)
        print(
            f"[{n} tokens x {len(prompts)} prompts, {args.clock} clock; best wall: "
            + ", ".join(f"{k} {v:.2f}s" for k, v in walls.items())
            + "]",
            file=sys.stderr,
        )
        print(
            f"[{n} tokens x {len(prompts)} prompts] plain {t_plain:.2f}s "
            f"({1000 * t_plain / steps:.1f} ms/token), disabled {results['disabled'][0]:.2f}s, "
            f"calls {results['calls'][0]:.2f}s, reencode {results['reencode'][0]:.2f}s; calls "
            f"per output {made} ({ok} with a result); ours == reencode: {same}",
            file=sys.stderr,
        )
        example = results["calls"][1][0]
        print(f"  e.g. {example.text[:160]!r}", file=sys.stderr)
        ratios[f"tools_disabled_{n}"] = results["disabled"][0] / t_plain
        ratios[f"reencode_{n}"] = results["reencode"][0] / t_plain
        ratios[f"ours_vs_reencode_{n}"] = results["calls"][0] / results["reencode"][0]
        call_ratios[f"with_calls_{n}"] = results["calls"][0] / t_plain
    for name, value in list(ratios.items()) + list(call_ratios.items()):
        print(f"{name}: {value:.3f}x")


if __name__ == "__main__":
    main()
