"""Workflow helpers of rules/report.smk and rules/ablation.smk: which files a report item reads,
the settings file the config gives them, and the flags that name inputs. Here rather than in the rule files so they are importable and
tested."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from wsjds import workflow as wf
from wsjds.workflow import paths
from wsjds.report.ablation import AblationRun

# Datasets whose splits have COCO instance masks (rules/masks.smk scores AP^r on them).
INSTANCE_MASK_KINDS: tuple[str, ...] = ("synthetic", "coco")


def report_targets(config: Mapping, ds: str, method: str = wf.DEFAULT_METHOD) -> list[str]:
    """The `snakemake --report` items of one method: its metrics table and the PR curves of its WSOD
    and Fast R-CNN test detections (where the dataset has boxes), its Fig. 4-style figure and the
    gallery of the final detector (the training curves are targets already)."""
    test = config["datasets"][ds]["test_split"]
    frcnn = paths.frcnn_run(method)
    targets = [paths.report_item(ds, method, f"figure4_{test}.png"), paths.report_item(ds, frcnn, f"gallery_{test}.png")]
    if wf.has_boxes(config, ds):
        targets += [paths.report_item(ds, method, "metrics.html"), paths.report_item(ds, method, f"pr_curves_{test}.png"),
                    paths.report_item(ds, frcnn, f"pr_curves_{test}.png")]
    return targets


def gallery_inputs(config: Mapping, ds: str, method: str, split: str) -> dict[str, str]:
    """The gallery's detections (the Fast R-CNN retrained on ``method``'s pseudo GT) and, where the
    method has a segmentation branch, the masks the masks stage made for them."""
    from wsjds.artifacts.mask_store import MODEL_VARIANTS
    from wsjds.stages.masks import MaskConfig

    inputs = {"dataset": wf.dataset_input(config, ds, split),
              "detections": paths.detections(ds, paths.frcnn_run(method), split)}
    variants = [v for v in MODEL_VARIANTS if v in MaskConfig.from_config(config["masks"], ds).variants]
    if wf.method_entry(config, method)["segmentation"] and variants:
        inputs["masks"] = paths.masks(ds, method, split, variants[0])
    return inputs


def gallery_flags(config: Mapping, ds: str, method: str, split: str) -> str:
    """``wsjds report gallery`` flags beside its settings: the masks, where the method has some."""
    masks = gallery_inputs(config, ds, method, split).get("masks")
    return "" if masks is None else wf.cli_flags({"masks": masks})


def report_settings(config: Mapping, ds: str) -> dict:
    """What the dataset's report items depend on beside their inputs (results/{ds}/report_settings.json):
    the evaluation settings and, per item, config ``report``'s numbers with the dpi; Fig. 4 reads the
    segmentation branch at the masks stage's test scale, and the ablation shows the paper's markers
    on VOC2007 (the paper's data)."""
    from wsjds.stages.masks import MaskConfig

    report, dpi = config["report"], {"dpi": config["report"]["dpi"]}
    masks = MaskConfig.from_config(config["masks"], ds).params
    settings = wf.evaluation_settings(config, ds)
    settings["report"] = {
        "pr_curves": {**report["pr_curves"], **dpi},
        "figure4": {**report["figure4"], "scale": masks.scale, "max_side": masks.max_side, **dpi},
        "gallery": {**report["gallery"], **dpi},
        "ablation": {**report["ablation"], "seeds": list(config["ablation"]["seeds"]), **dpi,
                     "show_paper": paper_method(config, ds, wf.DEFAULT_METHOD) is not None},
    }
    return settings


def paper_method(config: Mapping, ds: str, method: str) -> str | None:
    """The method whose paper columns go beside a run's metrics table: ``method`` (without a seed
    suffix: ``wsjds-seed12`` -> ``wsjds``) on VOC2007 (the year of every per-class table in the
    paper), None on any other dataset."""
    from wsjds.report.paper import PAPER_YEAR, TABLE1_WSOD_AP

    cfg = config["datasets"][ds]
    base, _ = wf.parse_method(method)
    if cfg["kind"] == "voc" and cfg.get("year") == PAPER_YEAR and base in TABLE1_WSOD_AP:
        return base
    return None


def metrics_inputs(config: Mapping, ds: str, method: str) -> dict[str, str]:
    """The metrics a method's table reads: WSOD test mAP and CorLoc, Fast R-CNN test mAP, and the
    instance-segmentation AP where the dataset has instance masks."""
    cfg = config["datasets"][ds]
    inputs = {
        "wsod_map": paths.metric(ds, method, cfg["test_split"], "map"),
        "wsod_corloc": paths.metric(ds, method, config["evaluation"]["corloc_split"], "corloc"),
        "frcnn_map": paths.metric(ds, paths.frcnn_run(method), cfg["test_split"], "map"),
    }
    if cfg["kind"] in INSTANCE_MASK_KINDS:
        inputs["instance_seg"] = paths.instance_seg(ds, method)
    return inputs


def metrics_flags(config: Mapping, ds: str, method: str) -> str:
    """``wsjds report metrics-table`` flags for :func:`metrics_inputs` (and the paper's method on VOC2007)."""
    inputs = metrics_inputs(config, ds, method)
    options: dict[str, str] = {key: path for key, path in inputs.items()}
    paper = paper_method(config, ds, method)
    if paper is not None:
        options["paper_method"] = paper
    return wf.cli_flags(options)


# --- the Table 1 ablation (rules/ablation.smk) -------------------------------------------------

def ablation_runs(config: Mapping, ds: str) -> list[AblationRun]:
    """The metrics files of every ``ablation.methods`` x ``ablation.seeds`` run of ``ds``: runs
    ``{method}-seed{N}``, with the Fast R-CNN test mAP for ``ablation.frcnn_methods``. The seed of the
    dataset's training recipe is the plain ``{method}`` run (the same training), so the default
    target's run is not trained twice."""
    ablation, cfg = config["ablation"], config["datasets"][ds]
    test, corloc = cfg["test_split"], config["evaluation"]["corloc_split"]
    recipe_seed = config["training"][cfg["training"]]["seed"]
    runs = []
    for method in ablation["methods"]:
        for seed in ablation["seeds"]:
            run = wf.method_run_name(method, None if seed == recipe_seed else seed)
            frcnn = paths.metric(ds, paths.frcnn_run(run), test, "map") if method in ablation["frcnn_methods"] else None
            runs.append(AblationRun(method, seed, paths.metric(ds, run, test, "map"),
                                    paths.metric(ds, run, corloc, "corloc"), frcnn,
                                    paths.metric(ds, run, corloc, "failures")))
    return runs


def ablation_inputs(config: Mapping, ds: str) -> dict[str, str]:
    """Named inputs of rule ablation: ``{method}_seed{N}_{wsod_map,wsod_corloc,frcnn_map,failures}``."""
    inputs = {}
    for run in ablation_runs(config, ds):
        for key in ("wsod_map", "wsod_corloc", "frcnn_map", "failures"):
            path = getattr(run, key)
            if path is not None:
                inputs[f"{run.method}_seed{run.seed}_{key}"] = str(path)
    return inputs


def ablation_flags(config: Mapping, ds: str) -> str:
    """``wsjds report ablation`` flags beside its settings: one ``--run`` per :func:`ablation_runs`
    entry and the failure-mode files."""
    ablation = ablation_runs(config, ds)
    runs = [" ".join(["--run", run.method, str(run.seed), *(shlex.quote(str(p)) for p in
                                                            (run.wsod_map, run.wsod_corloc, run.frcnn_map) if p)])
            for run in ablation]
    runs += [f"--failures {run.method} {run.seed} {shlex.quote(str(run.failures))}"
             for run in ablation if run.failures is not None]
    return " ".join(runs)
