"""Constrained calls (arguments held to the tool's grammar) against free ones, side by side in
one run on the same documents, model and seeds.

Annotation: the same real Wikipedia paragraphs (those that pass the Calculator prefilter) are
annotated with the Calculator at the same k and m (paper, Appendix A: k=20, m=10) and seeds:

  unconstrained   candidate sampling as before (stopped early once it cannot be a call),
  constrained     under the Calculator's argument grammar (the default),
  numbers         the grammar with ``numbers_from_text`` (only numbers written before the call).

For each: candidates sampled, the share that are valid calls (closed, a call of the tool, and
accepted by the tool's own check: an expression with an operation), documents/s, valid
candidates/s (the trade-off: constrained rows are all valid, and each valid call is scored),
calls kept per 100 documents, and the work of scoring (rows, tokens, seconds per candidate).
Generation: the same prompts continued by the same number of tokens with plain ``model.generate``
and with the ToolGenerator making one call per output under the grammar (and without it); times
are the best of ``--repeats``, the tool's own seconds taken off.

Ratios are printed as ``NAME: <number>x``; the last line is ``constrained_generation: <ratio>x``
(constrained generation time / plain ``generate`` time).

    python benchmarks/constrained_bench.py --docs 6
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent


def _sibling(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def numeric_documents(n: int) -> List[Any]:
    """``n`` real paragraphs that pass the Calculator prefilter (as augment_bench picks them)."""
    from toolformer.data_aug.heuristics import PrefilterInput, calculator_prefilter
    from toolformer.data_aug.types import Document

    bench = _sibling("augment_bench")
    docs = []
    for doc_id, text in bench.paragraphs(40, 120):
        if calculator_prefilter(PrefilterInput(text, doc_id=doc_id)).keep:
            docs.append(Document(doc_id, text, date=bench.DATE))
            if len(docs) >= n:
                break
    return docs


def annotate(
    model: Any,
    tok: Any,
    docs: List[Any],
    constrained: bool,
    numbers: bool,
    k: int,
    m: int,
    tau_f: float = None,
) -> Dict[str, Any]:
    from toolformer.data_aug.annotator import Annotator
    from toolformer.data_aug.types import AnnotatorConfig
    from toolformer.tools.assembly import create_tools

    tools = create_tools(["Calculator"], {"Calculator": {"numbers_from_text": numbers}})
    settings = {"k": k, "m": m, **({} if tau_f is None else {"tau_f": tau_f})}
    cfg = AnnotatorConfig(constrained=constrained, seed=0, settings={"Calculator": settings})
    with Annotator(model, tok, tools, cfg) as ann:
        ann.warmup()
        t0 = time.perf_counter()
        results = [ann.annotate(d) for d in docs]
        seconds = time.perf_counter() - t0
        work = ann.scorer.stats
    stats: Dict[str, int] = {}
    stages: Dict[str, float] = {}
    for r in results:
        for key, value in r.seconds.items():
            stages[key] = stages.get(key, 0.0) + value
        if r.error:
            raise SystemExit(f"{r.doc_id}: {r.error}")
        for key, value in r.stats.items():
            if "/" not in key:
                stats[key] = stats.get(key, 0) + int(value)
    sampled = stats.get("candidates_sampled", 0)
    valid = (
        stats.get("candidates_closed", 0)
        - stats.get("candidates_malformed", 0)
        - stats.get("candidates_invalid", 0)
    )
    kept = sum(len(r.calls) for r in results)
    return {
        "seconds": seconds,
        "sampled": sampled,
        "valid": valid,
        "kept": kept,
        "stats": stats,
        "stages": stages,
        "score_rows": work.rows,
        "score_tokens": work.tokens,
        "calls": [(r.doc_id, c.args, c.result) for r in results for c in r.calls],
    }


def generation(model: Any, tok: Any, n: int, prompts: int, repeats: int) -> Dict[str, float]:
    import torch

    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.tools.assembly import create_tools
    from toolformer.tools.executor import ToolExecutor

    bench = _sibling("generate_bench")
    texts = [bench._prompt(tok, q, 0) for q in bench.QUESTIONS[:prompts]]
    enc = [tok(p, return_tensors="pt") for p in texts]
    gen = ToolGenerator(model, tok, ToolExecutor(list(create_tools(["Calculator"]).values())))
    # a call is forced at the first word start (call_top_k = vocabulary size)
    base = dict(max_new_tokens=n, min_new_tokens=n, call_top_k=len(tok), max_calls=1)
    configs = {
        "constrained": GenerationConfig(constrained=True, **base),
        "unconstrained": GenerationConfig(constrained=False, **base),
    }

    def plain() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for e in enc:
                model.generate(
                    **e,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
        return time.perf_counter() - t0

    outputs: Dict[str, list] = {}

    def ours(name: str) -> float:
        t0 = time.perf_counter()
        outs = [gen.generate(p, configs[name])[0] for p in texts]
        outputs[name] = outs
        return time.perf_counter() - t0 - sum(o.tool_seconds for o in outs)

    gen.generate(texts[0], GenerationConfig(max_new_tokens=4))  # warm-up, and the token index
    gen.generate(texts[0], configs["constrained"])
    best = {"plain": float("inf"), "constrained": float("inf"), "unconstrained": float("inf")}
    for _ in range(repeats):  # the methods take turns: load drifts hit all of them
        best["plain"] = min(best["plain"], plain())
        for name in ("constrained", "unconstrained"):
            best[name] = min(best[name], ours(name))
    for name, outs in outputs.items():
        assert all(o.num_tokens == n for o in outs), f"{name}: not {n} tokens each"
        calls = [c for o in outs for c in o.calls]
        ok = sum(c.ok for c in calls)
        print(
            f"  generation {name}: {len(calls)} calls, {ok} with a result, e.g. "
            f"{outs[0].text[:100]!r}",
            file=sys.stderr,
        )
    return best


LLGUIDANCE_CALL = (
    r"(Calculator\( *-?[0-9]+(\.[0-9]+)?( *[-+*/] *-?[0-9]+(\.[0-9]+)?)+ *\)|Calendar\(\)"
    r"|WikiSearch\([^\[\]\\\n()>-]{1,120}\)) ?\]"
)


def mask_overhead(tok: Any, samples: int) -> Dict[str, float]:
    """CPU ms per masked step (mask, random logits, masking) for calls of Calculator, Calendar
    and a WikiSearch-like tool: our token trie against llguidance (a regex of the same calls)."""
    import torch

    from toolformer.constrain import CallConstraint, apply_masks, token_index
    from toolformer.grammar import call_grammar
    from toolformer.tools.assembly import create_tools

    class Search:
        name, description = "WikiSearch", "search"

        def argument_grammar(self, before: str = "") -> Any:
            from toolformer.grammar import TextArgs

            return TextArgs(max_bytes=120)

    grammar = call_grammar(
        list(create_tools(["Calculator", "Calendar"]).values()) + [Search()], "]"
    )
    index = token_index(tok)
    out: Dict[str, float] = {}
    gen = torch.Generator().manual_seed(0)
    cpu, steps = 0.0, 0
    for _ in range(samples):
        con = CallConstraint(index, grammar, 40)
        while not con.done:
            t0 = time.process_time()
            logits = torch.randn((1, index.vocab_size), generator=gen) * 3
            apply_masks(logits, [con.allowed()])
            cpu += time.process_time() - t0
            t = int(torch.multinomial(logits.softmax(-1), 1, generator=gen)[0])
            con.push(t)
            steps += 1
    out["ours"] = 1000 * cpu / steps
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch as lt
    except ImportError:
        print("  (llguidance not installed: pip install llguidance to compare)", file=sys.stderr)
        return out
    lltok = llguidance.hf.from_tokenizer(tok)
    ll_grammar = llguidance.grammar_from("regex", LLGUIDANCE_CALL)
    bitmask = lt.allocate_token_bitmask(1, lltok.vocab_size)
    cpu, steps = 0.0, 0
    for _ in range(samples):
        matcher = llguidance.LLMatcher(lltok, ll_grammar)
        while not matcher.is_stopped():
            t0 = time.process_time()
            lt.fill_next_token_bitmask(matcher, bitmask, 0)
            logits = torch.randn((1, lltok.vocab_size), generator=gen) * 3
            lt.apply_token_bitmask_inplace(logits, bitmask)
            cpu += time.process_time() - t0
            t = int(torch.multinomial(logits.softmax(-1), 1, generator=gen)[0])
            if t == lltok.eos_token:
                break
            matcher.consume_token(t)
            steps += 1
    out["llguidance"] = 1000 * cpu / max(1, steps)
    return out


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default="smollm2-135m",
        help="model alias, folder or HF id (default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=6,
        help="Wikipedia paragraphs that pass the Calculator prefilter (default: %(default)s)",
    )
    parser.add_argument(
        "--k", type=int, default=20, help="positions per document (paper: %(default)s)"
    )
    parser.add_argument(
        "--m", type=int, default=10, help="samples per position (paper: %(default)s)"
    )
    parser.add_argument(
        "--tau-f",
        type=float,
        default=None,
        help="keep threshold (default: the paper's 0.5 for the Calculator); lower it to "
        "compare calls kept on documents where none pass 0.5",
    )
    parser.add_argument(
        "--gen-tokens",
        type=int,
        default=64,
        help="generation part: tokens per output (default: %(default)s)",
    )
    parser.add_argument(
        "--gen-prompts", type=int, default=4, help="generation part: prompts (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="generation part: best of this many runs (default: %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)"
    )
    parser.add_argument(
        "--skip-annotation", action="store_true", help="only the mask-overhead and generation parts"
    )
    parser.add_argument(
        "--mask-samples", type=int, default=20, help="calls drawn for the mask-overhead part"
    )
    args = parser.parse_args(argv)

    import torch

    from toolformer.models import load_model

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, dtype="fp32")
    ratios: Dict[str, float] = {}
    masks = mask_overhead(tok, args.mask_samples)
    print(
        "mask overhead, CPU ms per step (mask, logits, masking), random logits: "
        + ", ".join(f"{k} {v:.3f}" for k, v in masks.items()),
        file=sys.stderr,
    )
    if "llguidance" in masks:
        ratios["llguidance_vs_ours_per_step"] = masks["llguidance"] / masks["ours"]
    if not args.skip_annotation:
        docs = numeric_documents(args.docs)
        print(
            f"annotation: {len(docs)} documents, Calculator k={args.k} m={args.m}"
            f"{'' if args.tau_f is None else f' tau_f={args.tau_f}'}, seed 0, "
            f"{torch.get_num_threads()} threads",
            file=sys.stderr,
        )
        runs = {}
        for name, constrained, numbers in (
            ("unconstrained", False, False),
            ("constrained", True, False),
            ("numbers", True, True),
        ):
            r = runs[name] = annotate(
                model, tok, docs, constrained, numbers, args.k, args.m, args.tau_f
            )
            s = r["stats"]
            print(
                f"  {name:13s} {r['seconds']:7.1f}s  {len(docs) / r['seconds']:.4f} docs/s  "
                f"sampled {r['sampled']}  valid {r['valid']} "
                f"({100 * r['valid'] / max(1, r['sampled']):.1f}%)  closed "
                f"{s.get('candidates_closed', 0)}  abandoned {s.get('candidates_abandoned', 0)}  "
                f"malformed {s.get('candidates_malformed', 0)}  invalid "
                f"{s.get('candidates_invalid', 0)}  executed {s.get('candidates_executed', 0)}  "
                f"kept {r['kept']} ({100 * r['kept'] / len(docs):.0f} per 100 docs)  "
                + "stages "
                + " ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items() if v >= 0.05),
                file=sys.stderr,
            )
            scored = s.get("candidates_executed", 0) - s.get("tool_failures", 0)
            print(
                f"  {'':13s} {r['valid'] / r['seconds']:.2f} valid candidates/s  "
                f"{r['seconds'] / max(1, r['valid']):.3f} s per valid candidate  "
                f"{r['stages'].get('scoring', 0.0) / max(1, scored):.3f} scoring "
                f"s per scored candidate ({scored})  scoring {r['score_rows']} "
                f"rows, {r['score_tokens']} tokens",
                file=sys.stderr,
            )
            for doc_id, a, res in r["calls"]:
                print(f"    kept {doc_id}: Calculator({a}) -> {res}", file=sys.stderr)
        base = runs["unconstrained"]
        for name in ("unconstrained", "constrained", "numbers"):
            r = runs[name]
            ratios[f"valid_share_{name}"] = r["valid"] / max(1, r["sampled"])
        for name in ("constrained", "numbers"):
            r = runs[name]
            ratios[f"docs_per_s_{name}_vs_unconstrained"] = base["seconds"] / r["seconds"]
            ratios[f"valid_per_s_{name}_vs_unconstrained"] = (
                (r["valid"] / r["seconds"]) / (base["valid"] / base["seconds"])
                if base["valid"]
                else float("inf")
            )
            # 0 kept by both: the same (1x), not "fewer"
            ratios[f"kept_{name}_vs_unconstrained"] = (
                r["kept"] / base["kept"]
                if base["kept"]
                else (1.0 if r["kept"] == 0 else float("inf"))
            )
    print(
        f"generation: {args.gen_prompts} prompts x {args.gen_tokens} "
        f"tokens, greedy, one call per output, best of {args.repeats}",
        file=sys.stderr,
    )
    best = generation(model, tok, args.gen_tokens, args.gen_prompts, args.repeats)
    print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()), file=sys.stderr)
    ratios["unconstrained_generation"] = best["unconstrained"] / best["plain"]
    ratios["constrained_vs_unconstrained_generation"] = best["constrained"] / best["unconstrained"]
    ratios["constrained_generation"] = best["constrained"] / best["plain"]
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}x")


if __name__ == "__main__":
    main()
