"""Fast R-CNN retrained on pseudo ground truth, assembled from ``torchvision.models.detection`` parts.

The trunk of the WSOD model's backbone family (same weights conventions), 7x7 RoI max-pooling over the
stored proposals (no RPN), ``TwoMLPHead`` initialised from VGG's fc6/fc7, ``FastRCNNPredictor``
with a background class, and ``RoIHeads`` for the classic sampling (foreground IoU >= 0.5, 25 %
foreground of 128 RoIs per image) and losses. Training targets are the pseudo-GT boxes only; the
dataset's annotations are never read. Class indices are 0-based outside this module; the
background column is added here and removed at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import roi_pool

from wsjds.cgl.objective import Objective
from wsjds.data.dataset import Sample
from wsjds.data.images import read_rgb, rgb_tensor
from wsjds.data.transforms import inference_views
from wsjds.stages.infer import InferenceConfig
from wsjds.model.backbone import PixelConvention
from wsjds.model.backbones import build_backbone
from wsjds.model.feature_cache import FrozenFeatureCache
from wsjds.model.trunk import LayeredTrunk
from wsjds.model.wsjds import Normalise, weights_spec
from wsjds.model.wsddn import caffe_rois


class FastRCNN(nn.Module):
    """Normalisation + trunk + RoIHeads. ``forward(image (1, 3, H, W) RGB 0-255, rois (R, 4), targets)``
    returns the loss dict in training and (class probabilities (R, C + 1), decoded boxes (R, C + 1, 4))
    in eval mode."""

    def __init__(self, backbone: LayeredTrunk, fc6: nn.Linear, fc7: nn.Linear, num_classes: int,
                 head: Mapping[str, Any], pixels: PixelConvention):
        super().__init__()
        self.normalise = Normalise(pixels)
        self.backbone = backbone
        box_head = TwoMLPHead(backbone.out_channels * head["roi_size"] ** 2, fc6.out_features)
        box_head.fc6.load_state_dict(fc6.state_dict())
        box_head.fc7.load_state_dict(fc7.state_dict())
        self.roi_heads = RoIHeads(
            box_roi_pool=_RoIPool(head["roi_size"], 1.0 / backbone.stride), box_head=box_head,
            box_predictor=FastRCNNPredictor(fc6.out_features, num_classes + 1),
            fg_iou_thresh=head["fg_iou"], bg_iou_thresh=head["bg_iou"],
            batch_size_per_image=head["rois_per_image"], positive_fraction=head["positive_fraction"],
            bbox_reg_weights=tuple(head["bbox_reg_weights"]), score_thresh=0.0, nms_thresh=1.0,
            detections_per_img=1_000_000,   # post-processing happens in wsjds.stages.infer, after test-time averaging
        )

    def forward(self, image: torch.Tensor, rois: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None,
                frozen_features: torch.Tensor | None = None):
        if frozen_features is None:
            frozen_features = self.frozen_features(image)
        features = {"0": self.backbone.tail_forward(frozen_features)}
        shapes = [tuple(image.shape[-2:])]
        if self.training:
            _, losses = self.roi_heads(features, [rois], shapes, targets)
            return losses
        heads = self.roi_heads
        box_features = heads.box_head(heads.box_roi_pool(features, [rois], shapes))
        class_logits, box_regression = heads.box_predictor(box_features)
        boxes = heads.box_coder.decode(box_regression, [rois])                     # (R, C + 1, 4)
        return F.softmax(class_logits, dim=-1), boxes

    def frozen_features(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen part of the trunk on ``image`` (1, 3, H, W) RGB 0-255 (what the cache keeps)."""
        return self.backbone.frozen_forward(self.normalise(image))


class FastRCNNTask:
    """The Fast R-CNN training task for :mod:`wsjds.stages.train`: pseudo-GT targets, RoIHeads losses."""

    def __init__(self, settings: Mapping[str, Any], device: torch.device, amp_bf16: bool = False,
                 wsod_state: Mapping[str, torch.Tensor] | None = None):
        self.model = build_frcnn(settings, wsod_state=wsod_state).to(device)
        self.cache = FrozenFeatureCache.of_run(self.model, settings)
        self.state_modules: dict[str, nn.Module] = {}
        self.accumulators: list[torch.Tensor] = []
        self.device = device
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp_bf16 and device.type == "cuda" \
            else nullcontext

    def objective(self, sample: Sample, progress: float) -> Objective:
        if sample.target_boxes is None:
            raise ValueError(f"image {sample.image_id}: Fast R-CNN training needs pseudo-GT targets")
        targets = [{"boxes": sample.target_boxes.to(self.device),
                    "labels": sample.target_labels.to(self.device) + 1}]       # + 1: background is class 0
        with self.autocast():
            image = sample.image[None].to(self.device)
            losses = self.model(image, sample.rois.to(self.device), targets,
                                frozen_features=self.cache.features(sample.view, image))
        loss = losses["loss_classifier"] + losses["loss_box_reg"]
        return Objective(loss=loss, terms={k: float(v.detach()) for k, v in losses.items()},
                         stats={"targets": float(len(sample.target_boxes))})

    def after_update(self, visits_done: int, visits_per_update: int) -> None:
        """Nothing outside SGD to update."""


