"""Trunk pretraining on synthetic object crops: the synthetic dataset's stand-in for ImageNet.

WS-JDS starts from an ImageNet-trained VGG16 and keeps conv1-conv5 frozen (reference §1.1, §8.2).
No ImageNet model exists for the small synthetic trunk, and training it from scratch on a few
hundred weakly labelled images learns nothing (BENCHMARKS.md). So, as ImageNet does for VOC, a
fully supervised classification task on *other* images gives the trunk its features: square crops,
each centred on one object of a synthetic class or one distractor shape, drawn by the synthetic
generator from a random stream disjoint from every dataset split. The network is the trunk with a
BatchNorm after every conv (so it trains from scratch in minutes), then fc6/fc7 on the 7x7 conv5
map of a crop (exactly what RoI pooling gives the detection head) and a classifier. At the end each
BatchNorm is folded into its conv, and the plain trunk with fc6/fc7 is written as a VGG16 state
dict in torchvision's key layout: the detector loads it like the ImageNet file.
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
from tqdm import tqdm

from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.synthetic import DISTRACTOR_KINDS, SPLITS, SynthConfig, generate_crop
from wsjds.io import atomic_path
from wsjds.model.backbone import VGGC5D
from wsjds.model.wsjds import weights_spec

log = logging.getLogger(__name__)

PRETRAIN_CLASSES: tuple[str, ...] = SYNTH_CLASSES + DISTRACTOR_KINDS
CROP_STREAM = len(SPLITS)   # generator stream of the crops; dataset split k uses stream k


@dataclass(frozen=True)
class PretrainConfig:
    """A ``pretraining.<name>`` entry of config.yaml (sources there)."""

    crops: int                       # crops generated (classes in turn)
    held_out: int                    # of which the first ones are held out to measure accuracy
    side: int                        # crop side in px
    object_size: tuple[float, float]  # object extent / crop side
    centre_jitter: float             # std of the object's offset from the crop centre / side
    head_fraction: float             # marker diameter / body length (as the dataset generator)
    seed: int
    epochs: int
    batch: int
    lr: float                        # peak learning rate of the one-cycle schedule (AdamW)
    dropout: float                   # on fc6/fc7 while pretraining
    warmup_fraction: float
    weight_decay: float
    bn_eps: float                    # BatchNorm eps (also used when folding)

    @classmethod
    def from_config(cls, cfg: Mapping) -> "PretrainConfig":
        values = dict(cfg)
        values["object_size"] = tuple(values["object_size"])
        return cls(**values)


def pretrain_trunk(settings: Mapping[str, Any], out: str | Path, report: str | Path,
                   progress: bool = True) -> dict[str, Any]:
    """Train the trunk of ``settings["model"]`` on crops and write it to ``out`` (atomically).

    ``settings`` holds ``model`` (a models.<name> entry), ``weights`` (its weights entry: the pixel
    convention) and ``pretraining`` (a :class:`PretrainConfig` entry). Returns the report also
    written to ``report``: held-out accuracy overall and per class, and the loss per epoch.
    """
    cfg = PretrainConfig.from_config(settings["pretraining"])
    if not 0 < cfg.held_out < cfg.crops:
        raise ValueError(f"pretraining: held_out must be in 1..crops-1, got {cfg.held_out} of {cfg.crops}")
    model_cfg = settings["model"]
    pixels = weights_spec(settings["weights"]).pixels
    torch.manual_seed(cfg.seed)
    images, labels = make_crops(cfg)
    inputs = pixels.normalise(torch.from_numpy(images).permute(0, 3, 1, 2)).contiguous()
    targets = torch.from_numpy(labels)
    trunk = VGGC5D(tuple(model_cfg["widths"]), model_cfg["fc_dim"], model_cfg["roi_size"])
    net = CropClassifier(trunk, len(PRETRAIN_CLASSES), cfg.dropout, cfg.bn_eps)
    if tuple(net(inputs[:1]).shape) != (1, len(PRETRAIN_CLASSES)):
        raise ValueError(f"pretraining: crops of {cfg.side} px do not give a {model_cfg['roi_size']}^2 conv5 map")
    history = _fit(net, inputs[cfg.held_out:], targets[cfg.held_out:], cfg, progress)
    net.eval()
    accuracy = _accuracy(net, inputs[:cfg.held_out], targets[:cfg.held_out])
    plain = net.folded_trunk()
    folded_accuracy = _accuracy(_PlainClassifier(plain, net.fc8), inputs[:cfg.held_out], targets[:cfg.held_out])
    state = {f"features.{k}": v for k, v in plain.features.state_dict().items()}
    state.update({"classifier.0.weight": plain.fc6.weight.detach(), "classifier.0.bias": plain.fc6.bias.detach(),
                  "classifier.3.weight": plain.fc7.weight.detach(), "classifier.3.bias": plain.fc7.bias.detach()})
    with atomic_path(out) as tmp:
        torch.save({k: v.clone().contiguous() for k, v in state.items()}, tmp)
    result = {"classes": list(PRETRAIN_CLASSES), "held_out": cfg.held_out, "trained_on": cfg.crops - cfg.held_out,
              "accuracy": accuracy["overall"], "per_class_accuracy": accuracy["per_class"],
              "folded_accuracy": folded_accuracy["overall"], "epochs": history}
    with atomic_path(report) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    log.info("pretraining done: held-out accuracy %.4f (after folding BatchNorm: %.4f)", accuracy["overall"],
             folded_accuracy["overall"])
    return result


def make_crops(cfg: PretrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, side, side, 3) uint8 crops and (N,) int64 labels into PRETRAIN_CLASSES, classes in turn;
    crop i is a function of (seed, i) only."""
    generator = SynthConfig(seed=cfg.seed, head_fraction=cfg.head_fraction)
    labels = np.arange(cfg.crops, dtype=np.int64) % len(PRETRAIN_CLASSES)
    images = np.empty((cfg.crops, cfg.side, cfg.side, 3), np.uint8)
    for i in tqdm(range(cfg.crops), desc="pretraining crops", unit="crop", mininterval=5):
        rng = np.random.default_rng([cfg.seed, CROP_STREAM, i])
        images[i] = generate_crop(rng, generator, cfg.side, int(labels[i]), cfg.object_size,
                                   cfg.centre_jitter).image
    return images, labels


