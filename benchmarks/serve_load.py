"""Load test of ``toolformer serve`` on loopback: concurrent clients, no request gets another's
output, latency and throughput printed.

A tiny random Llama over SmolLM2's tokenizer is served (uvicorn in a thread, 127.0.0.1, a free
port) with the real Calculator; ``call_top_k`` = the vocabulary size makes every output open a
call at its first step, so every request runs a tool on the server. Each request's prompt is
unique (its number and random words), decoding is greedy, and requests mix chat and completions,
streamed and not. First every request is sent alone, one after another (the reference); then all
of them again from ``--clients`` concurrent clients. Every concurrent answer (text and calls) must
equal its own reference: a mixed-up batch row would give another prompt's text.

    python benchmarks/serve_load.py                    # 32 clients, 200 requests
    python benchmarks/serve_load.py --clients 8 --requests 40 --deadline 120
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from typing import Any, Dict, List, Tuple

WORDS = (
    "apple river stone cloud lamp tiger mint jazz ocean pencil violet maple harbor "
    "copper falcon meadow lantern cedar"
).split()


def build_app(max_tokens: int, batch_wait_ms: float, max_batch: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.models import load_tokenizer
    from toolformer.serve import create_app
    from toolformer.tools.calculator import Calculator
    from toolformer.tools.executor import ToolExecutor

    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    gen = ToolGenerator(
        model,
        tok,
        ToolExecutor([Calculator()], timeout=5.0),
        GenerationConfig(max_new_tokens=max_tokens, call_top_k=len(tok)),
    )
    return create_app(gen, "tiny", batch_wait_ms=batch_wait_ms, max_batch=max_batch)


def requests(n: int, seed: int = 0) -> List[Dict[str, Any]]:
    """``n`` unique requests: kind (chat or completion), streamed or not, and the prompt."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        out.append(
            {
                "id": i,
                "chat": i % 2 == 0,
                "stream": (i // 2) % 2 == 0,
                "prompt": f"Request {i}: {words} costs {a} and {b}.",
            }
        )
    return out


async def ask(client: Any, req: Dict[str, Any], max_tokens: int) -> Tuple[str, List, float]:
    """``(text, calls, seconds)`` of one request."""
    start = time.perf_counter()
    text, calls = "", []
    if req["chat"]:
        kw = dict(
            model="tiny",
            max_tokens=max_tokens,
            messages=[{"role": "user", "content": req["prompt"]}],
        )
        if req["stream"]:
            async for chunk in await client.chat.completions.create(stream=True, **kw):
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    text += delta.content or ""
                    calls += (delta.model_extra or {}).get("toolformer_calls", [])
        else:
            msg = (await client.chat.completions.create(**kw)).choices[0].message
            text, calls = msg.content, msg.toolformer_calls
    else:
        kw = dict(model="tiny", max_tokens=max_tokens, prompt=req["prompt"])
        if req["stream"]:
            async for chunk in await client.completions.create(stream=True, **kw):
                for choice in chunk.choices:
                    text += choice.text
                    calls += (choice.model_extra or {}).get("toolformer_calls", [])
        else:
            choice = (await client.completions.create(**kw)).choices[0]
            text, calls = choice.text, choice.toolformer_calls
    calls = [{k: c[k] for k in ("tool", "args", "result", "error", "start", "end")} for c in calls]
    return text, calls, time.perf_counter() - start


async def run(
    url: str, reqs: List[Dict[str, Any]], clients: int, max_tokens: int
) -> Dict[str, Any]:
    import httpx
    import openai

    client = openai.AsyncOpenAI(
        base_url=url + "/v1",
        api_key="none",
        max_retries=0,
        timeout=120,
        http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 4)),
    )
    alone = [await ask(client, r, max_tokens) for r in reqs]  # the reference: one at a time
    before = httpx.get(url + "/health").json()["batching"]
    queue: asyncio.Queue = asyncio.Queue()
    for r in reqs:
        queue.put_nowait(r)
    results: Dict[int, Any] = {}
    errors: List[str] = []

    async def worker() -> None:
        while not queue.empty():
            r = queue.get_nowait()
            try:
                results[r["id"]] = await ask(client, r, max_tokens)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"request {r['id']}: {type(exc).__name__}: {exc}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - start
    health = httpx.get(url + "/health").json()
    await client.close()
    mixed = [
        r["id"] for r in reqs if r["id"] in results and results[r["id"]][:2] != alone[r["id"]][:2]
    ]
    batches = health["batching"]["batches"] - before["batches"]
    rows = health["batching"]["rows"] - before["rows"]
    return {
        "alone": alone,
        "results": results,
        "errors": errors,
        "mixed": mixed,
        "wall": wall,
        "batches": batches,
        "rows": rows,
        "health": health,
    }


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from toolformer.serve import serve_in_thread

    torch.set_num_threads(args.threads)
    reqs = requests(args.requests)
    app = build_app(args.max_tokens, args.batch_wait_ms, args.max_batch)
    with serve_in_thread(app) as url:
        out = asyncio.run(
            asyncio.wait_for(run(url, reqs, args.clients, args.max_tokens), args.deadline)
        )
    lat = sorted(r[2] for r in out["results"].values())
    ref = sorted(r[2] for r in out["alone"])
    calls = sum(len(r[1]) for r in out["results"].values())
    ran = sum(1 for r in out["results"].values() for c in r[1] if c["error"] is None)

    def pct(xs: List[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    print(
        f"requests: {len(out['results'])} of {len(reqs)} answered, {args.clients} concurrent "
        f"clients, max_tokens {args.max_tokens}, loopback"
    )
    print(f"errors: {len(out['errors'])}")
    for e in out["errors"][:5]:
        print(f"  {e}")
    print(
        f"answers that differ from the same request sent alone: {len(out['mixed'])}"
        + (f" (ids {out['mixed'][:10]})" if out["mixed"] else "")
    )
    print(f"tool calls reported: {calls} ({ran} ran, {calls - ran} tool errors)")
    print(
        f"latency, concurrent: p50 {pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, "
        f"max {lat[-1] * 1000:.0f} ms"
    )
    print(f"latency, one at a time: p50 {pct(ref, 0.5):.0f} ms, p95 {pct(ref, 0.95):.0f} ms")
    print(
        f"throughput, concurrent: {len(lat) / out['wall']:.1f} requests/s "
        f"({out['wall']:.1f} s); one at a time: {len(ref) / sum(ref):.1f} requests/s"
    )
    print(
        f"batches: {out['batches']} for {out['rows']} requests "
        f"(mean {out['rows'] / max(1, out['batches']):.1f}, "
        f"largest so far {out['health']['batching'].get('max_batch_seen')})"
    )
    return 0 if not out["errors"] and not out["mixed"] and len(out["results"]) == len(reqs) else 1


if __name__ == "__main__":
    sys.exit(main())
