"""Trunk pretraining on synthetic scenes: the synthetic dataset's stand-in for ImageNet.

WS-JDS starts from an ImageNet-trained VGG16 and keeps conv1-conv5 frozen (reference §1.1, §8.2).
No ImageNet model exists for the small synthetic trunk, and training it from scratch on a few
hundred weakly labelled images learns nothing (BENCHMARKS.md). So, as ImageNet does for VOC, a
fully supervised classification task on *other* images gives the trunk its features: scenes drawn
by the synthetic generator from a random stream disjoint from every dataset split, each with a few
objects of the synthetic classes and distractor shapes on clutter, and every clearly visible item's
box classified from its RoI-pooled conv5 features, exactly as the detection head will see it
(object-centric crops were tried first: their features did not carry over to boxes in cluttered
images, BENCHMARKS.md). The network is the trunk with a BatchNorm after every conv (so it trains
from scratch in minutes), fc6/fc7 and a classifier. At the end each BatchNorm is folded into its
conv, and the plain trunk with fc6/fc7 is written as a VGG16 state dict in torchvision's key layout:
the detector loads it like the ImageNet file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_pool
from tqdm import tqdm

from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.synthetic import DISTRACTOR_KINDS, SPLITS, SynthConfig, generate_pretraining_scene
from wsjds.io import atomic_path, save_torch
from wsjds.model.backbone import VGGC5D
from wsjds.model.wsddn import caffe_rois
from wsjds.model.wsjds import weights_spec

log = logging.getLogger(__name__)

PRETRAIN_CLASSES: tuple[str, ...] = SYNTH_CLASSES + DISTRACTOR_KINDS
SCENE_STREAM = len(SPLITS)   # generator stream of the scenes; dataset split k uses stream k


@dataclass(frozen=True)
class PretrainConfig:
    """A ``pretraining.<name>`` entry of config.yaml (sources there)."""

    scenes: int                      # scenes generated
    held_out: int                    # of which the first ones are held out to measure accuracy
    side: int                        # scene side in px
    items_per_scene: tuple[int, int]  # [min, max] objects and distractors per scene
    object_size: tuple[float, float]  # item extent / scene side
    box_jitter: float                # each box edge moves up to this fraction of the box's side (proposal-like)
    head_fraction: float             # marker diameter / body length (as the dataset generator)
    seed: int
    epochs: int
    batch: int                       # scenes per step
    lr: float                        # peak learning rate of the one-cycle schedule (AdamW)
    dropout: float                   # on fc6/fc7 while pretraining
    warmup_fraction: float
    weight_decay: float
    bn_eps: float                    # BatchNorm eps (also used when folding)

    @classmethod
    def from_config(cls, cfg: Mapping) -> "PretrainConfig":
        values = dict(cfg)
        values["object_size"] = tuple(values["object_size"])
        values["items_per_scene"] = tuple(values["items_per_scene"])
        return cls(**values)


@dataclass
class Scenes:
    """Pretraining scenes: ``images`` (N, side, side, 3) uint8; their items' ``boxes`` (K, 4) float32,
    ``labels`` (K,) int64 into PRETRAIN_CLASSES and ``scene`` (K,) int64 image indices, sorted by scene."""

    images: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scene: np.ndarray

    def items_of(self, scenes: torch.Tensor) -> torch.Tensor:
        """Indices of the items of ``scenes`` (a 1-D tensor of scene indices)."""
        return torch.nonzero(torch.isin(torch.from_numpy(self.scene), scenes)).flatten()


def pretrain_trunk(settings: Mapping[str, Any], out: str | Path, report: str | Path,
                   progress: bool = True) -> dict[str, Any]:
    """Train the trunk of ``settings["model"]`` on synthetic scenes and write it to ``out`` (atomically).

    ``settings`` holds ``model`` (a models.<name> entry), ``weights`` (its weights entry: the pixel
    convention) and ``pretraining`` (a :class:`PretrainConfig` entry). Returns the report also
    written to ``report``: held-out accuracy overall and per class, and the loss per epoch.
    """
    cfg = PretrainConfig.from_config(settings["pretraining"])
    if not 0 < cfg.held_out < cfg.scenes:
        raise ValueError(f"pretraining: held_out must be in 1..scenes-1, got {cfg.held_out} of {cfg.scenes}")
    model_cfg = settings["model"]
    pixels = weights_spec(settings["weights"]).pixels
    torch.manual_seed(cfg.seed)
    scenes = make_scenes(cfg)
    inputs = pixels.normalise(torch.from_numpy(scenes.images).permute(0, 3, 1, 2)).contiguous()
    trunk = VGGC5D(tuple(model_cfg["widths"]), model_cfg["fc_dim"], model_cfg["roi_size"])
    net = SceneClassifier(trunk, len(PRETRAIN_CLASSES), model_cfg["roi_size"], cfg.dropout, cfg.bn_eps)
    held_out = torch.arange(cfg.held_out)
    history = _fit(net, inputs, scenes, torch.arange(cfg.held_out, cfg.scenes), cfg, progress)
    accuracy = _accuracy(net, inputs, scenes, held_out)
    plain = net.folded_trunk()
    folded_accuracy = _accuracy(_PlainClassifier(plain, net.fc8, net.roi_size), inputs, scenes, held_out)
    state = {f"features.{k}": v for k, v in plain.features.state_dict().items()}
    state.update({"classifier.0.weight": plain.fc6.weight.detach(), "classifier.0.bias": plain.fc6.bias.detach(),
                  "classifier.3.weight": plain.fc7.weight.detach(), "classifier.3.bias": plain.fc7.bias.detach()})
    save_torch(out, {k: v.clone().contiguous() for k, v in state.items()})
    counts = np.bincount(scenes.labels, minlength=len(PRETRAIN_CLASSES))
    result = {"classes": list(PRETRAIN_CLASSES), "held_out_scenes": cfg.held_out,
              "trained_on_scenes": cfg.scenes - cfg.held_out,
              "held_out_items": int(len(scenes.items_of(held_out))), "items": int(len(scenes.labels)),
              "items_per_class": dict(zip(PRETRAIN_CLASSES, counts.tolist())),
              "accuracy": accuracy["overall"], "per_class_accuracy": accuracy["per_class"],
              "folded_accuracy": folded_accuracy["overall"], "epochs": history}
    with atomic_path(report) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    log.info("pretraining done: held-out accuracy %.4f (after folding BatchNorm: %.4f)", accuracy["overall"],
             folded_accuracy["overall"])
    return result


def make_scenes(cfg: PretrainConfig) -> Scenes:
    """The pretraining scenes; scene i is a function of (seed, i) only."""
    generator = SynthConfig(seed=cfg.seed, head_fraction=cfg.head_fraction)
    images = np.empty((cfg.scenes, cfg.side, cfg.side, 3), np.uint8)
    boxes, labels, owners = [], [], []
    for i in tqdm(range(cfg.scenes), desc="pretraining scenes", unit="scene", mininterval=5):
        rng = np.random.default_rng([cfg.seed, SCENE_STREAM, i])
        count = int(rng.integers(cfg.items_per_scene[0], cfg.items_per_scene[1] + 1))
        scene = generate_pretraining_scene(rng, generator, cfg.side, rng.integers(0, len(PRETRAIN_CLASSES), count),
                                           cfg.object_size)
        images[i] = scene.image
        boxes.append(scene.boxes)
        labels.append(scene.labels)
        owners.append(np.full(len(scene.labels), i, np.int64))
    return Scenes(images, np.concatenate(boxes), np.concatenate(labels), np.concatenate(owners))


class SceneClassifier(nn.Module):
    """The trunk with a BatchNorm after every conv, RoI max-pooling of conv5, fc6/fc7, fc8.
    ``forward(images (N, 3, S, S), boxes (K, 4), scene (K,))`` -> (K, classes) logits. Shares its convs
    and fc6/fc7 with ``trunk``."""

    def __init__(self, trunk: VGGC5D, num_classes: int, roi_size: int, dropout: float, bn_eps: float):
        super().__init__()
        self.trunk, self.roi_size = trunk, roi_size
        layers: list[nn.Module] = []
        for layer in trunk.features:
            layers.append(layer)
            if isinstance(layer, nn.Conv2d):
                layers.append(nn.BatchNorm2d(layer.out_channels, eps=bn_eps))
        self.features = nn.Sequential(*layers)
        self.fc6, self.fc7 = trunk.fc6, trunk.fc7
        self.dropout = nn.Dropout(dropout)
        self.fc8 = nn.Linear(trunk.fc_dim, num_classes)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        pooled = roi_pool(self.features(images), caffe_rois(boxes, scene), self.roi_size, 1.0 / self.trunk.stride)
        hidden = self.dropout(F.relu(self.fc6(pooled.flatten(1))))
        return self.fc8(self.dropout(F.relu(self.fc7(hidden))))

    @torch.no_grad()
    def folded_trunk(self) -> VGGC5D:
        """The trunk with each BatchNorm's running statistics and affine folded into its conv (in
        place: this classifier's BatchNorms are not to be used afterwards)."""
        layers = list(self.features)
        for conv, norm in zip(layers, layers[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.bias.copy_((conv.bias - norm.running_mean) * scale + norm.bias)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
        return self.trunk


class _PlainClassifier(nn.Module):
    """A folded trunk with the pretraining classifier on top (to check the fold changes nothing)."""

    def __init__(self, trunk: VGGC5D, fc8: nn.Linear, roi_size: int):
        super().__init__()
        self.trunk, self.fc8, self.roi_size = trunk, fc8, roi_size

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        pooled = roi_pool(self.trunk(images), caffe_rois(boxes, scene), self.roi_size, 1.0 / self.trunk.stride)
        hidden = F.relu(self.trunk.fc6(pooled.flatten(1)))
        return self.fc8(F.relu(self.trunk.fc7(hidden)))


def jitter_boxes(boxes: torch.Tensor, fraction: float, side: int, generator: torch.Generator) -> torch.Tensor:
    """Move each edge of ``boxes`` (K, 4) by up to ``fraction`` of the box's width / height, uniformly,
    kept inside the ``side`` x ``side`` scene and at least 1 px wide: boxes as a proposal method gives them."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    moved = boxes + (torch.rand(boxes.shape, generator=generator) * 2 - 1) * fraction * size
    moved = moved.clamp(0, side)
    moved[:, 2:] = torch.maximum(moved[:, 2:], moved[:, :2] + 1)
    return moved


def _fit(net: SceneClassifier, inputs: torch.Tensor, scenes: Scenes, train: torch.Tensor, cfg: PretrainConfig,
         progress: bool) -> list[dict[str, float]]:
    steps_per_epoch = len(train) // cfg.batch
    if steps_per_epoch == 0:
        raise ValueError(f"pretraining: {len(train)} training scenes are fewer than one batch of {cfg.batch}")
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                   pct_start=cfg.warmup_fraction)
    generator = torch.Generator().manual_seed(cfg.seed)
    boxes, labels = torch.from_numpy(scenes.boxes), torch.from_numpy(scenes.labels)
    owner = torch.from_numpy(scenes.scene)
    history = []
    net.train()
    for epoch in range(cfg.epochs):
        tic, total, seen = time.perf_counter(), 0.0, 0
        order = train[torch.randperm(len(train), generator=generator)]
        flips = torch.rand(steps_per_epoch, generator=generator) < 0.5
        bar = tqdm(range(steps_per_epoch), desc=f"pretraining epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress, mininterval=5)
        for step in bar:
            batch = order[step * cfg.batch:(step + 1) * cfg.batch].sort().values
            items = scenes.items_of(batch)
            if len(items) == 0:
                continue
            local = torch.searchsorted(batch, owner[items])   # each item's scene -> its position in the batch
            images = inputs[batch]
            item_boxes = jitter_boxes(boxes[items], cfg.box_jitter, cfg.side, generator)
            if flips[step]:
                images = images.flip(3)
                item_boxes = torch.stack([cfg.side - item_boxes[:, 2], item_boxes[:, 1],
                                          cfg.side - item_boxes[:, 0], item_boxes[:, 3]], dim=1)
            loss = F.cross_entropy(net(images, item_boxes, local), labels[items])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen = total + float(loss.detach()), seen + 1
        row = {"epoch": epoch + 1, "loss": total / max(seen, 1), "seconds": time.perf_counter() - tic}
        history.append(row)
        log.info("pretraining epoch %d/%d: loss %.4f (%.1f s)", epoch + 1, cfg.epochs, row["loss"], row["seconds"])
    return history


@torch.no_grad()
def _accuracy(net: nn.Module, inputs: torch.Tensor, scenes: Scenes, which: torch.Tensor,
              chunk: int = 64) -> dict[str, Any]:
    """Accuracy on the exact boxes of the items of scenes ``which``, overall and per class."""
    net.eval()
    predicted, targets = [], []
    for part in which.split(chunk):
        items = scenes.items_of(part)
        local = torch.searchsorted(part, torch.from_numpy(scenes.scene)[items])
        predicted.append(net(inputs[part], torch.from_numpy(scenes.boxes)[items], local).argmax(1))
        targets.append(torch.from_numpy(scenes.labels)[items])
    predicted, target = torch.cat(predicted), torch.cat(targets)
    per_class = {name: float((predicted[target == c] == c).float().mean())
                 for c, name in enumerate(PRETRAIN_CLASSES) if (target == c).any()}
    return {"overall": float((predicted == target).float().mean()), "per_class": per_class}
