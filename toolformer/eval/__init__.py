"""Evaluation harness: task registry, lenient zero-shot metrics, runs and reports.

``evaluate(EvalConfig(model=..., tasks="svamp,lama_trex", limit=20, output_dir=...))`` returns
the results dict; ``toolformer eval`` is the same from the command line.
"""

from toolformer.eval.harness import EvalConfig, evaluate  # noqa: F401
from toolformer.eval.tasks import (  # noqa: F401
    TASKS,
    TaskSpec,
    get_task,
    register_task,
    resolve_tasks,
)

__all__ = [
    "EvalConfig",
    "evaluate",
    "TASKS",
    "TaskSpec",
    "get_task",
    "register_task",
    "resolve_tasks",
]
