"""What ``snakemake --cores N`` builds when no target is named (the Snakefile's rule ``all``)."""

from __future__ import annotations

from collections.abc import Mapping

from wsjds import workflow as wf
from wsjds.workflow import paths
from wsjds.workflow.report import report_targets


def default_targets(config: Mapping) -> list[str]:
    """What ``snakemake --cores N`` builds: every stage that exists, for the default dataset."""
    ds = config["default_dataset"]
    if ds not in config["datasets"]:
        raise ValueError(f"default_dataset {ds!r} is not among datasets: {sorted(config['datasets'])}")
    cfg = config["datasets"][ds]
    splits = (cfg["train_split"], cfg["test_split"])
    targets = [paths.dataset_summary(ds, split) for split in splits]
    if cfg["kind"] in wf.TRAINABLE_KINDS:  # the proposal and training rules read these kinds
        targets += [paths.proposals(ds, split) for split in splits]
        wsod, frcnn, test = wf.DEFAULT_METHOD, paths.frcnn_run(wf.DEFAULT_METHOD), cfg["test_split"]
        targets += [paths.training_curves(ds, wsod), paths.training_curves(ds, frcnn),
                    paths.coco_results(ds, wsod, test), paths.coco_results(ds, frcnn, test),
                    paths.predict_settings(ds, wsod), paths.predict_settings(ds, frcnn),   # wsjds predict --run
                    paths.headline(ds)]
    if cfg["kind"] in ("synthetic", "coco"):   # datasets with instance masks
        targets.append(paths.instance_seg(ds, wf.DEFAULT_METHOD))
    if cfg["kind"] in wf.TRAINABLE_KINDS:
        targets += report_targets(config, ds, wf.DEFAULT_METHOD)
    return targets
