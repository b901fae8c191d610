"""Annotation speed: the textbook reference against the Annotator, on real text and a real model.

Both annotate the same real Wikipedia paragraphs with the same seeds and settings. The reference
(:class:`toolformer.data_aug.reference.ReferenceAnnotator`) does one forward pass per candidate
and per loss, with no prompt cache, no batching and no truncation; the Annotator uses the cached
prompt prefix, one pass for p("[") at every position, shared-prefix batched sampling and one
batched, truncated scoring call per document. The run fails (exit 1) unless both produce the
same candidates, the same kept calls and losses equal within --tolerance.

Prints documents/s of each, the per-stage seconds, the scoring stage's achieved GFLOP/s
(2 * parameters * tokens / seconds) as a share of this machine's measured fp32 matmul rate,
with --bf16 the agreement of bf16 keep/drop decisions with fp32 (the fp32 candidates scored
again in bf16) and the bf16/fp32 scoring speed ratio, and on the
last line ``speed-up: <ratio>x``.

    python benchmarks/augment_bench.py --docs 8 --tools Calculator,Calendar [--bf16]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

DATE = _dt.date(2016, 5, 1)  # the gensim Wikipedia sample's dump date: the Calendar's answer
PASSAGES = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "wiki_corpus" / "passages.jsonl"
)


def paragraphs(min_words: int, max_words: int):
    """Real Wikipedia paragraphs: gensim's sample (cleaned), else the shared passages file."""
    try:
        from toolformer.retrieval.corpus import iter_wikipedia_articles

        for art in iter_wikipedia_articles():
            for k, para in enumerate(p for p in art["text"].split("\n\n") if p.strip()):
                para = " ".join(para.split())
                if min_words <= len(para.split()) <= max_words:
                    yield f"wiki:{art['title']}#{k}", para
        return
    except Exception as exc:  # noqa: BLE001 - fall back to the shared passages
        print(f"(gensim Wikipedia sample unavailable: {exc}; using {PASSAGES})")
    with open(PASSAGES, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("source", "").startswith(("gre-", "trex-")):
                continue
            if min_words <= len(rec["text"].split()) <= max_words:
                yield rec["id"], rec["text"]


def pick_documents(n: int, min_words: int, max_words: int) -> List[Any]:
    """Half the documents pass the Calculator prefilter (numbers with an operation), half do not."""
    from toolformer.data_aug.heuristics import PrefilterInput, calculator_prefilter
    from toolformer.data_aug.types import Document

    numeric, other = [], []
    for doc_id, text in paragraphs(min_words, max_words):
        keep = calculator_prefilter(PrefilterInput(text, doc_id=doc_id)).keep
        (numeric if keep else other).append(Document(doc_id, text, date=DATE))
        if len(numeric) >= (n + 1) // 2 and len(other) >= n:
            break
    docs = numeric[: (n + 1) // 2]
    return docs + other[: n - len(docs)]


def matmul_rate(
    dtype: Any, size: Tuple[int, int, int] = (512, 576, 1536), repeats: int = 20
) -> float:
    """Measured GFLOP/s of torch.mm at a size like the model's MLP on a few hundred tokens."""
    import torch

    a, b = torch.randn(size[0], size[1], dtype=dtype), torch.randn(size[1], size[2], dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size[0] * size[1] * size[2] * repeats / best / 1e9


def run(annotator: Any, docs: List[Any]) -> Tuple[List[Any], float]:
    t0 = time.perf_counter()
    results = [annotator.annotate(d) for d in docs]
    return results, time.perf_counter() - t0


def key(c: Any) -> Tuple:
    return (c.tool, c.position, c.args, c.result, c.offset)


def compare(ref: List[Any], ours: List[Any], tol: float) -> Tuple[List[str], List[str]]:
    """Differences between two runs: (problems, notes).

    Problems (the check fails): scored candidates, kept calls, losses or texts differ. Notes:
    sampling counters differ. A batched forward pass and a one-row pass give logits equal to
    ~1e-6, and where a sampled row has wandered into junk (a nearly flat distribution) that can
    flip one inverse-CDF draw, so a row that never becomes a valid call may close or stay open
    differently; the calls that reach scoring must still be identical.
    """
    problems, notes = [], []
    for r, o in zip(ref, ours):
        if o.error:
            problems.append(f"{o.doc_id}: annotator error {o.error}")
            continue
        rc, oc = {key(c): c for c in r.candidates}, {key(c): c for c in o.candidates}
        if set(rc) != set(oc):
            problems.append(
                f"{r.doc_id}: candidates differ: only reference {sorted(set(rc) - set(oc))}, "
                f"only annotator {sorted(set(oc) - set(rc))}"
            )
        for k in set(rc) & set(oc):
            for f in ("loss_plus", "loss_minus", "loss_empty", "loss_no_result"):
                d = abs(getattr(rc[k], f) - getattr(oc[k], f))
                if d > tol:
                    problems.append(f"{r.doc_id}: {k} {f} differs by {d:.2e}")
        if [key(c) for c in r.calls] != [key(c) for c in o.calls] or r.text != o.text:
            problems.append(
                f"{r.doc_id}: kept calls differ: "
                f"{[key(c) for c in r.calls]} vs {[key(c) for c in o.calls]}"
            )
        if dict(r.stats) != dict(o.stats):
            diff = {
                k: (r.stats.get(k, 0), o.stats.get(k, 0))
                for k in set(r.stats) | set(o.stats)
                if "/" not in k and r.stats.get(k, 0) != o.stats.get(k, 0)
            }
            notes.append(f"{r.doc_id}: sampling counters differ (reference, annotator): {diff}")
    return problems, notes


def rescore(
    ann: Any, docs: List[Any], results: List[Any]
) -> List[Tuple[float, float, float, float, bool]]:
    """L+, L(empty), L(e(c, empty)), L- and keep of every candidate of ``results``, scored again
    by ``ann`` (e.g. in bf16): the same calls, so keep/drop decisions compare one to one."""
    from toolformer.data_aug.prefix_cache import chunk_document, encode
    from toolformer.data_aug.scoring import keep_decision
    from toolformer.syntax import APICall, format_call

    out = []
    for doc, res in zip(docs, results):
        chunks = chunk_document(ann.tokenizer, doc.text, ann.config.max_length)
        for c in res.candidates:
            chunk = next(
                ch for ch in chunks if ch.token_start <= c.position < ch.token_start + len(ch)
            )
            i = c.position - chunk.token_start
            call = APICall(c.tool, c.args, c.result)
            zs = [format_call(call), "", format_call(call.with_result(""))]
            plus, empty, none = (
                row[i]
                for row in ann.scorer.losses(
                    chunk.ids, [encode(ann.tokenizer, z) if z else [] for z in zs], [[i]] * 3
                )
            )
            keep, minus = keep_decision(plus, empty, none, ann.settings[c.tool].tau_f)
            out.append((plus, empty, none, minus, keep))
    return out


def stage_seconds(results: List[Any]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for r in results:
        for k, v in r.seconds.items():
            out[k] = out.get(k, 0.0) + v
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=8, help="number of real paragraphs")
    ap.add_argument("--tools", default="Calculator,Calendar", help="comma-separated tools")
    ap.add_argument(
        "--bf16", action="store_true", help="also run the Annotator in bf16 and compare"
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--k", type=int, default=None, help="override k for every tool (default: Appendix A)"
    )
    ap.add_argument(
        "--m", type=int, default=None, help="override m for every tool (default: Appendix A)"
    )
    ap.add_argument("--min-words", type=int, default=30)
    ap.add_argument("--max-words", type=int, default=80)
    ap.add_argument("--max-call-tokens", type=int, default=30)
    ap.add_argument(
        "--min-position",
        type=int,
        default=0,
        help="first eligible position (default 0: the paper, and it lets the short "
        "benchmark paragraphs keep calls, so the check covers kept calls too)",
    )
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from toolformer.data_aug.annotator import Annotator
    from toolformer.data_aug.reference import ReferenceAnnotator
    from toolformer.data_aug.types import AnnotatorConfig
    from toolformer.models import load_model
    from toolformer.tools import ToolExecutor, create_tools

    docs = pick_documents(args.docs, args.min_words, args.max_words)
    tools = create_tools(args.tools)
    model, tok = load_model(args.model, dtype="fp32")
    params = sum(p.numel() for p in model.parameters())
    cfg = AnnotatorConfig(
        k=args.k,
        m=args.m,
        seed=args.seed,
        max_call_tokens=args.max_call_tokens,
        min_position=args.min_position,
        record_candidates=True,
    )
    print(
        f"{len(docs)} documents ({sum(len(tok(' ' + d.text)['input_ids']) for d in docs)} tokens), "
        f"tools {list(tools)}, model {args.model} ({params / 1e6:.0f}M parameters), "
        f"{torch.get_num_threads()} threads"
    )
    for name, tool in tools.items():
        print(f"  {name}: {cfg.settings_for(tool)}")
    mm32 = matmul_rate(torch.float32)
    print(f"machine: torch.mm fp32 {mm32:.1f} GFLOP/s (512x576 @ 576x1536)")

    ref = ReferenceAnnotator(model, tok, tools, cfg, executor=ToolExecutor(tools))
    ann = Annotator(model, tok, tools, cfg, executor=ToolExecutor(tools))
    t0 = time.perf_counter()
    ann.warmup()
    warm_s = time.perf_counter() - t0
    # interleaved document by document, so that load from other processes hits both alike
    ref_results, ours, ref_s, ours_s = [], [], 0.0, 0.0
    for d in docs:
        (r,), dt = run(ref, [d])
        ref_results.append(r)
        ref_s += dt
        (o,), dt2 = run(ann, [d])
        ours.append(o)
        ours_s += dt2
        print(
            f"  {d.id}: reference {dt:.1f} s, annotator {dt2:.1f} s, "
            f"{len(o.candidates)} candidates, {len(o.calls)} kept",
            flush=True,
        )
    print(
        f"reference: {ref_s:.1f} s, {len(docs) / ref_s:.4f} "
        f"docs/s, {ref.forward_tokens} tokens through the model"
    )
    print(
        f"annotator: {ours_s:.1f} s, {len(docs) / ours_s:.4f} docs/s "
        f"(+ {warm_s:.1f} s once for the prompt-prefix caches)"
    )
    print("  stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stage_seconds(ours).items()))
    st = ann.scorer.stats
    if st.seconds > 0:
        gflops = 2 * params * st.tokens / st.seconds / 1e9
        print(
            f"  scoring: {st.rows} rows in {st.forwards} passes, "
            f"{st.tokens} tokens ({st.padded_tokens} with padding), "
            f"{gflops:.1f} GFLOP/s = {100 * gflops / mm32:.0f}% of torch.mm"
        )
    for r in ours:
        for c in r.calls:
            print(
                f"  kept {r.doc_id}: [{c.tool}({c.args}) -> {c.result}] at token {c.position}, "
                f"L+ {c.loss_plus:.3f} L- {c.loss_minus:.3f}"
            )
    counters: Dict[str, int] = {}
    for r in ours:
        for k, v in r.stats.items():
            if "/" not in k:
                counters[k] = counters.get(k, 0) + v
    print(f"  counters: {counters}")

    problems, notes = compare(ref_results, ours, args.tolerance)
    for note in notes:
        print("note: " + note)
    n_cand = sum(len(r.candidates) for r in ours)
    if problems:
        print("MISMATCH between the reference and the annotator:")
        for p in problems:
            print("  " + p)
    else:
        print(
            f"agreement: {n_cand} scored candidates, {sum(len(r.calls) for r in ours)} kept calls: "
            f"identical, losses within {args.tolerance:g}"
        )

    if args.bf16:
        # bf16 scores the fp32 run's candidates again (the same calls, so keep/drop decisions
        # compare one to one); fp32 re-scores them too, so the two scoring times compare directly
        mb16 = matmul_rate(torch.bfloat16)
        print(f"machine: torch.mm bf16 {mb16:.1f} GFLOP/s")
        model16, _ = load_model(args.model, dtype="bf16")
        ann16 = Annotator(model16, tok, tools, cfg, executor=ToolExecutor(tools))
        tau = {n: cfg.settings_for(t).tau_f for n, t in tools.items()}
        t0 = time.perf_counter()
        again32 = rescore(ann, docs, ours)
        s32 = time.perf_counter() - t0
        t0 = time.perf_counter()
        again16 = rescore(ann16, docs, ours)
        s16 = time.perf_counter() - t0
        flat = [(c, c.score >= tau[c.tool]) for r in ours for c in r.candidates]
        agree = sum(keep32 == a[4] for (c, keep32), a in zip(flat, again16))
        dmax = max([abs(a[0] - b[0]) for a, b in zip(again32, again16)] + [0.0])
        dscore = max([abs((a[3] - a[0]) - (b[3] - b[0])) for a, b in zip(again32, again16)] + [0.0])
        print(
            f"bf16 re-scoring of the {len(flat)} fp32 candidates: "
            f"keep/drop identical on {agree}/{len(flat)}; "
            f"max |L+ difference| {dmax:.3f}, max |score difference| {dscore:.3f}"
        )
        print(
            f"bf16 scoring: {s16:.1f} s vs fp32 {s32:.1f} s for the same candidates "
            f"({s32 / s16:.2f}x the fp32 speed)"
        )
    speedup = ref_s / ours_s
    print(f"speed-up: {speedup:.2f}x")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
