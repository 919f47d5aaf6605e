"""Per-class counts of a dataset split: what `wsjds data summary` prints.

For each class: images with at least one non-difficult instance (devkit label 1), images with only
difficult instances (label 0), and objects split into non-difficult and difficult.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from wsjds.data.voc import Annotation


def summarize(annotations: Mapping[str, Annotation], classes: tuple[str, ...]) -> dict:
    """Count images and objects per class over ``annotations`` (image id -> Annotation)."""
    per_class = {name: {"images_nondifficult": 0, "images_only_difficult": 0, "objects_nondifficult": 0,
                       "objects_difficult": 0}
                 for name in classes}
    for ann in annotations.values():
        for label, name in enumerate(classes):
            of_class = ann.labels == label
            n_difficult = int(np.count_nonzero(of_class & ann.difficult))
            n_easy = int(np.count_nonzero(of_class)) - n_difficult
            per_class[name]["objects_nondifficult"] += n_easy
            per_class[name]["objects_difficult"] += n_difficult
            if n_easy:
                per_class[name]["images_nondifficult"] += 1
            elif n_difficult:
                per_class[name]["images_only_difficult"] += 1
    n_difficult = sum(int(a.difficult.sum()) for a in annotations.values())
    return {
        "classes": per_class,
        "totals": {
            "images": len(annotations),
            "objects_nondifficult": sum(len(a.labels) for a in annotations.values()) - n_difficult,
            "objects_difficult": n_difficult,
        },
    }


def summarize_tags(labels: Mapping[str, np.ndarray], classes: tuple[str, ...]) -> dict:
    """Images per class of a split with image-level tags only (objects: unknown, None)."""
    counts = np.sum([labels[i] for i in labels], axis=0) if labels else np.zeros(len(classes))
    return {
        "classes": {name: {"images_nondifficult": int(counts[c]), "images_only_difficult": 0,
                           "objects_nondifficult": None, "objects_difficult": None}
                    for c, name in enumerate(classes)},
        "totals": {"images": len(labels), "objects_nondifficult": None, "objects_difficult": None},
    }


def format_table(summary: dict) -> str:
    """The summary as a plain-text table (the README's columns)."""
    rows = [("class", "images (1 / 0)", "objects (non-diff + diff)")]
    for name, c in summary["classes"].items():
        rows.append((name, f"{c['images_nondifficult']} / {c['images_only_difficult']}", _objects(c)))
    t = summary["totals"]
    rows.append(("all", f"{t['images']} images", _objects(t)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _objects(counts: dict) -> str:
    if counts["objects_nondifficult"] is None:
        return "no boxes"
    return f"{counts['objects_nondifficult']} + {counts['objects_difficult']}"
