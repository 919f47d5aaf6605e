"""CGL training rounds: resume after a kill gives the same weights, gradient accumulation equals a
batch, ground-truth boxes never reach the model, checkpoints load with weights_only."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import grid_boxes, tiny_training_run

import wsjds.cgl.task as task_module
import wsjds.stages.train as train_module
from wsjds.cgl.objective import CGLConfig, Method, cgl_objective
from wsjds.cli import main
from wsjds.data.dataset import TrainingImages
from wsjds.data.transforms import Augmentation
from wsjds.report.curves import plot_training_curves
from wsjds.stages.train import Trainer, TrainingError, load_checkpoint, train_round

IDENTITY = {"scales": [0], "max_side": 10_000, "flip": False, "saturation": 1.0, "exposure": 1.0,
            "crop_fraction": 1.0, "min_box_side": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, repo_root):
    return tiny_training_run(tmp_path_factory.mktemp("train"), repo_root)


def kill_on_the_fourth_image(monkeypatch):
    """Make the CGL objective raise KeyboardInterrupt (a kill) on its fourth call; returns the real one."""
    real, calls = task_module.cgl_objective, {"n": 0}

    def dies_on_the_fourth_image(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(task_module, "cgl_objective", dies_on_the_fourth_image)
    return real


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_a_killed_round_resumes_to_the_same_weights(tiny, tmp_path, monkeypatch):
    source, store, settings = tiny
    clean = tmp_path / "clean"
    train_round(settings, source, store, 1, clean / "round1.pt", None, progress=False)
    train_round(settings, source, store, 2, clean / "round2.pt", clean / "round1.pt", progress=False)

    killed = tmp_path / "killed"
    train_round(settings, source, store, 1, killed / "round1.pt", None, progress=False)
    real = kill_on_the_fourth_image(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_round(settings, source, store, 2, killed / "round2.pt", killed / "round1.pt", progress=False)
    partial = killed / "round2.pt.partial"
    assert partial.is_file() and not (killed / "round2.pt").exists()      # nothing that looks complete
    assert load_checkpoint(partial)["visit"] == 8                          # round 2 starts at 6; one update done
    monkeypatch.setattr(task_module, "cgl_objective", real)
    train_round(settings, source, store, 2, killed / "round2.pt", killed / "round1.pt", progress=False)
    assert not partial.exists()
    expected, got = state_of(clean / "round2.pt"), state_of(killed / "round2.pt")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert not all(torch.equal(expected[k], state_of(clean / "round1.pt")[k]) for k in expected)   # round 2 trained


def test_a_resume_under_changed_settings_is_refused(tiny, tmp_path, monkeypatch):
    source, store, settings = tiny
    real = kill_on_the_fourth_image(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_round(settings, source, store, 1, tmp_path / "round1.pt", None, progress=False)
    monkeypatch.setattr(task_module, "cgl_objective", real)
    partial = tmp_path / "round1.pt.partial"
    before = partial.read_bytes()

    changed = copy.deepcopy(settings)
    changed["training"]["lr"] = settings["training"]["lr"] * 10
    with pytest.raises(TrainingError) as info:
        train_round(changed, source, store, 1, tmp_path / "round1.pt", None, progress=False)
    message = str(info.value)
    assert f"training.lr: {settings['training']['lr']} -> {changed['training']['lr']}" in message
    assert f"rm {partial}" in message and str(partial) in message
    assert partial.read_bytes() == before and not (tmp_path / "round1.pt").exists()     # nothing lost, nothing mixed
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    argv = ["train", "--settings", str(tmp_path / "changed.json"), "--proposals", str(store), "--round", "1",
            "--out", str(tmp_path / "round1.pt"), "--no-progress"]
    assert main(argv) == 2 and partial.read_bytes() == before                 # the CLI: a message, exit code 2

    neutral = copy.deepcopy(settings)
    neutral["training"]["checkpoint_every_updates"] = 2                     # changes no weight: resumes
    train_round(neutral, source, store, 1, tmp_path / "round1.pt", None, progress=False)
    assert not partial.exists() and load_checkpoint(tmp_path / "round1.pt")["visit"] == 6

    with pytest.raises(TrainingError, match=r"round1\.pt was trained with other settings.*training\.lr.*round 1 again"):
        train_round(changed, source, store, 2, tmp_path / "round2.pt", tmp_path / "round1.pt", progress=False)


def test_the_same_config_and_seed_give_the_same_bytes(tiny, tmp_path):
    source, store, settings = tiny
    for run in ("a", "b"):
        train_round(settings, source, store, 1, tmp_path / run / "round1.pt", None,
                    tmp_path / run / "round1_scalars.csv", progress=False)
    assert (tmp_path / "a/round1.pt").read_bytes() == (tmp_path / "b/round1.pt").read_bytes()
    assert (tmp_path / "a/round1_scalars.csv").read_bytes() == (tmp_path / "b/round1_scalars.csv").read_bytes()


def test_gradient_accumulation_equals_a_batch(tiny):
    source, store, settings = tiny
    settings = copy.deepcopy(settings)
    settings["model"]["dropout"] = 0.0                     # a deterministic model
    settings["cgl"]["center_loss"]["enabled"] = False
    settings["training"].update(effective_batch=4, epochs=4, rounds=1, augmentation=IDENTITY | {"scales": [64]},
                                optimizer="sgd", lr=0.01, bias_lr_mult=2, momentum=0.9, weight_decay=0.0005)
    trainer = Trainer(settings, source, store, torch.device("cpu"))
    batch = [trainer.data[v] for v in range(4)]
    reference = copy.deepcopy(trainer.model)
    optimizer = torch.optim.SGD(
        [{"params": [p for n, p in reference.named_parameters() if p.requires_grad and not n.endswith("bias")],
          "weight_decay": 0.0005, "lr": 0.01},
         {"params": [p for n, p in reference.named_parameters() if p.requires_grad and n.endswith("bias")],
          "weight_decay": 0.0, "lr": 0.02}], momentum=0.9)
    method, cgl = Method.from_config(settings["method"]), CGLConfig.from_config(settings["cgl"])
    losses = [cgl_objective(reference, s.image[None], s.rois, None, s.labels, method, cgl, True).loss for s in batch]
    (torch.stack(losses).sum() / 4).backward(inputs=reference.trainable_parameters())   # one batch of 4
    optimizer.step()

    trainer.schedule = train_module.Schedule(trainer.schedule.num_images, 4, 1, (0, 1))
    trainer.data.total_visits = 4
    trainer.run_round(1, partial=None, progress=False)                                  # 4 x 1 image, accumulated
    for (name, a), b in zip(reference.named_parameters(), trainer.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name


def test_the_model_sees_only_stored_proposals_never_ground_truth(tiny):
    source, store, settings = tiny
    for image_id in source.ids:
        width, height = source.image_size(image_id)
        augmentation = Augmentation(scales=(min(width, height),), max_side=10_000, flip=False, saturation=1.0,
                                    exposure=1.0, crop_fraction=1.0, min_box_side=0)
        data = TrainingImages(source, store, augmentation, seed=0, max_proposals=2048, total_visits=12)
        for visit in range(len(data.ids)):
            sample = data[visit]
            if sample.image_id != image_id:
                continue
            stored = grid_boxes(*source.image_size(image_id))
            assert torch.equal(sample.rois, torch.from_numpy(stored))       # exactly the store, no row added
            gt = source.annotation(image_id).boxes
            assert not (np.abs(stored[:, None, :] - gt[None, :, :]).max(axis=2) < 0.5).any()


def test_checkpoints_load_weights_only_and_record_scalars(tiny, tmp_path):
    source, store, settings = tiny
    scalars = tmp_path / "round1.csv"
    returned = train_round(settings, source, store, 1, tmp_path / "round1.pt", None, scalars, progress=False)
    state = torch.load(tmp_path / "round1.pt", weights_only=True)
    assert state["round"] == 1 and state["visit"] == 6 and state["format"] == "wsjds.checkpoint"
    assert returned["visit"] == 6 and returned["scalars"] == state["scalars"]
    rows = list(csv.DictReader(scalars.open()))
    assert len(rows) == 3            # 6 images, 2 per update
    assert {"loss", "lr", "mil_cpg", "seed", "crf", "seed_fg", "seed_bg", "seed_ignore"} <= set(rows[0])
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    plot_training_curves([scalars], tmp_path / "curves.png", "tiny", dpi=40)
    with Image.open(tmp_path / "curves.png") as curves:   # FIGURE_INCHES (12, 4.5) at 40 dpi
        assert curves.format == "PNG" and curves.size == (480, 180)
    with pytest.raises(TrainingError, match="outside 1..2"):
        train_round(settings, source, store, 3, tmp_path / "round3.pt", tmp_path / "round1.pt", progress=False)
    with pytest.raises(TrainingError, match="needs round 1"):
        train_round(settings, source, store, 2, tmp_path / "round2.pt", None, progress=False)


def test_the_initial_centres_follow_init_seed_or_else_the_training_seed(tiny):
    """cgl.center_loss.init_seed pins the N(0, 1) centres; null draws them from the run's training seed,
    so ablation seeds vary them (ref §1.5)."""
    _, _, settings = tiny
    device = torch.device("cpu")

    def centres(init_seed, training_seed):
        s = copy.deepcopy(settings)
        s["cgl"]["center_loss"]["init_seed"] = init_seed
        s["training"]["seed"] = training_seed
        return task_module.CGLTask(s, device).center.centres

    pinned = centres(0, 11)
    num_classes, num_centres, dim = pinned.shape
    assert (num_centres, dim) == (settings["cgl"]["center_loss"]["centres"], 16)
    expected = torch.randn(num_classes, num_centres, dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pinned, expected) and torch.equal(centres(0, 12), pinned)
    assert torch.equal(centres(None, 12), torch.randn(num_classes, num_centres, dim,
                                                      generator=torch.Generator().manual_seed(12)))
    assert not torch.equal(centres(None, 12), centres(None, 13))
