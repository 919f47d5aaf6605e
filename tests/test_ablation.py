"""The Table 1 ablation: seed-suffixed run names (``wsjds-seed12``) reach the training settings, the
summary's mean / std / per-seed values and the paper's claimed differences from metrics JSONs in
``wsjds evaluate voc``'s format, the figure, the CLI, and the plan of ``results/synth_ablation.json``."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from workflow_plan import REPO, counts, planned, snakemake, tiny_config
from wsjds import workflow as wf
from wsjds.cli import main as cli
from wsjds.errors import ArtifactError
from wsjds.evaluation.result import MetricResult, mean_of_defined
from wsjds.io import write_json
from wsjds.report import paper
from wsjds.report.ablation import AblationRun, ablation_summary, plot_ablation, statistics
from wsjds.stages.train import settings_hash
from wsjds.workflow.report import ablation_flags, ablation_inputs, ablation_runs, report_settings
from wsjds.workflow.targets import default_targets

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
CLASSES = ("ring", "star")

# Hand-computed: wsddn mAP 0.10 / 0.20 / 0.30 -> mean 0.20, sample std 0.10; wsjds 0.30 / 0.35 / 0.55 ->
# mean 0.40, std sqrt((0.01 + 0.0025 + 0.0225) / 2); wsjds's Fast R-CNN 0.10 above its WSOD mAP at every seed.
SEEDS = (11, 12, 13)
WSOD_MAP = {"wsddn": (0.10, 0.20, 0.30), "wsjds": (0.30, 0.35, 0.55)}
CORLOC = {"wsddn": (0.20, 0.20, 0.26), "wsjds": (0.40, 0.50, 0.60)}
FRCNN_MAP = {"wsjds": (0.40, 0.45, 0.65)}


def _metrics_file(path: Path, metric: str, mean: float, split: str) -> Path:
    """A metrics JSON as `wsjds evaluate voc` writes it: two classes around ``mean``."""
    per_class = {"ring": mean - 0.05, "star": mean + 0.05}
    assert mean_of_defined(list(per_class.values())) == pytest.approx(mean)
    result = MetricResult(metric, per_class, mean, {"num_images": 4, "iou_threshold": 0.5})
    write_json(path, {**result.to_json(), "root": "results/synth/dataset", "split": split,
                      "detections": "d.h5", "classes": list(CLASSES)})
    return path


# Failure modes (fractions of correct, merged, part, other, missed) of wsjds's three seeds: merged 0.1 / 0.2 / 0.3.
FAILURES = {"wsjds": ((0.4, 0.1, 0.2, 0.3, 0.0), (0.5, 0.2, 0.1, 0.2, 0.0), (0.6, 0.3, 0.0, 0.1, 0.0))}


def _failures_file(path: Path, fractions: tuple[float, ...]) -> Path:
    """A `wsjds evaluate failures` JSON with these fractions (10 pairs; half of them multi-instance)."""
    outcomes = ("correct", "merged", "part", "other", "missed")
    write_json(path, {"metric": "failure_modes", "mean": fractions[0], "pairs": 10,
                      "fractions": dict(zip(outcomes, fractions)), "multi_instance_pairs": 5,
                      "merged_of_multi_instance": 2 * fractions[1]})
    return path


def _runs(tmp_path: Path, methods=("wsddn", "wsjds"), seeds=SEEDS) -> list[AblationRun]:
    runs = []
    for method in methods:
        for k, seed in enumerate(seeds):
            base = tmp_path / f"{method}-seed{seed}"
            frcnn = None
            if method in FRCNN_MAP:
                frcnn = _metrics_file(base / "frcnn/metrics/test_map.json", "map", FRCNN_MAP[method][k], "test")
            failures = None
            if method in FAILURES:
                failures = _failures_file(base / "metrics/trainval_failures.json", FAILURES[method][k])
            runs.append(AblationRun(method, seed, _metrics_file(base / "metrics/test_map.json", "map",
                                                                WSOD_MAP[method][k], "test"),
                                    _metrics_file(base / "metrics/trainval_corloc.json", "corloc",
                                                  CORLOC[method][k], "trainval"), frcnn, failures))
    return runs


# --- run names with a seed ---------------------------------------------------------------------

@pytest.mark.parametrize("name, parsed", [("wsjds", ("wsjds", None)), ("wsjds-seed12", ("wsjds", 12)),
                                          ("det2seg-seed0", ("det2seg", 0)), ("wsddn-seed1234", ("wsddn", 1234))])
def test_parse_method_reads_the_seed_suffix(name, parsed):
    assert wf.parse_method(name) == parsed
    assert wf.method_run_name(*parsed) == name


@pytest.mark.parametrize("name", ["", "wsjds-seed", "wsjds-seed012", "wsjds-seed-1", "wsjds-12", "wsjds_seed12",
                                  "wsjds-seed12x", "WSJDS", "wsjds/frcnn", "wsjds-seed1-seed2"])
def test_parse_method_rejects_other_names_saying_what_a_name_looks_like(name):
    with pytest.raises(ValueError, match=r"bad method name .*METHOD-seedN"):
        wf.parse_method(name)


def test_the_wildcards_take_configured_methods_with_a_seed_only():
    method, run = re.compile(wf.method_wildcard(CONFIG)), re.compile(wf.run_wildcard(CONFIG))
    assert all(method.fullmatch(n) for n in ("wsjds", "wsjds-seed12", "parallel-seed0"))
    assert not any(method.fullmatch(n) for n in ("wsjds-seed012", "foo-seed1", "wsjds-seed", "wsjds/frcnn"))
    assert run.fullmatch("wsjds-seed12/frcnn") and run.fullmatch("wsddn") and not run.fullmatch("wsjds/frcnn/x")
    with pytest.raises(ValueError, match="'foo' .* is not among methods"):
        wf.method_entry(CONFIG, "foo-seed1")


def test_a_seed_suffix_is_the_training_seed_of_the_wsod_and_fast_rcnn_runs():
    plain, seeded = wf.train_settings(CONFIG, "synth", "wsjds"), wf.train_settings(CONFIG, "synth", "wsjds-seed12")
    recipe = CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]
    assert plain["training"]["seed"] == recipe["seed"] != 12 and seeded["training"]["seed"] == 12
    assert seeded["method_name"] == "wsjds-seed12" and seeded["method"] == CONFIG["methods"]["wsjds"]
    assert {k: v for k, v in seeded["training"].items() if k != "seed"} == \
           {k: v for k, v in plain["training"].items() if k != "seed"}
    assert settings_hash(seeded) != settings_hash(plain)
    assert settings_hash(seeded) != settings_hash(wf.train_settings(CONFIG, "synth", "wsjds-seed13"))
    frcnn, frcnn_seeded = (wf.frcnn_settings(CONFIG, "synth", m) for m in ("wsjds", "wsjds-seed12"))
    frcnn_recipe = CONFIG["training"][CONFIG["frcnn"][CONFIG["datasets"]["synth"]["frcnn"]]["training"]]
    assert frcnn["training"]["seed"] == frcnn_recipe["seed"] and frcnn_seeded["training"]["seed"] == 12
    assert frcnn_seeded["method_name"] == "wsjds-seed12" and settings_hash(frcnn_seeded) != settings_hash(frcnn)
    assert CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]["seed"] == recipe["seed"]   # config untouched


# --- config checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(methods=["wsddn", "wsjdss"]), r"ablation.methods \['wsjdss'\] are not among methods"),
    (lambda a: a.update(frcnn_methods=["parallel"], methods=["wsddn", "wsjds"]),
     r"ablation.frcnn_methods \['parallel'\] are not among ablation.methods"),
    (lambda a: a.update(seeds=[11, 12, 11]), r"ablation.seeds repeats \[11\]"),
])
def test_check_references_rejects_a_bad_ablation(mutate, message):
    wf.check_references(CONFIG)
    config = copy.deepcopy(CONFIG)
    mutate(config["ablation"])
    with pytest.raises(ValueError, match=message):
        wf.check_references(config)


# --- the summary -------------------------------------------------------------------------------

def test_summary_holds_hand_computed_means_stds_and_per_seed_values(tmp_path):
    summary = ablation_summary("synth", SEEDS, _runs(tmp_path), "abc123")
    assert (summary["dataset"], summary["seeds"], summary["config_hash"]) == ("synth", list(SEEDS), "abc123")
    assert list(summary["methods"]) == ["wsddn", "wsjds"]
    wsddn, wsjds = summary["methods"]["wsddn"], summary["methods"]["wsjds"]
    assert wsddn["wsod_map"]["mean"] == pytest.approx(0.20) and wsddn["wsod_map"]["std"] == pytest.approx(0.10)
    assert wsddn["wsod_map"]["per_seed"] == {"11": pytest.approx(0.10), "12": pytest.approx(0.20),
                                             "13": pytest.approx(0.30)}
    assert wsddn["wsod_corloc"]["mean"] == pytest.approx(0.22)
    assert wsddn["wsod_corloc"]["std"] == pytest.approx(math.sqrt((0.0004 + 0.0004 + 0.0016) / 2))
    assert wsjds["wsod_map"]["mean"] == pytest.approx(0.40)
    assert wsjds["wsod_map"]["std"] == pytest.approx(math.sqrt((0.01 + 0.0025 + 0.0225) / 2))
    assert wsjds["frcnn_map"]["mean"] == pytest.approx(0.50) and "frcnn_map" not in wsddn
    # the paper's VOC2007 means, as fractions: Table 1 for every method, Tables 2 and 3 for WS-JDS only
    assert wsddn["paper"]["wsod_map"] == pytest.approx(0.369) and wsddn["paper"]["frcnn_map"] is None
    assert wsjds["paper"]["wsod_map"] == pytest.approx(0.456) and wsjds["paper"]["frcnn_map"] == pytest.approx(0.525)
    assert wsjds["paper"]["wsod_corloc"] == pytest.approx(0.645) and wsjds["paper"]["label"] == "WS-JDS"
    # the paper's claims on our numbers, seed by seed: 0.20, 0.15, 0.25 and 0.10 at every seed
    gain = summary["differences"]["wsjds_minus_wsddn_wsod_map"]
    assert gain["mean"] == pytest.approx(0.20) and gain["std"] == pytest.approx(0.05)
    assert gain["per_seed"] == {"11": pytest.approx(0.20), "12": pytest.approx(0.15), "13": pytest.approx(0.25)}
    assert gain["paper"] == pytest.approx((45.6 - 36.9) / 100)
    retrain = summary["differences"]["wsjds_frcnn_minus_wsod_map"]
    assert retrain["mean"] == pytest.approx(0.10) and retrain["std"] == pytest.approx(0.0, abs=1e-12)
    assert retrain["paper"] == pytest.approx(0.069)
    assert json.loads(json.dumps(summary)) == summary                      # plain JSON
    # failure modes over seeds: merged 0.1 / 0.2 / 0.3 -> mean 0.2, std 0.1; among multi-instance pairs twice that
    modes = wsjds["failure_modes"]
    assert modes["merged"]["mean"] == pytest.approx(0.2) and modes["merged"]["std"] == pytest.approx(0.1)
    assert modes["part"]["per_seed"] == {"11": pytest.approx(0.2), "12": pytest.approx(0.1), "13": pytest.approx(0.0)}
    assert modes["merged_of_multi_instance"]["mean"] == pytest.approx(0.4)
    assert "failure_modes" not in wsddn                                    # no failures files given for it


def test_one_seed_has_no_std_and_a_missing_method_no_difference(tmp_path):
    summary = ablation_summary("synth", [12], _runs(tmp_path, methods=("wsjds",), seeds=(12,)), "h")
    assert summary["methods"]["wsjds"]["wsod_map"] == {"mean": pytest.approx(0.30), "std": None,
                                                       "per_seed": {"12": pytest.approx(0.30)}}
    assert list(summary["differences"]) == ["wsjds_frcnn_minus_wsod_map"]      # no wsddn to compare with
    assert statistics([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_summary_bad_input_names_the_file_or_the_run(tmp_path):
    runs = _runs(tmp_path)
    with pytest.raises(ValueError, match=r"'wsddn' has runs of seeds \[11, 12, 13\], expected .*\[11, 12\]"):
        ablation_summary("synth", [11, 12], runs, "h")
    swapped = [AblationRun(r.method, r.seed, r.wsod_corloc, r.wsod_map, r.frcnn_map) for r in runs]
    with pytest.raises(ArtifactError, match=r"wsddn-seed11/metrics/trainval_corloc.json.*expected 'map'"):
        ablation_summary("synth", SEEDS, swapped, "h")
    runs[0].wsod_map.unlink()
    with pytest.raises(ArtifactError, match=r"wsddn-seed11/metrics/test_map.json.*does not exist"):
        ablation_summary("synth", SEEDS, runs, "h")
    runs = _runs(tmp_path)
    write_json(runs[-1].failures, {"metric": "failure_modes"})
    with pytest.raises(ArtifactError, match=r"wsjds-seed13/metrics/trainval_failures.json.*not a failure-modes JSON"):
        ablation_summary("synth", SEEDS, runs, "h")


def test_plot_is_a_png_of_three_panels_of_the_configured_size(tmp_path):
    summary = ablation_summary("synth", SEEDS, _runs(tmp_path), "h")
    for show_paper in (False, True):
        out = tmp_path / f"ablation_{show_paper}.png"
        plot_ablation(summary, out, panel_inches=2.0, dpi=40, title="tiny", show_paper=show_paper)
        with Image.open(out) as png:
            assert png.format == "PNG" and png.size == (3 * 2.0 * 40, 2.0 * 40)


def test_cli_writes_the_summary_and_the_plot(tmp_path, caplog):
    runs = _runs(tmp_path)
    args = ["report", "ablation", "--dataset", "synth", "--config-hash", "h", "--seeds", *map(str, SEEDS)]
    for run in runs:
        args += ["--run", run.method, str(run.seed), str(run.wsod_map), str(run.wsod_corloc),
                 *([str(run.frcnn_map)] if run.frcnn_map else [])]
        args += ["--failures", run.method, str(run.seed), str(run.failures)] if run.failures else []
    args += ["--panel-inches", "2", "--dpi", "30", "--out-json", str(tmp_path / "a.json"),
             "--out-plot", str(tmp_path / "a.png")]
    assert cli(args) == 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(
        ablation_summary("synth", SEEDS, runs, "h")))
    with Image.open(tmp_path / "a.png") as png:
        assert png.size == (180, 60)
    with pytest.raises(SystemExit, match="--run takes METHOD SEED WSOD_MAP CORLOC"):
        cli(args[:args.index("--run")] + ["--run", "wsddn", "11", "m.json"] + args[args.index("--panel-inches"):])
    with pytest.raises(SystemExit, match=r"--failures of \('kite', 11\) has no --run"):
        cli(args[:args.index("--panel-inches")] + ["--failures", "kite", "11", "f.json"]
            + args[args.index("--panel-inches"):])
    (tmp_path / "wsjds-seed12/metrics/test_map.json").write_text("{")
    assert cli(args) == 2 and "not valid JSON" in caplog.text


# --- the workflow ------------------------------------------------------------------------------

SMALL = {"ablation": {"methods": ["wsddn", "seg2det"], "seeds": [5, 7], "frcnn_methods": ["wsddn"]}}


def test_ablation_inputs_are_every_method_and_seed_s_metrics():
    config = copy.deepcopy(CONFIG)
    config["ablation"] = SMALL["ablation"]
    runs = ablation_runs(config, "synth")
    assert [(r.method, r.seed) for r in runs] == [("wsddn", 5), ("wsddn", 7), ("seg2det", 5), ("seg2det", 7)]
    inputs = ablation_inputs(config, "synth")
    assert inputs["wsddn_seed7_frcnn_map"] == "results/synth/wsddn-seed7/frcnn/metrics/test_map.json"
    assert inputs["seg2det_seed5_wsod_corloc"] == "results/synth/seg2det-seed5/metrics/trainval_corloc.json"
    assert inputs["seg2det_seed7_failures"] == "results/synth/seg2det-seed7/metrics/trainval_failures.json"
    assert len(inputs) == 2 * 2 * 3 + 2 and not any(k.startswith("seg2det") and "frcnn" in k for k in inputs)
    assert report_settings(config, "synth")["report"]["ablation"]["show_paper"] is False
    assert report_settings(config, "voc07")["report"]["ablation"]["show_paper"] is True
    assert report_settings(config, "synth")["report"]["ablation"]["seeds"] == [5, 7]
    flags = ablation_flags(config, "synth")
    assert flags.startswith("--run wsddn 5 results/synth/wsddn-seed5/metrics/test_map.json")
    assert not any("ablation" in t for t in default_targets(CONFIG))       # 15 training runs: asked for by path


def test_the_recipe_seed_of_the_ablation_is_the_plain_run():
    config = copy.deepcopy(CONFIG)
    recipe_seed = config["training"][config["datasets"]["synth"]["training"]]["seed"]
    config["ablation"] = {"methods": ["wsjds"], "seeds": [recipe_seed, 7], "frcnn_methods": ["wsjds"]}
    inputs = ablation_inputs(config, "synth")
    assert inputs[f"wsjds_seed{recipe_seed}_wsod_map"] == "results/synth/wsjds/metrics/test_map.json"
    assert inputs[f"wsjds_seed{recipe_seed}_frcnn_map"] == "results/synth/wsjds/frcnn/metrics/test_map.json"
    assert inputs["wsjds_seed7_wsod_map"] == "results/synth/wsjds-seed7/metrics/test_map.json"


def test_dry_run_plans_every_method_and_seed_and_fast_rcnn_for_frcnn_methods_only(tmp_path):
    result = snakemake(tmp_path, "-n", "results/synth_ablation.json", configs=(tiny_config(), SMALL))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned(result.stdout)
    synth = CONFIG["datasets"]["synth"]
    rounds = CONFIG["training"][synth["training"]]["rounds"]
    frcnn_rounds = CONFIG["training"][CONFIG["frcnn"][synth["frcnn"]]["training"]]["rounds"]
    checkpoints = {f for job in jobs if job.rule in ("train_round", "frcnn_round") for f in job.outputs
                   if f.endswith(".pt")}
    expected = {f"results/synth/{m}-seed{s}/round{k}.pt" for m in ("wsddn", "seg2det") for s in (5, 7)
                for k in range(1, rounds + 1)}
    expected |= {f"results/synth/wsddn-seed{s}/frcnn/round{k}.pt" for s in (5, 7) for k in range(1, frcnn_rounds + 1)}
    assert checkpoints == expected
    stats = counts(jobs)
    assert stats["ablation"] == 1 and stats["pseudo_gt"] == 2 and "pretrain_trunk" not in stats   # ImageNet trunk
    assert stats["train_settings"] == 4 and stats["frcnn_settings"] == 2 and stats["voc_metric"] == 4 * 2 + 2 and stats["failure_modes"] == 4
    (ablation,) = [job for job in jobs if job.rule == "ablation"]
    assert ablation.outputs == ("results/synth_ablation.json", "results/synth_ablation.png")
    assert set(ablation.inputs) == {*ablation_inputs({**CONFIG, **SMALL}, "synth").values(),
                                    "results/synth/report_settings.json"}


def test_seeded_runs_get_masks_by_their_method_s_branch(tmp_path):
    targets = [f"results/synth/{run}/metrics/instance_seg.json" for run in ("wsddn-seed5", "seg2det-seed5")]
    result = snakemake(tmp_path, "-n", *targets, configs=(tiny_config(),))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned(result.stdout)
    model_masks = {f for job in jobs if job.rule == "masks_model_shard" for f in job.inputs}
    assert {"results/synth/seg2det-seed5/mask_settings.json", "results/synth/seg2det-seed5/round2.pt"} <= model_masks
    assert not any("wsddn-seed5" in f for f in model_masks)                    # no segmentation branch
    baselines = {f for job in jobs if job.rule == "masks_box_baseline" for f in job.outputs}
    assert {"results/synth/wsddn-seed5/masks/test.bb.h5", "results/synth/wsddn-seed5/masks/test.ell.h5"} <= baselines


def test_an_unknown_ablation_method_stops_the_workflow_before_any_job(tmp_path):
    bad = {"ablation": {"methods": ["wsddn", "wsjdss"], "seeds": [5], "frcnn_methods": []}}
    result = snakemake(tmp_path, "-n", "results/synth_ablation.json", configs=(tiny_config(), bad))
    assert result.returncode != 0
    assert "ablation.methods ['wsjdss'] are not among methods" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_the_paper_s_claims_are_read_off_its_tables():
    assert paper.TABLE1_WSOD_AP["wsjds"].mean - paper.TABLE1_WSOD_AP["wsddn"].mean == pytest.approx(8.7)
    assert paper.TABLE2_FRCNN_AP["wsjds"].mean - paper.TABLE1_WSOD_AP["wsjds"].mean == pytest.approx(6.9)
