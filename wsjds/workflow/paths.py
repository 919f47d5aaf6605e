"""Where every artifact of the workflow lives, in one place.

The rules call these with wildcard patterns (``paths.detections("{ds}", "{run}", "{split}")`` is
the pattern ``results/{ds}/{run}/detections/{split}.h5``) and the helpers that name inputs and
targets call them with values, so a path is spelt once. ``run`` is a WSOD run, ``{method}``
(``wsjds``, ``wsjds-seed12``), or the Fast R-CNN retrained from it, :func:`frcnn_run` of it;
``method`` is a WSOD run only. Logs and Snakemake benchmark files stay beside their rule.
"""

from __future__ import annotations

RESULTS = "results"


def frcnn_run(method: str) -> str:
    """The run name of the Fast R-CNN retrained on ``method``'s pseudo GT."""
    return f"{method}/frcnn"


def run_dir(ds: str, run: str) -> str:
    return f"{RESULTS}/{ds}/{run}"


# --- data and proposals ----------------------------------------------------------------------

def dataset_dir(ds: str) -> str:
    """A generated dataset (synthetic, tags): the VOC-layout folder its rule writes."""
    return f"{RESULTS}/{ds}/dataset"


def dataset_settings(ds: str) -> str:
    """What a generated dataset is built from: the synthetic generator's knobs, or a tags dataset's files and split rule."""
    return f"{RESULTS}/{ds}/dataset_settings.json"


def dataset_summary(ds: str, split: str) -> str:
    return f"{RESULTS}/{ds}/dataset_summary/{split}.json"


def proposals(ds: str, split: str) -> str:
    return f"{RESULTS}/{ds}/proposals/{split}.h5"


def proposal_settings(ds: str, split: str) -> str:
    return f"{RESULTS}/{ds}/proposals/{split}_settings.json"


def proposal_shard(ds: str, split: str, shard: int | str, nshards: int | str) -> str:
    return f"{RESULTS}/{ds}/proposals/shards/{split}.{shard}-of-{nshards}.h5"


# --- trunk pretraining -----------------------------------------------------------------------

def pretrained_weights(weights: str) -> str:
    return f"{RESULTS}/pretrained/{weights}.pth"


def pretrained_settings(weights: str) -> str:
    return f"{RESULTS}/pretrained/{weights}.settings.json"


def pretrained_report(weights: str) -> str:
    return f"{RESULTS}/pretrained/{weights}_report.json"


# --- training (CGL and Fast R-CNN) ------------------------------------------------------------

def train_settings(ds: str, run: str) -> str:
    """The run's resolved settings (rules train_settings and frcnn_settings)."""
    return f"{run_dir(ds, run)}/settings.json"


def checkpoint(ds: str, run: str, round: int | str) -> str:
    return f"{run_dir(ds, run)}/round{round}.pt"


def round_scalars(ds: str, run: str, round: int | str) -> str:
    return f"{run_dir(ds, run)}/training/round{round}_scalars.csv"


def training_curves(ds: str, run: str) -> str:
    return f"{run_dir(ds, run)}/training/curves.png"


# --- detection, metrics, pseudo GT ------------------------------------------------------------

def detect_settings(ds: str, run: str) -> str:
    return f"{run_dir(ds, run)}/detect_settings.json"


def detections(ds: str, run: str, split: str) -> str:
    return f"{run_dir(ds, run)}/detections/{split}.h5"


def detection_shard(ds: str, run: str, split: str, shard: int | str, nshards: int | str) -> str:
    return f"{run_dir(ds, run)}/detections/shards/{split}.{shard}-of-{nshards}.h5"


def coco_results(ds: str, run: str, split: str) -> str:
    return f"{run_dir(ds, run)}/detections/{split}_coco_results.json"


def comp4_dir(ds: str, run: str, split: str) -> str:
    return f"{run_dir(ds, run)}/detections/{split}_comp4"


def evaluation_settings(ds: str) -> str:
    """What scoring any run of the dataset depends on: its ground truth and the ``evaluation`` numbers."""
    return f"{RESULTS}/{ds}/evaluation_settings.json"


def metric(ds: str, run: str, split: str, name: str) -> str:
    """A metrics JSON of a split: ``map``, ``corloc``, ``classification``, ``failures``."""
    return f"{run_dir(ds, run)}/metrics/{split}_{name}.json"


def predict_settings(ds: str, run: str) -> str:
    return f"{run_dir(ds, run)}/predict_settings.json"


def pseudo_gt_settings(ds: str, method: str) -> str:
    return f"{run_dir(ds, method)}/pseudo_gt_settings.json"


def pseudo_gt(ds: str, method: str) -> str:
    return f"{run_dir(ds, method)}/pseudo_gt.h5"


def pseudo_gt_report(ds: str, method: str) -> str:
    return f"{run_dir(ds, method)}/pseudo_gt_report.json"


def headline(ds: str) -> str:
    return f"{RESULTS}/{ds}_frcnn_map.json"


# --- masks -------------------------------------------------------------------------------------

def mask_settings(ds: str, method: str) -> str:
    return f"{run_dir(ds, method)}/mask_settings.json"


def masks(ds: str, method: str, split: str, variant: str) -> str:
    return f"{run_dir(ds, method)}/masks/{split}.{variant}.h5"


def mask_shard(ds: str, method: str, split: str, variant: str, shard: int | str, nshards: int | str) -> str:
    return f"{run_dir(ds, method)}/masks/shards/{split}.{variant}.{shard}-of-{nshards}.h5"


def mask_coco_results(ds: str, method: str, split: str, variant: str) -> str:
    return f"{run_dir(ds, method)}/masks/{split}.{variant}_coco_results.json"


def instance_seg(ds: str, method: str) -> str:
    return f"{run_dir(ds, method)}/metrics/instance_seg.json"


# --- report items and the ablation ------------------------------------------------------------

def report_settings(ds: str) -> str:
    """The figures' numbers and the evaluation settings every report item of the dataset reads."""
    return f"{RESULTS}/{ds}/report_settings.json"


def report_item(ds: str, run: str, name: str) -> str:
    """A file under the run's ``report/``: ``metrics.html``, ``pr_curves_test.png``, ``figure4_test.png``, ..."""
    return f"{run_dir(ds, run)}/report/{name}"


def ablation_summary(ds: str) -> str:
    return f"{RESULTS}/{ds}_ablation.json"


def ablation_plot(ds: str) -> str:
    return f"{RESULTS}/{ds}_ablation.png"
