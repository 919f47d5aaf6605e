"""The tiny CGL training run the training tests share: 6 synthetic images, grid proposals, a small
random trunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.data.voc import VOCDataset
from wsjds.proposals.store import ProposalWriter
from wsjds.workflow import train_settings


def tiny_training_run(root: Path, repo_root: Path):
    """In ``root``: a 6-image synthetic dataset, a proposal store of grid boxes (no ground truth), and settings
    for a tiny model."""
    data = root / "dataset"
    generate_dataset(data, SynthConfig(num_trainval=6, num_test=2, min_side=64, max_side=80))
    source = VOCDataset(data, "trainval", SYNTH_CLASSES)
    store = root / "trainval.h5"
    with ProposalWriter(store, dataset="synth", split="trainval", source="test-grid", parameters={}) as writer:
        for image_id in source.ids:
            width, height = source.image_size(image_id)
            boxes = grid_boxes(width, height)
            writer.append(image_id, width, height, boxes, np.zeros(len(boxes), np.float32))
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    settings = train_settings(config, "synth", "wsjds")
    settings["dataset"]["root"] = str(data)
    settings["model"] = {**config["models"]["vgg16_small"], "widths": [4, 4, 8, 8, 8], "fc_dim": 16, "aspp_hidden": 8,
                         "freeze_backbone": False}
    settings["weights"] = dict(config["weights"]["scratch"])   # a random trunk the tiny run trains
    settings["training"].update(epochs=2, effective_batch=2, rounds=2, checkpoint_every_updates=1,
                                augmentation={**settings["training"]["augmentation"], "scales": [64, 72]})
    settings["cgl"]["tau"] = 0.0        # open the score gate so the short run exercises guidance
    return source, store, settings


def grid_boxes(width: int, height: int) -> np.ndarray:
    """Proposals on a fixed grid: 3 sizes x 4 x 4 positions; never derived from annotations."""
    boxes = []
    for size in (0.3, 0.5, 0.8):
        w, h = width * size, height * size
        for fx in np.linspace(0, 1, 4):
            for fy in np.linspace(0, 1, 4):
                x1, y1 = fx * (width - w), fy * (height - h)
                boxes.append([x1, y1, x1 + w, y1 + h])
    return np.round(np.array(boxes, np.float32), 1)


