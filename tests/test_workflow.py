"""The Snakemake workflow: config validation before any job, fail-fast on missing data, dry-run
DAG, and real runs on the synthetic dataset and on the real VOC sample."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")

TINY_SYNTH = {"datasets": {"synth": {"generator": {"num_trainval": 6, "num_test": 3}}},
              "training": {"synth_cpu": {"epochs": 8}}}     # 48 visits: every stage runs, in seconds


def snakemake(workdir: Path, *args: str, configs: tuple[dict, ...] = ()) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with config.yaml plus the given overrides."""
    files = [str(REPO / "config.yaml")]
    for k, override in enumerate(configs):
        path = workdir / f"override{k}.yaml"
        path.write_text(yaml.safe_dump(override))
        files.append(str(path))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                           "--configfile", *files, "--workflow-profile", "none", *args],
                          capture_output=True, text=True, env=env, cwd=workdir)


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def base_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid():
    validate(base_config(), SCHEMA)


@pytest.mark.parametrize("mutate, named", [
    (lambda c: c["datasets"]["synth"]["generator"].update(num_trainvall=10), "num_trainvall"),
    (lambda c: c.update(default_datset="synth"), "default_datset"),
    (lambda c: c["datasets"]["voc07"].update(roots="x"), "roots"),
    (lambda c: c["datasets"]["synth"]["generator"].update(num_test=-5), "num_test"),
    (lambda c: c["datasets"]["synth"]["generator"].update(seed="zero"), "seed"),
    (lambda c: c["resources"]["data"].update(threads=0), "threads"),
    (lambda c: c["ablation"].update(seed=[11]), "seed"),
    (lambda c: c["ablation"].update(seeds=[11, -1]), "seeds"),
    (lambda c: c["ablation"].update(methods=[]), "methods"),
    (lambda c: c["ablation"].update(frcnn_methods=["wsjds-seed12"]), "frcnn_methods"),
])
def test_schema_rejects_typos_wrong_types_and_negative_counts(mutate, named):
    config = base_config()
    mutate(config)
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    assert named in str(info.value)


def test_bad_config_stops_the_workflow_before_any_job(tmp_path):
    typo = {"datasets": {"synth": {"generator": {"num_tset": 3}}}}
    result = snakemake(tmp_path, "--cores", "1", configs=(typo,))
    assert result.returncode != 0
    assert "unknown key 'num_tset' in datasets.synth.generator; allowed keys: cluster_prob," in result.stderr
    assert not (tmp_path / "results").exists()
    negative = {"datasets": {"synth": {"generator": {"num_test": -1}}}}
    result = snakemake(tmp_path, "--cores", "1", configs=(negative,))
    assert result.returncode != 0 and "num_test" in result.stderr and "minimum" in result.stderr


def test_a_misspelt_top_level_key_is_named_first_with_the_allowed_keys_and_no_schema(tmp_path):
    result = snakemake(tmp_path, "-n", configs=({"default_datset": "synth"},))
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    problem = next(k for k, line in enumerate(lines) if "default_datset" in line)
    assert problem <= 3 and len(lines) <= 10, lines
    assert "unknown key 'default_datset' at the top level; allowed keys: ablation, cgl, datasets, default_dataset," \
        in lines[problem]
    assert "$schema" not in result.stderr and "additionalProperties" not in result.stderr


def test_the_yaml_examples_in_config_comments_parse_and_validate():
    examples = re.findall(r"^\s*#\s{3}(source: \{.*\})\s*$", (REPO / "config.yaml").read_text(), re.M)
    assert len(examples) == 4, examples
    for example in examples:
        config = base_config()
        config["proposals"].update(yaml.safe_load(example))
        validate(config, SCHEMA)


