"""The Table 1 ablation on our data: every method trained with several seeds, summarised per method
as the mean, the standard deviation and the per-seed values of WSOD test mAP, trainval CorLoc and
(for some methods) the retrained Fast R-CNN's test mAP; beside them the paper's VOC2007 numbers
and the two differences the paper claims, computed on our numbers seed by seed.

Values come from the metrics JSONs that ``wsjds evaluate voc`` writes (read with
:func:`wsjds.report.tables.read_metrics`) and stay fractions in [0, 1], as there; the paper's
numbers are converted from its % to the same scale. ``std`` is the sample standard deviation over
seeds (n - 1 in the denominator), null for a single seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsjds.errors import ArtifactError
from wsjds.io import atomic_path
from wsjds.report.paper import PAPER, PAPER_YEAR, PERCENT, TABLE1_WSOD_AP, TABLE2_FRCNN_AP, TABLE3_WSOD_CORLOC
from wsjds.report.plotting import pyplot
from wsjds.report.tables import read_json_file, read_metrics

BASELINE = "wsddn"           # Table 1's first row (WSDDN*)
FULL = "wsjds"               # Table 1's last row (WSOD <=> WSSS), the one Fast R-CNN retrains on in Table 2
METRICS = ("wsod_map", "wsod_corloc", "frcnn_map")
METRIC_LABELS = {"wsod_map": "WSOD mAP (test)", "wsod_corloc": "WSOD CorLoc (trainval)",
                 "frcnn_map": "Fast R-CNN mAP (test)"}
STD_DEFINITION = "sample standard deviation over seeds (n - 1 denominator); null for a single seed"


@dataclass(frozen=True)
class AblationRun:
    """The metrics files of one method trained with one seed (``frcnn_map``: None without Fast R-CNN)."""

    method: str
    seed: int
    wsod_map: str | Path
    wsod_corloc: str | Path
    frcnn_map: str | Path | None = None
    failures: str | Path | None = None      # `wsjds evaluate failures` JSON of the WSOD detector (trainval)


def ablation_summary(dataset: str, seeds: Sequence[int], runs: Sequence[AblationRun],
                     config_hash: str) -> dict[str, Any]:
    """The ``results/{ds}_ablation.json`` dict of ``runs``: one run per method and seed.

    Every method needs a run for each of ``seeds`` and no other, and either all or none of its
    runs have a Fast R-CNN metrics file; a metrics file that is missing, malformed or holds no
    defined mean raises ArtifactError naming it. Methods keep the order of their first run.
    """
    seeds = [int(s) for s in seeds]
    by_method = _runs_by_method(runs, seeds)
    methods: dict[str, Any] = {}
    for method, method_runs in by_method.items():
        entry = {key: _statistics({run.seed: _mean(getattr(run, key), key) for run in method_runs})
                 for key in METRICS if getattr(method_runs[0], key) is not None}
        if all(run.failures is not None for run in method_runs):
            entry["failure_modes"] = _failure_statistics(method_runs)
        entry["paper"] = _paper_means(method)
        methods[method] = entry
    return {
        "dataset": dataset,
        "seeds": seeds,
        "config_hash": config_hash,
        "methods": methods,
        "differences": _differences(methods),
        "paper": {"reference": PAPER, "dataset": f"PASCAL VOC {PAPER_YEAR}",
                  "note": "the paper's means (Table 1 WSOD mAP, Table 2 Fast R-CNN mAP, Table 3 CorLoc) "
                          "on VOC2007, for reference: other data than ours unless the dataset is VOC2007"},
        "units": "fractions in [0, 1] (the paper prints %)",
        "std": STD_DEFINITION,
    }


def plot_ablation(summary: Mapping[str, Any], out: str | Path, panel_inches: float, dpi: int,
                  title: str = "", show_paper: bool = False) -> None:
    """One PNG of ``summary``: a panel per metric (WSOD mAP, CorLoc, Fast R-CNN mAP), one bar per
    method at its mean over seeds with a ±std error bar and the per-seed values as points on it;
    with ``show_paper`` (VOC2007 runs: the paper's data) also the paper's mean as a marker where it
    has one. The figure is 3 x 1 square panels of ``panel_inches`` at ``dpi``."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(METRICS), squeeze=False, figsize=(len(METRICS) * panel_inches, panel_inches))
    methods = list(summary["methods"])
    for ax, key in zip(axes.flat, METRICS):
        _metric_panel(ax, summary["methods"], methods, key, show_paper)
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    if handles:
        axes.flat[0].legend(handles.values(), handles.keys(), fontsize="x-small", loc="best")
    seeds = ", ".join(str(s) for s in summary["seeds"])
    figure.suptitle(f"{title}  [seeds {seeds}; bars: mean ± std]".strip(), fontsize="medium")
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    plt.close(figure)


def statistics(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation) of ``values``; the deviation is None for a single value."""
    if not values:
        raise ValueError("no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


# --- helpers ----------------------------------------------------------------------------------

def _runs_by_method(runs: Sequence[AblationRun], seeds: Sequence[int]) -> dict[str, list[AblationRun]]:
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    by_method: dict[str, list[AblationRun]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    if not by_method:
        raise ValueError("no runs")
    for method, method_runs in by_method.items():
        got = sorted(run.seed for run in method_runs)
        if got != sorted(seeds):
            raise ValueError(f"method {method!r} has runs of seeds {got}, expected one of each of {sorted(seeds)}")
        if len({run.frcnn_map is None for run in method_runs}) > 1:
            raise ValueError(f"method {method!r}: some runs have a Fast R-CNN metrics file and some do not")
        method_runs.sort(key=lambda run: list(seeds).index(run.seed))
    return by_method


def _mean(path: str | Path, key: str) -> float:
    metric = "corloc" if key == "wsod_corloc" else "map"
    mean = read_metrics(path, metric)["mean"]
    if mean is None:
        raise ArtifactError(f"{metric} is undefined (no class has ground truth)", path=path)
    return float(mean)


def _failure_statistics(runs: Sequence[AblationRun]) -> dict[str, Any]:
    """Per outcome of the top box per (image, class) (correct, merged, part, other, missed), and for
    merged among the pairs with two or more instances: mean, std and per-seed fraction."""
    from wsjds.evaluation.failure_modes import OUTCOMES

    loaded = {}
    for run in runs:
        data = read_json_file(run.failures, "failure-modes file")
        if not isinstance(data, dict) or not isinstance(data.get("fractions"), dict) \
                or any(o not in data["fractions"] for o in OUTCOMES):
            raise ArtifactError(f"not a failure-modes JSON of `wsjds evaluate failures` (needs fractions of "
                               f"{list(OUTCOMES)})", path=run.failures)
        loaded[run.seed] = data
    stats = {o: _statistics({seed: float(data["fractions"][o] or 0.0) for seed, data in loaded.items()})
             for o in OUTCOMES}
    multi = {seed: data.get("merged_of_multi_instance") for seed, data in loaded.items()}
    if all(v is not None for v in multi.values()):
        stats["merged_of_multi_instance"] = _statistics({seed: float(v) for seed, v in multi.items()})
    return stats


def _statistics(per_seed: Mapping[int, float]) -> dict[str, Any]:
    mean, std = statistics(list(per_seed.values()))
    return {"mean": mean, "std": std, "per_seed": {str(seed): value for seed, value in per_seed.items()}}


def _paper_means(method: str) -> dict[str, Any] | None:
    """The paper's VOC2007 means of a Table 1 ``method`` (fractions; None where a table has no row
    of it), None for a method that is not in Table 1."""
    if method not in TABLE1_WSOD_AP:
        return None
    tables = {"wsod_map": TABLE1_WSOD_AP, "wsod_corloc": TABLE3_WSOD_CORLOC, "frcnn_map": TABLE2_FRCNN_AP}
    columns = {key: table[method] for key, table in tables.items() if method in table}
    entry: dict[str, Any] = {key: columns[key].mean / PERCENT if key in columns else None for key in METRICS}
    entry["label"] = TABLE1_WSOD_AP[method].label
    entry["sources"] = {key: column.source for key, column in columns.items()}
    return entry


def _differences(methods: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's two claims, seed by seed on our numbers: the full method's gain over WSDDN in
    WSOD mAP (Table 1), and the Fast R-CNN's gain over the WSOD detector it retrains from (Table 2)."""
    differences: dict[str, Any] = {}
    full, baseline = methods.get(FULL), methods.get(BASELINE)
    if full is not None and baseline is not None:
        differences[f"{FULL}_minus_{BASELINE}_wsod_map"] = _difference(
            full["wsod_map"], baseline["wsod_map"],
            f"WSOD test mAP of {FULL} minus that of {BASELINE}, per seed",
            (TABLE1_WSOD_AP[FULL].mean - TABLE1_WSOD_AP[BASELINE].mean) / PERCENT,
            f"{TABLE1_WSOD_AP[FULL].source} minus {TABLE1_WSOD_AP[BASELINE].source}")
    if full is not None and "frcnn_map" in full:
        differences[f"{FULL}_frcnn_minus_wsod_map"] = _difference(
            full["frcnn_map"], full["wsod_map"],
            f"test mAP of the Fast R-CNN retrained on {FULL}'s pseudo GT minus that of the {FULL} WSOD detector, "
            "per seed", (TABLE2_FRCNN_AP[FULL].mean - TABLE1_WSOD_AP[FULL].mean) / PERCENT,
            f"{TABLE2_FRCNN_AP[FULL].source} minus {TABLE1_WSOD_AP[FULL].source}")
    return differences


