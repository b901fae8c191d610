"""Annotate a corpus from Python: the same settings as `toolformer augment`, as a dataclass.

    python examples/augment_api.py                   # 10 default-corpus paragraphs, 2 tools
    python examples/augment_api.py my.jsonl --all    # a JSONL file with a "text" field, all of it

Re-running resumes; under `torchrun --nproc_per_node N examples/augment_api.py ...` each process
annotates its own shard and the last one to finish merges them.
"""

import argparse
import json

from toolformer.data_aug import AnnotatorConfig, AugmentConfig, augment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="JSONL/CSV/parquet file or saved HF dataset")
    parser.add_argument("--all", action="store_true", help="annotate every document (no limit)")
    parser.add_argument("--output", default="runs/augment-api")
    args = parser.parse_args()

    config = AugmentConfig(
        input=args.input,
        output=args.output,
        tools=["Calculator", "Calendar"],
        limit=0 if args.all else 10,
        # the paper's thresholds per tool (Appendix A), with one override as an example
        annotator=AnnotatorConfig(settings={"Calendar": {"tau_f": 1.0}}),
    )
    summary = augment(config)
    print(summary)
    if summary.merged:
        print(json.dumps(summary.stats["calls_kept"], indent=2))


if __name__ == "__main__":
    main()
