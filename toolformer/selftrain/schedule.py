"""Threshold schedules over Improve steps (ReST, Gulcehre et al. 2023, Section 3).

ReST filters one grown dataset several times with a threshold that rises from one Improve step
to the next, so that each fine-tuning step sees fewer, better samples. A schedule is the list of
thresholds by global Improve step (step 0 = the first Improve step of round 1); past its end the
last value holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

from toolformer.errors import UserError


@dataclass(frozen=True)
class Schedule:
    """``values[step]`` for step < len(values), then ``values[-1]``."""

    values: Tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise UserError("a threshold schedule needs at least one value")
        try:
            object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        except (TypeError, ValueError):
            raise UserError(
                f"threshold schedule values must be numbers, got {list(self.values)!r}"
            ) from None

    @classmethod
    def of(cls, values: "Sequence[float] | float | Schedule") -> "Schedule":
        """A schedule from a number (constant), a list of numbers or a schedule."""
        if isinstance(values, Schedule):
            return values
        if isinstance(values, (int, float)):
            return cls((float(values),))
        return cls(tuple(values))

    @classmethod
    def linear(cls, start: float, end: float, steps: int) -> "Schedule":
        """``steps`` values from ``start`` to ``end`` (ReST's rising thresholds)."""
        if steps < 1:
            raise UserError(f"a linear schedule needs steps >= 1, got {steps}")
        if steps == 1:
            return cls((float(end),))
        return cls(tuple(start + (end - start) * i / (steps - 1) for i in range(steps)))

    def at(self, step: int) -> float:
        """The threshold of Improve step ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self.values[min(step, len(self.values) - 1)]
