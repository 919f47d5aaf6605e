"""Fast R-CNN on pseudo GT: it never reads the real boxes; torchvision parts wired as documented."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.data.voc import VOCDataset
from wsjds.distributed import Ranks
from wsjds.stages.frcnn import FastRCNNTask, PseudoGTImages, build_frcnn, frcnn_scores
from wsjds.artifacts.hdf5 import Header, RaggedWriter
from wsjds.stages.infer import InferenceConfig
from wsjds.model.wsjds import build_model, weights_spec
from wsjds.proposals.store import ProposalWriter
from wsjds.artifacts.pseudo_gt_store import PSEUDO_GT_FIELDS, PSEUDO_GT_FORMAT, PSEUDO_GT_VERSION
from wsjds.stages.train import train_round_here
from wsjds.workflow import frcnn_settings

IDENTITY = {"scales": [0], "max_side": 10_000, "flip": False, "saturation": 1.0, "exposure": 1.0,
            "crop_fraction": 1.0, "min_box_side": 0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, repo_root):
    """A tiny synthetic dataset whose Annotations folder is then deleted, grid proposals, and a
    pseudo GT of hand-placed boxes (one per image, far from any real object's box on purpose)."""
    root = tmp_path_factory.mktemp("frcnn")
    data = root / "dataset"
    generate_dataset(data, SynthConfig(num_trainval=4, num_test=2, min_side=64, max_side=72))
    real = VOCDataset(data, "trainval", SYNTH_CLASSES)
    sizes = {i: real.image_size(i) for i in real.ids}
    shutil.rmtree(data / "Annotations")                 # the real boxes are gone: nothing can read them
    proposals, pseudo = root / "trainval.h5", root / "pseudo_gt.h5"
    pseudo_boxes = {}
    header = Header(format=PSEUDO_GT_FORMAT, version=PSEUDO_GT_VERSION, dataset="synth", split="trainval",
                    source="test", parameters={}, classes=SYNTH_CLASSES)
    with ProposalWriter(proposals, dataset="synth", split="trainval", source="grid", parameters={}) as props, \
            RaggedWriter(pseudo, header, PSEUDO_GT_FIELDS) as pgt:
        for image_id, (width, height) in sizes.items():
            grid = np.array([[x, y, x + width / 2, y + height / 2] for x in (0, width / 4, width / 2)
                             for y in (0, height / 4, height / 2)], np.float32)
            props.append(image_id, width, height, grid, np.zeros(len(grid), np.float32))
            pseudo_boxes[image_id] = np.array([[3.0, 5.0, width / 2 + 3, height / 2 + 5]], np.float32)
            pgt.append(image_id, width, height, boxes=pseudo_boxes[image_id], labels=np.array([2]),
                       scores=np.array([0.9], np.float32))
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    settings = frcnn_settings(config, "synth", "wsjds")
    settings["dataset"]["root"] = str(data)
    settings["model"].update(widths=[4, 4, 8, 8, 8], fc_dim=16)
    settings["weights"] = dict(config["weights"]["scratch"])
    settings["frcnn"].update(init="imagenet")           # with the 'scratch' weights entry: random init, no file
    settings["training"].update(epochs=2, effective_batch=2, rounds=1, augmentation=IDENTITY | {"scales": [64]})
    return data, proposals, pseudo, pseudo_boxes, settings


def test_fast_rcnn_trains_on_pseudo_gt_only(setup, tmp_path):
    data, proposals, pseudo, pseudo_boxes, settings = setup
    source = PseudoGTImages(lambda image_id: data / "JPEGImages" / f"{image_id}.jpg", pseudo)
    assert source.ids == tuple(sorted(pseudo_boxes)) and source.image_labels(source.ids[0]).tolist() == [0, 0, 1, 0, 0, 0]
    trainer = train_round_here(Ranks(), torch.device("cpu"), settings, source, proposals, 1, tmp_path / "round1.pt",
                               None, progress=False, task_factory=FastRCNNTask, targets=pseudo)
    for visit in range(len(source.ids)):
        sample = trainer.data[visit]
        width, height = source._sizes[sample.image_id]
        scale = 64 / min(width, height)
        fx, fy = round(width * scale) / width, round(height * scale) / height      # per-axis, after rounding
        np.testing.assert_allclose(sample.target_boxes.numpy(), pseudo_boxes[sample.image_id] * [fx, fy, fx, fy],
                                   rtol=1e-5)
        assert sample.target_labels.tolist() == [2]
    assert len(trainer.scalars) == 4
    assert all(np.isfinite(r["loss_classifier"]) and np.isfinite(r["loss_box_reg"]) for r in trainer.scalars)


def test_eval_outputs_and_test_time_boxes(setup):
    data, proposals, pseudo, _, settings = setup
    torch.manual_seed(0)
    model = build_frcnn(settings).eval()
    image = np.random.default_rng(0).integers(0, 255, (60, 70, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 30, 30], [10, 20, 70, 60]], np.float32)
    probs, decoded = model(torch.from_numpy(image).permute(2, 0, 1).float()[None], torch.from_numpy(boxes))
    assert probs.shape == (2, 7) and torch.allclose(probs.sum(1), torch.ones(2)) and decoded.shape == (2, 7, 4)
    cfg = InferenceConfig(scales=(48, 64), max_side=200, flip=True, max_proposals=10, nms_iou=0.5,
                          max_detections=100, score_threshold=1e-9)
    scores, out = frcnn_scores(model, image, boxes, cfg, torch.device("cpu"))
    assert scores.shape == (2, 6) and out.shape == (2, 6, 4)
    assert (out[..., [0, 2]] >= 0).all() and (out[..., [0, 2]] <= 70).all() and (out[..., [1, 3]] <= 60).all()


