"""A frozen trunk's output per view of an image, computed once per training job and reused.

The frozen part of the trunk is a fixed function of its input, and with an augmentation that only
flips and rescales (``Augmentation.pixels_follow_view``) the input of a visit is fixed by its view
(image id, flip, scale). Epochs after the first then run only the trainable layers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch



class FrozenFeatureCache:
    """``features(view, image)`` -> ``model.frozen_features(image)`` (a WS-JDS or Fast R-CNN model) of ``image`` (1, 3, H, W), from memory
    after the first call for ``view``; None when there is nothing to cache (no view, or no frozen
    layer). ``hits`` and ``misses`` count the calls."""

    def __init__(self, model: torch.nn.Module, enabled: bool = True):
        self.model, self.enabled = model, enabled
        self._store: dict[Hashable, torch.Tensor] = {}
        self.hits = self.misses = 0

    @classmethod
    def of_run(cls, model: torch.nn.Module, settings: Mapping[str, Any]) -> "FrozenFeatureCache":
        """The cache of a training run: on when its recipe says ``feature_cache: true``."""
        return cls(model, settings["training"]["feature_cache"])

    def features(self, view: Hashable | None, image: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled or view is None or self.model.backbone.frozen_layers == 0:
            return None
        cached = self._store.get(view)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        with torch.no_grad():
            cached = self.model.frozen_features(image)
        self._store[view] = cached
        return cached

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._store.values())