def build_frcnn(settings: Mapping[str, Any], wsod_state: Mapping[str, torch.Tensor] | None = None,
                pretrained: bool = True) -> FastRCNN:
    """The network of ``settings`` (see :func:`wsjds.workflow.frcnn_settings`). With ``pretrained``,
    ``init: wsod`` starts the trunk and fc6/fc7 from the trained WSOD model's ``wsod_state`` and
    ``init: imagenet`` from the weights file; without, weights are left for a checkpoint to fill."""
    model_cfg, head = settings["model"], settings["frcnn"]
    init_from_wsod = pretrained and head["init"] == "wsod"
    no_file = init_from_wsod or not pretrained
    weights = weights_spec(settings["weights"], with_file=not no_file)
    parts = build_backbone(model_cfg, weights, freeze=head["freeze_backbone"])
    backbone, fc6, fc7 = parts.trunk, parts.fc6, parts.fc7
    if init_from_wsod:
        if wsod_state is None:
            raise ValueError("frcnn.init is 'wsod' but no WSOD checkpoint was given")
        backbone.load_state_dict({k[len("backbone."):]: v for k, v in wsod_state.items() if k.startswith("backbone.")})
        fc6.load_state_dict({"weight": wsod_state["detection.fc6.weight"], "bias": wsod_state["detection.fc6.bias"]})
        fc7.load_state_dict({"weight": wsod_state["detection.fc7.weight"], "bias": wsod_state["detection.fc7.bias"]})
    return FastRCNN(backbone, fc6, fc7, len(settings["classes"]), head, weights.pixels)


def frcnn_scorer(model: FastRCNN, cfg: InferenceConfig, device: torch.device):
    """``(image, boxes, scores) -> (scores (R, C), boxes (R, C, 4))`` for :func:`wsjds.stages.infer.detect_split`."""
    return lambda image, boxes, scores: frcnn_scores(model, image, boxes, cfg, device)


@torch.no_grad()
def frcnn_scores(model: FastRCNN, image: np.ndarray, boxes: np.ndarray, cfg: InferenceConfig,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Test-time passes (scales x flips) averaged: class scores (R, C) without background, and the
    regressed boxes (R, C, 4) in original-image coordinates."""
    model.eval()
    height, width = image.shape[:2]
    total_scores, total_boxes, passes = None, None, 0
    for view in inference_views(image, boxes, cfg.scales, cfg.max_side, cfg.flip):
        probs, decoded = model(rgb_tensor(view.pixels)[None].to(device), torch.from_numpy(view.rois).to(device))
        decoded = view.boxes_to_image(decoded.float().cpu().numpy())
        total_scores = probs.float().cpu().numpy() + (0 if total_scores is None else total_scores)
        total_boxes = decoded + (0 if total_boxes is None else total_boxes)
        passes += 1
    scores, out_boxes = total_scores / passes, total_boxes / passes
    out_boxes[..., [0, 2]] = out_boxes[..., [0, 2]].clip(0, width)
    out_boxes[..., [1, 3]] = out_boxes[..., [1, 3]].clip(0, height)
    return scores[:, 1:].astype(np.float32), out_boxes[:, 1:].astype(np.float32)


class _RoIPool(nn.Module):
    """RoIHeads' ``box_roi_pool`` interface over one feature map with torchvision's ``roi_pool``
    (Caffe's inclusive-pixel RoIs, as in the WSDDN head)."""

    def __init__(self, output_size: int, spatial_scale: float):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        batch_index = torch.cat([torch.full((len(p),), i, device=p.device) for i, p in enumerate(proposals)])
        return roi_pool(features["0"], caffe_rois(torch.cat(proposals), batch_index), self.output_size,
                        self.spatial_scale)


class PseudoGTImages:
    """The training images of Fast R-CNN as the training engine sees them: ids, pixels and image
    labels all come from the pseudo-GT store and the image files (``image_path``: id -> file, a
    reader's method that opens no annotation); the dataset's real boxes are never opened."""

    def __init__(self, image_path: Callable[[str], Path], pseudo_gt: str | Path):
        from wsjds.artifacts.pseudo_gt_store import PseudoGTStore

        self.image_path = image_path
        with PseudoGTStore.open(pseudo_gt) as store:
            self.ids: tuple[str, ...] = store.image_ids
            self._sizes = {i: store.image_size(i) for i in store.image_ids}
            self._labels = {i: np.unique(store[i][1]) for i in store.image_ids}
            self.num_classes = len(store.classes)

    def read_image(self, image_id: str) -> np.ndarray:
        return read_rgb(self.image_path(image_id), image_id, expected_size=self._sizes[image_id])

    def image_labels(self, image_id: str) -> np.ndarray:
        labels = np.zeros(self.num_classes, np.float32)
        labels[self._labels[image_id]] = 1.0
        return labels