def test_init_from_the_wsod_model_copies_trunk_and_fc(setup):
    *_, settings = setup
    wsod = build_model(settings["model"], weights_spec(settings["weights"], with_file=False), 6, False)
    settings = {**settings, "frcnn": {**settings["frcnn"], "init": "wsod"}}
    model = build_frcnn(settings, wsod_state=wsod.state_dict())
    assert torch.equal(model.backbone.layers[0][0].weight, wsod.backbone.layers[0][0].weight)
    assert torch.equal(model.roi_heads.box_head.fc6.weight, wsod.detection.fc6.weight)
    assert torch.equal(model.roi_heads.box_head.fc7.bias, wsod.detection.fc7.bias)


def test_frcnn_train_command_trains_a_round_and_each_stage_refuses_the_others_settings(setup, tmp_path, caplog,
                                                                                       repo_root):
    import json

    from wsjds.cli import main as cli
    from wsjds.workflow import train_settings

    data, proposals, pseudo, _, settings = setup
    frcnn_file, cgl_file = tmp_path / "frcnn.json", tmp_path / "cgl.json"
    frcnn_file.write_text(json.dumps(settings))
    cgl_file.write_text(json.dumps(train_settings(yaml.safe_load((repo_root / "config.yaml").read_text()), "synth", "wsjds")))
    round_args = ["--proposals", str(proposals), "--round", "1", "--no-progress"]
    assert cli(["frcnn", "train", "--settings", str(frcnn_file), "--targets", str(pseudo), *round_args,
                "--out", str(tmp_path / "round1.pt")]) == 0
    assert (tmp_path / "round1.pt").is_file()
    assert cli(["train", "--settings", str(frcnn_file), *round_args, "--out", str(tmp_path / "cgl.pt")]) == 2
    assert "frcnn.json" in caplog.text and "no 'cgl' section" in caplog.text and "wsjds frcnn train" in caplog.text
    assert cli(["frcnn", "train", "--settings", str(cgl_file), "--targets", str(pseudo), *round_args,
                "--out", str(tmp_path / "f.pt")]) == 2
    assert "no 'frcnn' section" in caplog.text
    assert not (tmp_path / "cgl.pt").exists() and not (tmp_path / "f.pt").exists()
