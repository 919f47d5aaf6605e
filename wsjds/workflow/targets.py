"""What ``snakemake --cores N`` builds when no target is named (the Snakefile's rule ``all``)."""

from __future__ import annotations

from collections.abc import Mapping

from wsjds import workflow as wf
from wsjds.workflow.report import report_targets


def default_targets(config: Mapping) -> list[str]:
    """What ``snakemake --cores N`` builds: every stage that exists, for the default dataset."""
    ds = config["default_dataset"]
    if ds not in config["datasets"]:
        raise ValueError(f"default_dataset {ds!r} is not among datasets: {sorted(config['datasets'])}")
    cfg = config["datasets"][ds]
    splits = (cfg["train_split"], cfg["test_split"])
    targets = [f"results/{ds}/dataset_summary/{split}.json" for split in splits]
    if cfg["kind"] in wf.TRAINABLE_KINDS:  # the proposal and training rules read these kinds
        targets += [f"results/{ds}/proposals/{split}.h5" for split in splits]
        run = f"results/{ds}/{wf.DEFAULT_METHOD}"
        targets += [f"{run}/training/curves.png", f"{run}/frcnn/training/curves.png",
                    f"{run}/detections/{cfg['test_split']}_coco_results.json",
                    f"{run}/frcnn/detections/{cfg['test_split']}_coco_results.json",
                    f"{run}/predict_settings.json", f"{run}/frcnn/predict_settings.json",   # wsjds predict --run
                    f"results/{ds}_frcnn_map.json"]
    if cfg["kind"] in ("synthetic", "coco"):   # datasets with instance masks
        targets.append(f"results/{ds}/{wf.DEFAULT_METHOD}/metrics/instance_seg.json")
    if cfg["kind"] in wf.TRAINABLE_KINDS:
        targets += report_targets(config, ds, wf.DEFAULT_METHOD)
    return targets
