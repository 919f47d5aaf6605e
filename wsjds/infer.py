"""WSOD inference: test-time augmentation over scales and flips, per-class NMS, a cap per image.

For each image the model scores its stored proposals once per pass (every scale, unflipped and
flipped); the passes' proposal-by-class scores x_rc are averaged (the paper; the authors' code
sums, which ranks identically). Per class, proposals above the score threshold go through NMS, and
the image keeps its best ``max_detections``. Boxes are the proposals themselves (no regression).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms
from tqdm import tqdm

from wsjds.data.images import rgb_tensor
from wsjds.data.transforms import hflip, scale_factor
from wsjds.detections import DetectionStore, DetectionWriter, ProposalScoresWriter
from wsjds.model.wsjds import WSJDSModel
from wsjds.proposals.postprocess import check_ids
from wsjds.proposals.store import ProposalStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceConfig:
    """An ``inference.<preset>`` entry of config.yaml (sources there)."""

    scales: tuple[int, ...]
    max_side: int
    flip: bool
    max_proposals: int
    nms_iou: float
    max_detections: int
    score_threshold: float

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "InferenceConfig":
        return cls(tuple(cfg["scales"]), cfg["max_side"], cfg["flip"], cfg["max_proposals"], cfg["nms_iou"],
                   cfg["max_detections"], cfg["score_threshold"])


@torch.no_grad()
def proposal_scores(model: WSJDSModel, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                    cfg: InferenceConfig, device: torch.device) -> np.ndarray:
    """Mean over the test-time passes of x_rc: (R, C) float32 for ``boxes`` (R, 4) of ``image`` (H, W, 3) RGB."""
    height, width = image.shape[:2]
    total = None
    passes = 0
    for scale in cfg.scales:
        factor = scale_factor(height, width, scale, cfg.max_side)
        new_w, new_h = max(1, int(round(width * factor))), max(1, int(round(height * factor)))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        rois = boxes * np.array([new_w / width, new_h / height] * 2, np.float32)
        for flipped in ((False, True) if cfg.flip else (False,)):
            pixels, pass_rois = hflip(resized, rois) if flipped else (resized, rois)
            out = model(rgb_tensor(pixels)[None].to(device), torch.from_numpy(pass_rois).to(device),
                        torch.from_numpy(scores).to(device) if model.detection.score_boost else None)
            x = out.det.x.float().cpu()
            total = x if total is None else total + x
            passes += 1
    return (total / passes).numpy()


def postprocess(boxes: np.ndarray, x: np.ndarray, cfg: InferenceConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class NMS and the per-image cap. ``x`` (R, C) scores; ``boxes`` (R, 4) shared by all classes
    (WSDDN scores proposals) or (R, C, 4) per class (Fast R-CNN regresses them). Returns the kept
    boxes (K, 4), scores (K,) and 0-based labels (K,), best first."""
    rows, labels = np.nonzero(x > cfg.score_threshold)
    if rows.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    candidates = boxes[rows] if boxes.ndim == 2 else boxes[rows, labels]
    cand_scores = torch.from_numpy(x[rows, labels]).float()
    keep = batched_nms(torch.from_numpy(candidates).float(), cand_scores, torch.from_numpy(labels), cfg.nms_iou)
    keep = keep[: cfg.max_detections].numpy()
    return candidates[keep].astype(np.float32), x[rows[keep], labels[keep]].astype(np.float32), labels[keep].astype(np.int64)


Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def wsddn_scorer(model: WSJDSModel, cfg: InferenceConfig, device: torch.device) -> Scorer:
    """``(image, boxes, scores) -> (x (R, C), boxes (R, 4))`` for the WSOD model."""
    model.eval()
    return lambda image, boxes, scores: (proposal_scores(model, image, boxes, scores, cfg, device), boxes)


def detect_split(scorer: Scorer, source, proposals: str | Path, image_ids: Sequence[str], out: str | Path,
                 cfg: InferenceConfig, *, dataset: str, split: str, classes: Sequence[str], source_name: str,
                 raw_scores_out: str | Path | None = None, progress: bool = True) -> int:
    """Detect ``image_ids`` with ``scorer`` and write them (atomically) to a detections store at
    ``out``; optionally also the raw per-proposal scores (for pseudo-GT mining). Returns the count."""
    parameters = {"scales": list(cfg.scales), "max_side": cfg.max_side, "flip": cfg.flip, "nms_iou": cfg.nms_iou,
                  "max_detections": cfg.max_detections, "score_threshold": cfg.score_threshold,
                  "max_proposals": cfg.max_proposals}
    with ExitStack() as stack:
        store = stack.enter_context(ProposalStore.open(proposals))
        writer = stack.enter_context(DetectionWriter(out, dataset=dataset, split=split, classes=classes,
                                                     source=source_name, parameters=parameters))
        raw_writer = None
        if raw_scores_out is not None:
            raw_writer = stack.enter_context(ProposalScoresWriter(raw_scores_out, dataset=dataset, split=split,
                                                                  classes=classes, source=source_name,
                                                                  parameters=parameters))
        for image_id in tqdm(image_ids, desc=f"detect {split}", unit="img", disable=not progress):
            boxes, scores = store[image_id]
            boxes, scores = boxes[: cfg.max_proposals], scores[: cfg.max_proposals]
            width, height = store.image_size(image_id)
            x, scored_boxes = scorer(source.read_image(image_id), boxes, scores)
            writer.append(image_id, width, height, *postprocess(scored_boxes, x, cfg))
            if raw_writer is not None:
                raw_writer.append(image_id, width, height, boxes, x)
    return len(image_ids)


def merge_detections(shards: Sequence[str | Path], out: str | Path, expected_ids: Sequence[str], *,
                     dataset: str, split: str) -> int:
    """Join detection shards into one store in split order; every id exactly once."""
    stores = [DetectionStore.open(p, dataset=dataset, split=split) for p in shards]
    try:
        owner = {}
        found = []
        for store in stores:
            found += list(store.image_ids)
            owner.update({i: store for i in store.image_ids})
        check_ids(found, expected_ids, path=", ".join(map(str, shards)), split=split)
        first = stores[0].header
        with DetectionWriter(out, dataset=dataset, split=split, classes=stores[0].classes, source=first.source,
                             parameters=dict(first.parameters)) as writer:
            for image_id in expected_ids:
                det = owner[image_id][image_id]
                writer.append(image_id, *owner[image_id].image_size(image_id), det.boxes, det.scores, det.labels)
        return len(expected_ids)
    finally:
        for store in stores:
            store.close()