def test_dry_run_builds_the_dag_of_every_stage(tmp_path):
    result = snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    config = base_config()
    assert jobs["synth_dataset"] == 1 and jobs["dataset_summary"] == 2 and jobs["all"] == 1
    assert jobs["proposals_merge"] == 2 and jobs["train_settings"] == 1 and jobs["frcnn_settings"] == 1
    assert jobs["train_round"] == config["training"]["synth_cpu"]["rounds"]
    assert jobs["frcnn_round"] == config["training"]["frcnn_synth"]["rounds"]
    assert jobs["training_curves"] == 2 and jobs["pseudo_gt"] == 1 and jobs["headline"] == 1
    assert jobs["voc_metric"] == 3 and jobs["instance_seg_metric"] == 1
    # the report items of the default method: its table, the PR curves of both runs, its Fig. 4, the gallery
    assert jobs["report_metrics_table"] == 1 and jobs["report_pr_curves"] == 2 and jobs["report_figure4"] == 1
    assert jobs["report_gallery"] == 1 and jobs["predict_settings"] == 2


@pytest.mark.parametrize("target, split", [("results/voc07/dataset_summary/trainval.json", "trainval"),
                                           ("results/voc07_frcnn_map.json", None)])
def test_missing_voc_root_fails_at_dag_build_with_instructions(tmp_path, target, split):
    result = snakemake(tmp_path, "-n", target)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "MissingDatasetError" in message and not (tmp_path / "results").exists()
    assert f"data/VOCdevkit/VOC2007/ImageSets/Main/{split or ''}" in message
    assert "http://host.robots.ox.ac.uk/pascal/VOC/" in message
    assert "snakemake --cores 2" in message


def test_voc_sample_through_the_workflow(tmp_path, voc_sample):
    config = {"datasets": {"voc07": {"root": str(voc_sample)}}}
    result = snakemake(tmp_path, "--cores", "1", "results/voc07/dataset_summary/test.json", configs=(config,))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "results/voc07/dataset_summary/test.json").read_text())
    assert summary["totals"] == {"images": 60, "objects_nondifficult": 153, "objects_difficult": 44}
    assert summary["classes"]["car"] == {"images_nondifficult": 8, "images_only_difficult": 0,
                                         "objects_nondifficult": 16, "objects_difficult": 8}
    assert (tmp_path / "logs/voc07/dataset_summary_test.log").is_file()
    assert (tmp_path / "results/voc07/benchmarks/dataset_summary_test.tsv").is_file()


def test_synthetic_default_target_runs(tmp_path):
    result = snakemake(tmp_path, "--cores", "2", configs=(TINY_SYNTH,))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "results/synth/dataset/dataset.json").read_text())
    for split, images in (("trainval", 6), ("test", 3)):
        summary = json.loads((tmp_path / f"results/synth/dataset_summary/{split}.json").read_text())
        totals = summary["totals"]
        assert totals["images"] == images == manifest["splits"][split]["images"]
        assert totals["objects_nondifficult"] + totals["objects_difficult"] == manifest["splits"][split]["objects"]
    rounds = base_config()["training"]["synth_cpu"]["rounds"]
    for k in range(1, rounds + 1):
        state = torch.load(tmp_path / f"results/synth/wsjds/round{k}.pt", weights_only=True)
        assert state["round"] == k and state["format"] == "wsjds.checkpoint"
    assert (tmp_path / "results/synth/wsjds/training/curves.png").stat().st_size > 0
    assert (tmp_path / f"results/synth/benchmarks/wsjds/train_round{rounds}.tsv").is_file()
    headline = json.loads((tmp_path / "results/synth_frcnn_map.json").read_text())
    assert set(headline["frcnn_map"]["per_class"]) == set(manifest["classes"])
    assert 0 <= headline["frcnn_map"]["mean"] <= 1 and 0 <= headline["wsod_corloc"]["mean"] <= 1
    assert len(headline["config_hash"]) == 16 and headline["commit"]
    instance_seg = json.loads((tmp_path / "results/synth/wsjds/metrics/instance_seg.json").read_text())
    assert sorted(instance_seg["AP_r"]) == ["bb", "crf", "ell", "nocrf"] and not instance_seg["unavailable"]
    assert all(0 <= value <= 1 for value in instance_seg["AP_r"].values()) and 0 <= instance_seg["AP_b"] <= 1
    again = snakemake(tmp_path, "-n", configs=(TINY_SYNTH,))
    assert "Nothing to be done" in again.stdout + again.stderr
    # `snakemake --report` then gathers every report() item of the default target into one page
    page = snakemake(tmp_path, "--report", "report.html", configs=(TINY_SYNTH,))
    assert page.returncode == 0, page.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", html).group(1))
    run = "results/synth/wsjds"
    assert {name: {sub: sorted(paths) for sub, paths in subs.items()} for name, subs in categories.items()} == {
        "Metrics": {"synth": [f"{run}/report/metrics.html"]},
        "PR curves": {"synth": sorted([f"{run}/report/pr_curves_test.png", f"{run}/frcnn/report/pr_curves_test.png"])},
        "Training curves": {"synth": sorted([f"{run}/training/curves.png", f"{run}/frcnn/training/curves.png"])},
        "Fig. 4: CGL steps": {"synth": [f"{run}/report/figure4_test.png"]},
        "Gallery": {"synth": [f"{run}/frcnn/report/gallery_test.png"]},
    }
    with Image.open(tmp_path / f"{run}/frcnn/report/gallery_test.png") as gallery:   # 3 test images, one row
        assert gallery.size == (720, 240)
    check_predict_outputs(tmp_path / f"{run}/frcnn", sorted((tmp_path / "results/synth/dataset/JPEGImages").glob("*.jpg"))[:2],
                          tmp_path / "predictions", manifest["classes"], with_masks=True)