def _difference(minuend: Mapping[str, Any], subtrahend: Mapping[str, Any], what: str, paper: float,
                paper_source: str) -> dict[str, Any]:
    per_seed = {seed: minuend["per_seed"][seed] - subtrahend["per_seed"][seed] for seed in minuend["per_seed"]}
    mean, std = statistics(list(per_seed.values()))
    return {"what": what, "mean": mean, "std": std, "per_seed": per_seed, "paper": paper,
            "paper_source": paper_source}


def _metric_panel(ax, entries: Mapping[str, Any], methods: Sequence[str], key: str, show_paper: bool) -> None:
    shown = [m for m in methods if key in entries[m]]
    ax.set_title(METRIC_LABELS[key], fontsize="small")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize="x-small")
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel("%", fontsize="small")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.grid(True, axis="y", alpha=0.3)
    if not shown:
        ax.text(0.5, 0.5, "no runs of this metric", ha="center", va="center", transform=ax.transAxes,
                fontsize="small")
        return
    for x, method in enumerate(methods):
        if method not in shown:
            continue
        stats = entries[method][key]
        values = [PERCENT * v for v in stats["per_seed"].values()]
        std = PERCENT * stats["std"] if stats["std"] is not None else 0.0
        ax.bar(x, PERCENT * stats["mean"], width=0.6, yerr=std, capsize=3, color="C0", alpha=0.6,
               label="ours: mean ± std")
        offsets = [0.0] if len(values) == 1 else [-0.15 + 0.3 * k / (len(values) - 1) for k in range(len(values))]
        ax.scatter([x + o for o in offsets], values, s=12, color="k", zorder=3, label="ours: per seed")
        paper = (entries[method].get("paper") or {}).get(key)
        if show_paper and paper is not None:
            ax.scatter([x], [PERCENT * paper], marker="_", s=200, color="C3", zorder=4,
                       label=f"paper (VOC{PAPER_YEAR % 100:02d})")
    ax.set_ylim(bottom=0)
