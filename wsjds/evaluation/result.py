"""The shape every metric returns: one value per class, their mean, and the details behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class MetricResult:
    """``per_class`` maps class name -> value in [0, 1], or None where the metric is undefined
    (no ground truth of the class); ``mean`` averages the defined values (None if there are none).
    ``details`` holds counts and the options used, for the output JSON."""

    metric: str
    per_class: Mapping[str, float | None]
    mean: float | None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: ``metric``, ``per_class``, ``mean`` and the details' keys."""
        return {"metric": self.metric, "per_class": dict(self.per_class), "mean": self.mean, **dict(self.details)}


def mean_of_defined(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when all are None."""
    defined = [v for v in values if v is not None]
    return float(sum(defined) / len(defined)) if defined else None
