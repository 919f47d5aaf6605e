"""The report's gallery: the first test images with the final detector's boxes and masks drawn.

One panel per image in a grid; each shows the detections of the image whose score reaches
``min_score``, at most ``max_boxes`` of them (best first), with their masks where a mask store is
given (the masks stage's output for the same detections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsjds.io import atomic_path
from wsjds.report.drawing import draw_detections
from wsjds.report.plotting import pyplot


@dataclass(frozen=True)
class GalleryStyle:
    """Config ``report.gallery`` and ``report.dpi`` (sources there)."""

    images: int
    columns: int
    panel_inches: float
    min_score: float
    max_boxes: int
    dpi: int


def plot_gallery(source, detections, image_ids: Sequence[str], out: str | Path, style: GalleryStyle,
                 masks=None, title: str = "") -> int:
    """Draw ``image_ids`` of ``source`` (``read_image``) with their entries of ``detections`` (a
    DetectionStore) and optionally ``masks`` (a MaskStore of the same detections) into the PNG
    ``out``. Returns the number of boxes drawn."""
    plt = pyplot()
    rows = -(-len(image_ids) // style.columns)
    columns = min(style.columns, len(image_ids))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * style.panel_inches, rows * style.panel_inches),
                             squeeze=False)
    drawn = 0
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image_id in zip(axes.ravel(), image_ids):
        dets = detections[image_id]
        order = np.argsort(-dets.scores, kind="stable")
        keep = order[dets.scores[order] >= style.min_score][: style.max_boxes]
        image_masks = None
        if masks is not None:
            entry = masks[image_id]
            image_masks = [entry.mask(int(k)) for k in keep]
        picture = draw_detections(source.read_image(image_id), dets.boxes[keep], dets.labels[keep],
                                  dets.scores[keep], detections.classes, image_masks)
        ax.imshow(picture)
        ax.set_title(f"{image_id}: {len(keep)} of {len(dets)}", fontsize=7)
        drawn += len(keep)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=style.dpi)
    plt.close(fig)
    return drawn
