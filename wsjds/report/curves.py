"""Training curves: each loss term and the learning rate per SGD update, from the rounds' scalar CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wsjds.io import atomic_path  # noqa: E402

NON_LOSS_COLUMNS = {"round", "update", "visit", "lr", "image_score_max", "seed_fg", "seed_bg",
                    "seed_ignore", "negative_weight_fraction", "negative_weight_fraction_cpg"}


# Size of the figure in inches (two panels side by side); its pixels are these times config report.dpi.
FIGURE_INCHES = (12.0, 4.5)


def plot_training_curves(scalar_files: list[str | Path], out: str | Path, title: str = "", dpi: int = 100) -> None:
    """One PNG: loss terms (left, log scale) and seed coverage / image score (right) per update,
    :data:`FIGURE_INCHES` at ``dpi`` (config ``report.dpi`` in the workflow)."""
    rows = [row for path in scalar_files for row in csv.DictReader(Path(path).open())]
    if not rows:
        raise ValueError(f"no scalar rows in {[str(p) for p in scalar_files]}")
    updates = [int(r["update"]) for r in rows]
    figure, (losses, stats) = plt.subplots(1, 2, figsize=FIGURE_INCHES)
    columns = [c for c in rows[0] if c not in NON_LOSS_COLUMNS]
    for column in columns:
        values = [float(r[column]) if r.get(column) not in (None, "") else float("nan") for r in rows]
        losses.plot(updates, values, label=column)
    losses.set_yscale("log")
    losses.set_xlabel("SGD update")
    losses.set_title("loss terms (weighted)")
    losses.legend(fontsize=8)
    for column in ("seed_fg", "seed_bg", "seed_ignore", "image_score_max"):
        if column in rows[0]:
            stats.plot(updates, [float(r[column]) if r.get(column) else float("nan") for r in rows], label=column)
    stats.set_xlabel("SGD update")
    stats.set_title("seed coverage and max image score")
    stats.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    plt.close(figure)
