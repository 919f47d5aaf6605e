"""Precision-recall curves per class of a run's saved detections, one panel per class in a grid.

The curves are the ones the AP in the metrics JSON is computed from
(:func:`wsjds.evaluation.voc.precision_recall`, devkit matching); each panel's title carries that
AP (11-point for VOC2007, area under the curve otherwise) and the class's positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
from wsjds.evaluation.voc import DEVKIT_IOU_THRESHOLD, average_precision, precision_recall
from wsjds.io import atomic_path
from wsjds.report.plotting import pyplot

AXIS_MARGIN = 0.02           # room around the unit square so curves on the border stay visible


@dataclass(frozen=True)
class PRFigureStyle:
    """Layout of the grid (config.yaml ``report.pr_curves`` and ``report.dpi``)."""

    columns: int
    panel_inches: float
    dpi: int


def plot_pr_curves(gt: GroundTruth, dets: FlatDetections, out: str | Path, style: PRFigureStyle,
                   use_07_metric: bool, iou_threshold: float = DEVKIT_IOU_THRESHOLD, title: str = "") -> dict[str, float]:
    """Write the PNG grid and return each class's AP (NaN where the class has no positives).

    Each panel: precision against recall of the ranked detections (solid) and its monotone envelope
    (dashed, what the AP integrates); its title gives the AP and the counts of non-difficult
    ground-truth boxes and of detections. A class without detections shows an empty panel.
    """
    if style.columns < 1:
        raise ValueError(f"columns must be >= 1, got {style.columns}")
    curves = precision_recall(gt, dets, iou_threshold)
    rows = math.ceil(len(curves) / style.columns)
    plt = pyplot()
    figure, axes = plt.subplots(rows, style.columns, squeeze=False,
                                figsize=(style.columns * style.panel_inches, rows * style.panel_inches))
    aps: dict[str, float] = {}
    for ax, (name, curve) in zip(axes.flat, curves.items()):
        defined = curve.num_positives > 0
        ap = average_precision(curve.recall, curve.precision, use_07_metric) if defined else float("nan")
        aps[name] = ap
        if curve.recall.size:
            ax.plot(curve.recall, curve.precision, drawstyle="steps-post", label="ranked")
            ax.plot(curve.recall, precision_envelope(curve.precision), linestyle="--", label="envelope")
        ap_text = f"AP {100 * ap:.1f}" if defined else "AP undefined"
        ax.set_title(f"{name}: {ap_text} (gt {curve.num_positives}, det {curve.recall.size})", fontsize="small")
        ax.set_xlim(-AXIS_MARGIN, 1 + AXIS_MARGIN)
        ax.set_ylim(-AXIS_MARGIN, 1 + AXIS_MARGIN)
        ax.set_xlabel("recall", fontsize="small")
        ax.set_ylabel("precision", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    with_curves = [ax for ax in axes.flat if ax.lines]
    if with_curves:
        with_curves[0].legend(fontsize="x-small", loc="upper right")
    metric = "11-point AP" if use_07_metric else "AP (area)"
    figure.suptitle(f"{title}  [{metric}, IoU > {iou_threshold:g}]".strip())
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=style.dpi)
    plt.close(figure)
    return aps


def precision_envelope(precision: np.ndarray) -> np.ndarray:
    """Precision made non-increasing in rank: the highest precision at this or any later rank."""
    precision = np.asarray(precision, dtype=np.float64)
    return np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
