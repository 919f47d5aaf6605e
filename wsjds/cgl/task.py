"""The CGL training task: the WS-JDS network, its center-loss memory and the per-image objective,
as the training engine (wsjds.stages.train) drives it."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch

from wsjds.cgl.losses import CenterLoss
from wsjds.cgl.objective import CGLConfig, Method, Objective, cgl_objective
from wsjds.data.dataset import Sample
from wsjds.model.feature_cache import FrozenFeatureCache
from wsjds.model.wsjds import WSJDSModel, build_model, weights_spec


class CGLTask:
    """``model`` is optimised; ``state_modules`` are saved with it; ``objective`` scores one visit."""

    def __init__(self, settings: Mapping[str, Any], device: torch.device, amp_bf16: bool = False):
        self.method = Method.from_config(settings["method"])
        self.cgl = CGLConfig.from_config(settings["cgl"])
        self.guidance_fraction = settings["cgl"]["guidance_fraction"]
        weights = weights_spec(settings["weights"])
        num_classes = len(settings["classes"])
        self.model: WSJDSModel = build_model(settings["model"], weights, num_classes, self.method.segmentation).to(device)
        center = settings["cgl"]["center_loss"]
        init_seed = settings["training"]["seed"] if center["init_seed"] is None else center["init_seed"]
        self.center = CenterLoss(num_classes, self.model.detection.fc7.out_features, center["centres"], center["top_k"],
                                 center["lr"], generator=torch.Generator().manual_seed(init_seed)).to(device)
        self.center_every = center["update_every_images"]
        self.state_modules = {"center": self.center}
        self.accumulators = [self.center.delta, self.center.counts]
        self.cache = FrozenFeatureCache.of_run(self.model, settings)
        self.device = device
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp_bf16 and device.type == "cuda" \
            else nullcontext

    def objective(self, sample: Sample, progress: float) -> Objective:
        """The CGL objective of one visit; guidance is on for the first ``guidance_fraction`` of the run."""
        image = sample.image[None].to(self.device)
        with self.autocast():
            return cgl_objective(self.model, image, sample.rois.to(self.device),
                                 sample.scores.to(self.device) if self.model.detection.score_boost else None,
                                 sample.labels.to(self.device), self.method, self.cgl,
                                 progress < self.guidance_fraction, self.center,
                                 frozen_features=self.cache.features(sample.view, image))

    def after_update(self, visits_done: int, visits_per_update: int) -> None:
        """Move the center-loss centres once per ``update_every_images`` visits (reference §2.5), at
        the end of the update that reaches the multiple."""
        if visits_done // self.center_every > (visits_done - visits_per_update) // self.center_every:
            self.center.update_centres()
