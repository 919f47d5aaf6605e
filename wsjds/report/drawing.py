"""Detections drawn on their image: masks as translucent fills, boxes, class names and scores.

Used by ``wsjds predict`` (one PNG per image) and the report's gallery (one panel per image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Opacity of a mask's fill over the image, and the width of a box's outline in pixels.
MASK_ALPHA = 0.45
BOX_WIDTH = 2


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                    classes: Sequence[str], masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``image`` with detections ``boxes`` (K, 4) in package convention,
    ``labels`` (K,) 0-based, ``scores`` (K,) and optional ``masks`` (K of (H, W) bool), drawn in
    ascending score order so the best lies on top. Colours: one per class (:func:`class_colours`)."""
    from PIL import Image, ImageDraw

    colours = class_colours(len(classes))
    canvas = image.astype(np.float32).copy()
    order = np.argsort(scores, kind="stable")
    if masks is not None:
        for k in order:
            fill = masks[k].astype(bool)
            canvas[fill] = (1 - MASK_ALPHA) * canvas[fill] + MASK_ALPHA * colours[int(labels[k])]
    picture = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for k in order:
        colour = tuple(int(v) for v in colours[int(labels[k])])
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=BOX_WIDTH)
        text = f"{classes[int(labels[k])]} {float(scores[k]):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        draw.rectangle([left, top, right, bottom], fill=colour)
        draw.text((x1, y1), text, fill=(255, 255, 255) if sum(colour) < 384 else (0, 0, 0))
    return np.asarray(picture)


def class_colours(num_classes: int) -> np.ndarray:
    """(C, 3) float32 0-255: the report's class palette (``figure4.class_palette``)."""
    from wsjds.report.figure4 import class_palette

    return np.array([p[:3] for p in class_palette(num_classes)], np.float32) * 255.0