def check_predict_outputs(run_dir: Path, images: list[Path], out: Path, classes: list[str], with_masks: bool) -> None:
    """`wsjds predict` on ``images`` with a trained run: one JSON of COCO-results entries and one PNG
    of the image's size per image; boxes inside the image, scores in [0, 1], RLE masks of the image's
    size inside their box (where the run has masks)."""
    from pycocotools import mask as mask_utils

    result = subprocess.run([sys.executable, "-m", "wsjds.cli", "predict", "--run", str(run_dir), "--images",
                             *map(str, images), "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    total = 0
    for image in images:
        with Image.open(image) as original:
            width, height = original.size
        with Image.open(out / f"{image.stem}.png") as drawn:
            assert drawn.size == (width, height) and drawn.mode == "RGB"
        entries = json.loads((out / f"{image.stem}.json").read_text())
        assert isinstance(entries, list)
        total += len(entries)
        for entry in entries:
            assert set(entry) == {"image", "width", "height", "category_id", "category_name", "score", "bbox"} | (
                {"segmentation"} if with_masks else set())
            assert entry["image"] == image.name and (entry["width"], entry["height"]) == (width, height)
            assert classes[entry["category_id"]] == entry["category_name"] and 0 <= entry["score"] <= 1
            x, y, w, h = entry["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width + 0.01 and y + h <= height + 0.01
            if with_masks:
                rle = entry["segmentation"]
                assert rle["size"] == [height, width]
                mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
                rows, cols = np.nonzero(mask)
                assert rows.size == 0 or (cols.min() >= int(x) and cols.max() < x + w + 1
                                          and rows.min() >= int(y) and rows.max() < y + h + 1)
    assert total > 0


def test_cli_flags_turn_config_into_command_line():
    from wsjds.workflow import cli_flags

    flags = cli_flags({"num_test": 80, "object_size": [0.2, 0.5], "fast": True, "crf": False, "name": "a b"})
    assert flags == "--num-test 80 --object-size 0.2 0.5 --fast --no-crf --name 'a b'"


def test_dataset_input_names_the_missing_file(tmp_path):
    from wsjds.workflow import MissingDatasetError, dataset_input

    config = base_config()
    config["datasets"]["voc07"]["root"] = str(tmp_path / "VOC2007")
    with pytest.raises(MissingDatasetError) as info:
        dataset_input(config, "voc07", "test")
    assert str(tmp_path / "VOC2007" / "ImageSets" / "Main" / "test.txt") in str(info.value)
    assert dataset_input(config, "synth") == "results/synth/dataset"
