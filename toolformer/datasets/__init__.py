"""Generated training and evaluation sets (no model, pure Python, seeded).

- :mod:`toolformer.datasets.dateset`: questions about the current date, each with its own
  reference date that the Calendar tool returns (in the spirit of the paper's Dateset);
- :mod:`toolformer.datasets.notool`: prompts where no tool helps (the right output has no call).

Both return rows of one shape (see :mod:`toolformer.datasets.rows`), split into train / dev /
eval sets that are disjoint by construction, and checked by :func:`rows.assert_disjoint`.
"""

from toolformer.datasets.rows import (
    KINDS,
    ROW_KEYS,
    SPLITS,
    answer_matches,
    assert_disjoint,
    check_row,
    overlap,
    row_key,
)

__all__ = [
    "KINDS",
    "ROW_KEYS",
    "SPLITS",
    "answer_matches",
    "assert_disjoint",
    "check_row",
    "overlap",
    "row_key",
]