class CropClassifier(nn.Module):
    """The trunk with a BatchNorm after every conv, fc6/fc7 on the flattened conv5 map, fc8.
    Input (N, 3, side, side); output (N, classes) logits. Shares its convs and fc6/fc7 with ``trunk``."""

    def __init__(self, trunk: VGGC5D, num_classes: int, dropout: float, bn_eps: float):
        super().__init__()
        self.trunk = trunk
        layers: list[nn.Module] = []
        for layer in trunk.features:
            layers.append(layer)
            if isinstance(layer, nn.Conv2d):
                layers.append(nn.BatchNorm2d(layer.out_channels, eps=bn_eps))
        self.features = nn.Sequential(*layers)
        self.fc6, self.fc7 = trunk.fc6, trunk.fc7
        self.dropout = nn.Dropout(dropout)
        self.fc8 = nn.Linear(trunk.fc_dim, num_classes)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(F.relu(self.fc6(self.features(crops).flatten(1))))
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

    def __init__(self, trunk: VGGC5D, fc8: nn.Linear):
        super().__init__()
        self.trunk, self.fc8 = trunk, fc8

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.trunk.fc6(self.trunk(crops).flatten(1)))
        return self.fc8(F.relu(self.trunk.fc7(hidden)))


def _fit(net: CropClassifier, inputs: torch.Tensor, targets: torch.Tensor, cfg: PretrainConfig,
         progress: bool) -> list[dict[str, float]]:
    steps_per_epoch = len(inputs) // cfg.batch
    if steps_per_epoch == 0:
        raise ValueError(f"pretraining: {len(inputs)} training crops are fewer than one batch of {cfg.batch}")
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                   pct_start=cfg.warmup_fraction)
    generator = torch.Generator().manual_seed(cfg.seed)
    history = []
    net.train()
    for epoch in range(cfg.epochs):
        tic, total = time.perf_counter(), 0.0
        order = torch.randperm(len(inputs), generator=generator)
        flips = torch.rand(steps_per_epoch, generator=generator) < 0.5
        bar = tqdm(range(steps_per_epoch), desc=f"pretraining epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress, mininterval=5)
        for step in bar:
            index = order[step * cfg.batch:(step + 1) * cfg.batch]
            batch = inputs[index].flip(3) if flips[step] else inputs[index]
            loss = F.cross_entropy(net(batch), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        row = {"epoch": epoch + 1, "loss": total / steps_per_epoch, "seconds": time.perf_counter() - tic}
        history.append(row)
        log.info("pretraining epoch %d/%d: loss %.4f (%.1f s)", epoch + 1, cfg.epochs, row["loss"], row["seconds"])
    return history


@torch.no_grad()
def _accuracy(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    net.eval()
    predicted = torch.cat([net(chunk).argmax(1) for chunk in inputs.split(256)])
    per_class = {name: float((predicted[targets == c] == c).float().mean())
                 for c, name in enumerate(PRETRAIN_CLASSES) if (targets == c).any()}
    return {"overall": float((predicted == targets).float().mean()), "per_class": per_class}

