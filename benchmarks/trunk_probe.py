"""Linear probe of a frozen trunk: how well its fc7 features of ground-truth boxes separate the classes.

A diagnostic of the starting point WSOD gets, not a training method (the boxes are ground truth, used
only to measure). For every non-difficult object of the synthetic dataset's trainval and test images,
plus ``--background`` random boxes per image that overlap no object (IoU < 0.2), the image is
resized to ``--scale`` (shorter side), the frozen trunk's conv5 map is RoI-pooled as the detection
head does it, and fc6/fc7 (ReLU, no dropout) give a feature. A softmax classifier (classes +
background) is fitted on the trainval features and scored on the test ones.

    python benchmarks/trunk_probe.py --weights results/pretrained/synth_scenes.pth
    python benchmarks/trunk_probe.py --weights none        # the random trunk, for the floor
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torchvision.ops import box_iou, roi_pool

from wsjds.data.classes import classes_for
from wsjds.data.voc import VOCDataset
from wsjds.model.wsddn import caffe_rois
from wsjds.model.wsjds import build_model, weights_spec

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO / "results/synth/dataset"), help="the synthetic dataset")
    parser.add_argument("--model", default="vgg16_small", help="models.<name> of config.yaml")
    parser.add_argument("--weights", default="entry",
                        help="'entry' (the model's weights entry), a state-dict file of its family, or 'none' (random trunk)")
    parser.add_argument("--features", choices=["fc7", "pooled"], default="fc7",
                        help="probe fc7 (a pretrained box head) or the RoI-pooled trunk map (fresh fc6/fc7)")
    parser.add_argument("--scale", type=int, default=176, help="shorter image side (synth_cpu's middle scale)")
    parser.add_argument("--background", type=int, default=3, help="background boxes per image")
    parser.add_argument("--steps", type=int, default=500, help="full-batch Adam steps of the probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    model_cfg = dict(config["models"][args.model])
    entry = dict(config["weights"][model_cfg["weights"]])
    if args.weights not in ("entry", "none"):
        entry.update(path=args.weights, package=None)
    torch.manual_seed(args.seed)
    classes = tuple(classes_for("synthetic"))
    model = build_model(model_cfg, weights_spec(entry, with_file=args.weights != "none"), len(classes), with_segmentation=False).eval()
    train_x, train_y = features(model, VOCDataset(args.root, "trainval", classes), args)
    test_x, test_y = features(model, VOCDataset(args.root, "test", classes), args)
    predicted = fit_probe(train_x, train_y, test_x, len(classes) + 1, args.steps)
    names = list(classes) + ["background"]
    per_class = {name: float((predicted[test_y == c] == c).float().mean()) for c, name in enumerate(names)}
    objects = test_y < len(classes)
    print(json.dumps({"weights": args.weights, "scale": args.scale, "train_boxes": len(train_y),
                      "test_boxes": len(test_y), "accuracy": float((predicted == test_y).float().mean()),
                      "object_accuracy": float((predicted[objects] == test_y[objects]).float().mean()),
                      "per_class": per_class}, indent=2))


@torch.no_grad()
def features(model, dataset: VOCDataset, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """fc7 features (B, D) and labels (B,) of the objects and background boxes of every image."""
    rng = np.random.default_rng(args.seed)
    head = model.detection
    out_x, out_y = [], []
    for image_id in dataset.ids:
        image, annotation = dataset.read_image(image_id), dataset.annotation(image_id)
        height, width = image.shape[:2]
        factor = args.scale / min(height, width)
        resized = cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_LINEAR)
        keep = ~annotation.difficult
        boxes = torch.from_numpy(annotation.boxes[keep]).float() * factor
        labels = annotation.labels[keep].tolist()
        background = _background_boxes(rng, boxes, resized.shape[1], resized.shape[0], args.background)
        boxes = torch.cat([boxes, background])
        labels += [len(dataset.classes)] * len(background)
        tensor = torch.from_numpy(resized).permute(2, 0, 1).float()[None]
        pooled = roi_pool(model.features(tensor), caffe_rois(boxes), head.roi_size,
                          head.spatial_scale).flatten(1)
        out_x.append(pooled if args.features == "pooled" else F.relu(head.fc7(F.relu(head.fc6(pooled)))))
        out_y += labels
    return torch.cat(out_x), torch.tensor(out_y)


def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classes: int,
              steps: int) -> torch.Tensor:
    """Standardise with the training statistics, fit a softmax classifier, predict the test labels."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    probe = torch.nn.Linear(train_x.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(probe((train_x - mean) / std), train_y).backward()
        optimizer.step()
    with torch.no_grad():
        return probe((test_x - mean) / std).argmax(1)


def _background_boxes(rng: np.random.Generator, objects: torch.Tensor, width: int, height: int,
                      count: int) -> torch.Tensor:
    """``count`` random boxes 20-80 px across with IoU < 0.2 to every object (gives up after 200 tries)."""
    found = []
    for _ in range(200):
        if len(found) == count:
            break
        x0, y0 = rng.uniform(0, width - 30), rng.uniform(0, height - 30)
        w, h = rng.uniform(20, 80), rng.uniform(20, 80)
        box = torch.tensor([[x0, y0, min(x0 + w, width), min(y0 + h, height)]], dtype=torch.float32)
        if len(objects) == 0 or box_iou(box, objects).max() < 0.2:
            found.append(box)
    return torch.cat(found) if found else torch.zeros(0, 4)


if __name__ == "__main__":
    main()
