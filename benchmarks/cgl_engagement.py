"""How much Cyclic Guidance acted in training runs, from their per-update scalars.

Maps, seeds and proposal weights exist only for classes whose image score reaches ``cgl.tau``
(reference §3.1). For each run directory this prints, over all its rounds' updates: the mean of
the per-update largest image score, the fraction of updates where it reaches tau, the mean
foreground / background seed fractions of the segmentation targets, and the mean fraction of
proposals whose localization-map weight is negative (the frame-minus-context weights at work).

    python benchmarks/cgl_engagement.py results/synth/wsddn-seed11 results/synth/wsjds-seed11 --tau 0.7
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

COLUMNS = ("image_score_max", "seed_fg", "seed_bg", "negative_weight_fraction_cpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories results/{ds}/{run}")
    parser.add_argument("--tau", type=float, required=True, help="the image-score gate (config cgl.tau)")
    args = parser.parse_args()
    print("| run | updates | mean max image score | updates >= tau | fg seed fraction | bg seed fraction "
          "| proposals with negative weight |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        rows = scalar_rows(Path(run))
        stats = engagement(rows, args.tau)
        print(f"| {run} | {len(rows)} | {stats['image_score_max']:.3f} | {stats['gate_open']:.3f} | "
              + " | ".join(_cell(stats.get(c)) for c in COLUMNS[1:]) + " |")


def scalar_rows(run: Path) -> list[dict[str, str]]:
    """Every update's row of the run's training/round{k}_scalars.csv files, in round order."""
    files = sorted((run / "training").glob("round*_scalars.csv"), key=lambda p: int(p.stem[5:].split("_")[0]))
    if not files:
        raise SystemExit(f"{run}: no training/round*_scalars.csv")
    rows: list[dict[str, str]] = []
    for path in files:
        with path.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def engagement(rows: list[dict[str, str]], tau: float) -> dict[str, float]:
    """Means over updates of the COLUMNS a run has, and the fraction of updates whose largest image
    score reaches ``tau``."""
    scores = [float(r["image_score_max"]) for r in rows]
    stats = {"image_score_max": sum(scores) / len(scores), "gate_open": sum(s >= tau for s in scores) / len(scores)}
    for column in COLUMNS[1:]:
        values = [float(r[column]) for r in rows if r.get(column) not in (None, "")]
        if values:
            stats[column] = sum(values) / len(values)
    return stats


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
