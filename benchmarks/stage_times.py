"""Wall time and peak memory of every stage of a finished run, from Snakemake's benchmark files.

Every expensive rule writes ``benchmark:`` TSVs (``s``, ``max_rss`` in MB, ``cpu_time``, ...) under
``results/{ds}/benchmarks/`` and ``results/benchmarks/``. This groups them by stage (the file
name without its split / shard / round suffix) and prints a Markdown table: jobs, the sum and the
largest wall seconds of one job, CPU seconds, and the largest peak RSS.

    python benchmarks/stage_times.py --workdir . --dataset synth
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

# detect_test.0-of-2 -> detect, train_round2 -> train_round, masks_test.crf.1-of-2 -> masks
_SUFFIX = re.compile(r"(_(trainval|test|train|val)\b.*|\d+)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=".", help="the directory the workflow ran in")
    parser.add_argument("--dataset", default="synth")
    args = parser.parse_args()
    root = Path(args.workdir) / "results"
    files = sorted((root / args.dataset / "benchmarks").rglob("*.tsv")) + sorted((root / "benchmarks").rglob("*.tsv"))
    if not files:
        raise SystemExit(f"no benchmark files under {root / args.dataset / 'benchmarks'} or {root / 'benchmarks'}")
    stages: dict[str, list[dict[str, float]]] = defaultdict(list)
    for path in files:
        stages[stage_name(path, root)].append(read_benchmark(path))
    print("| stage | jobs | wall s (sum) | wall s (largest job) | CPU s (sum) | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for stage, rows in sorted(stages.items(), key=lambda item: -sum(r["s"] for r in item[1])):
        wall = sum(r["s"] for r in rows)
        total += wall
        print(f"| {stage} | {len(rows)} | {wall:.1f} | {max(r['s'] for r in rows):.1f} | "
              f"{sum(r['cpu_time'] for r in rows):.1f} | {max(r['max_rss'] for r in rows):.0f} |")
    print(f"| all benchmarked jobs | {sum(len(r) for r in stages.values())} | {total:.1f} | | | |")


def stage_name(path: Path, root: Path) -> str:
    """``results/synth/benchmarks/wsjds/frcnn/detect_test.0-of-2.tsv`` -> ``wsjds/frcnn detect``."""
    relative = path.relative_to(root)
    parts = relative.parts[2:-1] if relative.parts[1] == "benchmarks" else relative.parts[1:-1]
    rule = _SUFFIX.sub("", path.stem)
    return " ".join(filter(None, ["/".join(parts), rule]))


def read_benchmark(path: Path) -> dict[str, float]:
    """The first data row of a Snakemake benchmark TSV, numeric columns only."""
    with path.open(newline="") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {key: float(value) for key, value in row.items() if key != "h:m:s" and value not in ("", "NA", "-")}


if __name__ == "__main__":
    main()
