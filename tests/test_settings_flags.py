"""The commands that run both in the workflow and by hand (evaluate, report, synth, data tags) take
their dataset and numbers from the settings file their rule writes, or from flags, never a mix:
the two sources give the same bytes, and mixing or omitting them is a clear error."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from wsjds import workflow as wf
from wsjds.cli import main
from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.workflow.report import report_settings

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
TINY_GENERATOR = {"seed": 3, "num_trainval": 4, "num_test": 2, "min_side": 96, "max_side": 128}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """A generated synthetic root and detections on its trainval split: every other ground-truth box
    shifted by half its width (IoU 1/3, a miss) and one box per image on a class it lacks, ranked
    first, so AP, CorLoc, the failure bins and the image-level AP are all below 1."""
    from wsjds.evaluation import load_voc_ground_truth

    tmp = tmp_path_factory.mktemp("settings_flags")
    root = tmp / "dataset"
    generate_dataset(root, SynthConfig.from_config(TINY_GENERATOR))
    gt = load_voc_ground_truth(root, "trainval", SYNTH_CLASSES)
    dets = []
    for k, (i, c, b) in enumerate(zip(gt.image_index, gt.labels, gt.boxes)):
        width, height = float(b[2] - b[0]), float(b[3] - b[1])
        shift = width / 2 if k % 2 else 0.0
        dets.append({"image_id": gt.image_ids[i], "category_id": int(c), "score": 1.0 - 0.01 * k,
                     "bbox": [float(b[0]) + shift, float(b[1]), width, height]})
    for i, image_id in enumerate(gt.image_ids):
        absent = sorted(set(range(len(SYNTH_CLASSES))) - set(gt.labels[gt.image_index == i].tolist()))
        dets.append({"image_id": image_id, "category_id": absent[0], "score": 1.5, "bbox": [0.0, 0.0, 20.0, 20.0]})
    path = tmp / "dets.json"
    path.write_text(json.dumps(dets))
    return root, path


def _config_for(root: Path) -> dict:
    config = copy.deepcopy(CONFIG)
    config["datasets"]["synth"]["generator"] = dict(TINY_GENERATOR)
    return config


def _evaluation_settings_file(root: Path, tmp_path: Path) -> Path:
    settings = wf.evaluation_settings(_config_for(root), "synth")
    assert settings["dataset"]["root"] == "results/synth/dataset"        # what the rule writes
    settings["dataset"]["root"] = str(root)
    path = tmp_path / "evaluation_settings.json"
    path.write_text(json.dumps(settings))
    return path


@pytest.mark.parametrize("subcommand, extra, by_hand", [
    ("voc", ["--metric", "map"], ["--kind", "synthetic", "--no-use07", "--iou-threshold", "0.5"]),
    ("voc", ["--metric", "corloc"], ["--kind", "synthetic", "--iou-threshold", "0.5", "--corloc-definition", "authors"]),
    ("failures", [], ["--kind", "synthetic", "--iou-threshold", "0.5", "--instance-cover", "0.7",
                      "--part-inside", "0.8"]),
    ("classification", [], ["--kind", "synthetic"]),
])
def test_evaluate_settings_and_flags_give_the_same_metrics(tiny_dataset, tmp_path, subcommand, extra, by_hand):
    root, dets = tiny_dataset
    settings = _evaluation_settings_file(root, tmp_path)
    common = ["evaluate", subcommand, "--split", "trainval", "--detections", str(dets), *extra]
    assert main([*common, "--settings", str(settings), "--out", str(tmp_path / "a.json")]) == 0
    assert main([*common, "--root", str(root), *by_hand, "--out", str(tmp_path / "b.json")]) == 0
    written = json.loads((tmp_path / "a.json").read_text())
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert written["mean"] is not None and 0.0 < written["mean"] < 1.0   # shifted boxes and absent classes count


def test_evaluate_refuses_settings_with_their_flags_and_neither(tiny_dataset, tmp_path, caplog):
    root, dets = tiny_dataset
    settings = _evaluation_settings_file(root, tmp_path)
    common = ["evaluate", "voc", "--split", "trainval", "--detections", str(dets), "--metric", "map",
              "--out", str(tmp_path / "m.json")]
    assert main([*common, "--settings", str(settings), "--iou-threshold", "0.3", "--root", str(root)]) == 2
    assert "--root, --iou-threshold" in caplog.text and "either the file or the flags" in caplog.text
    caplog.clear()
    assert main(common) == 2
    assert "give --root, or --settings" in caplog.text
    caplog.clear()
    failures = ["evaluate", "failures", "--root", str(root), "--split", "trainval", "--detections", str(dets),
                "--instance-cover", "0.7", "--out", str(tmp_path / "f.json")]
    assert main(failures) == 2 and "--part-inside" in caplog.text
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "f.json").exists()


def test_evaluation_settings_lacking_a_section_name_the_file(tiny_dataset, tmp_path, caplog):
    root, dets = tiny_dataset
    settings = json.loads(_evaluation_settings_file(root, tmp_path).read_text())
    del settings["evaluation"]
    old = tmp_path / "old_settings.json"
    old.write_text(json.dumps(settings))
    assert main(["evaluate", "voc", "--settings", str(old), "--split", "trainval", "--detections", str(dets),
                 "--metric", "map", "--out", str(tmp_path / "m.json")]) == 2
    assert "old_settings.json" in caplog.text and "'evaluation'" in caplog.text


def test_report_settings_carry_the_evaluation_and_each_figure(tiny_dataset, tmp_path, caplog):
    settings = report_settings(CONFIG, "synth")
    assert settings["evaluation"] == wf.evaluation_settings(CONFIG, "synth")["evaluation"]
    assert settings["report"]["pr_curves"] == {**CONFIG["report"]["pr_curves"], "dpi": CONFIG["report"]["dpi"]}
    assert settings["report"]["ablation"]["seeds"] == CONFIG["ablation"]["seeds"]
    assert settings["report"]["ablation"]["show_paper"] is False and report_settings(
        CONFIG, "voc07")["report"]["ablation"]["show_paper"] is True
    root, dets = tiny_dataset
    path = tmp_path / "report_settings.json"
    path.write_text(json.dumps({**settings, "dataset": {**settings["dataset"], "root": str(root)}}))
    out = tmp_path / "pr.png"
    assert main(["report", "pr-curves", "--settings", str(path), "--split", "trainval", "--detections", str(dets),
                 "--dpi", "50", "--out", str(out)]) == 2 and "--dpi" in caplog.text and not out.exists()
    assert main(["report", "pr-curves", "--settings", str(path), "--split", "trainval", "--detections", str(dets),
                 "--out", str(out)]) == 0
    from PIL import Image
    with Image.open(out) as png:     # 6 classes in rows of `columns` panels of panel_inches x dpi
        style = settings["report"]["pr_curves"]
        rows = -(-len(SYNTH_CLASSES) // style["columns"])
        assert png.size == (round(style["columns"] * style["panel_inches"] * style["dpi"]),
                            round(rows * style["panel_inches"] * style["dpi"]))


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def test_synth_from_settings_equals_synth_from_flags(tmp_path):
    settings = tmp_path / "dataset_settings.json"
    settings.write_text(json.dumps(wf.synth_settings(_config_for(tmp_path), "synth")))
    assert main(["synth", "--settings", str(settings), "--out", str(tmp_path / "a")]) == 0
    assert main(["synth", "--seed", "3", "--num-trainval", "4", "--num-test", "2", "--min-side", "96",
                 "--max-side", "128", "--out", str(tmp_path / "b")]) == 0
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert len(list((tmp_path / "a" / "JPEGImages").iterdir())) == 6


def test_synth_settings_refuse_unknown_knobs_and_fractional_integers(tmp_path, caplog):
    settings = tmp_path / "dataset_settings.json"
    settings.write_text(json.dumps({"generator": {**TINY_GENERATOR, "num_tset": 2}}))
    assert main(["synth", "--settings", str(settings), "--out", str(tmp_path / "a")]) == 2
    assert "num_tset" in caplog.text and "dataset_settings.json" in caplog.text
    with pytest.raises(ValueError, match="min_side must be an integer"):
        SynthConfig.from_config({"min_side": 96.5})
    assert SynthConfig.from_config({"min_side": 96.0, "max_side": 128}).min_side == 96
    assert not (tmp_path / "a").exists()
    assert np.isclose(SynthConfig.from_config({"object_size": [0.3, 0.4]}).object_size, (0.3, 0.4)).all()
