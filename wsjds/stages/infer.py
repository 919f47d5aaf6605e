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

import numpy as np
import torch
from torchvision.ops import batched_nms
from tqdm import tqdm

from wsjds.data.images import rgb_tensor
from wsjds.data.transforms import inference_views
from wsjds.artifacts.detections import DetectionWriter, ProposalScoresWriter
from wsjds.model.wsjds import WSJDSModel
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
        """The preset's numbers as the field types (a YAML ``0`` for a float field stays a float)."""
        return cls(tuple(int(s) for s in cfg["scales"]), int(cfg["max_side"]), bool(cfg["flip"]),
                   int(cfg["max_proposals"]), float(cfg["nms_iou"]), int(cfg["max_detections"]),
                   float(cfg["score_threshold"]))


@torch.no_grad()
def proposal_scores(model: WSJDSModel, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                    cfg: InferenceConfig, device: torch.device) -> np.ndarray:
    """Mean over the test-time passes of x_rc: (R, C) float32 for ``boxes`` (R, 4) of ``image`` (H, W, 3) RGB."""
    total = None
    passes = 0
    for view in inference_views(image, boxes, cfg.scales, cfg.max_side, cfg.flip):
        out = model(rgb_tensor(view.pixels)[None].to(device), torch.from_numpy(view.rois).to(device),
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
