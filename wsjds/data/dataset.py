"""Training samples for weakly supervised training: image, its stored proposals, image-level labels.

Training is a fixed sequence of *visits*: visit ``v`` is image ``order(epoch)[v % N]`` of epoch
``v // N``, augmented with a generator seeded by ``(seed, v)``. Every sample is therefore a pure
function of the seed and its visit index, whatever the number of workers or where a run resumed.
Proposals come only from the proposal store: ground-truth boxes never enter training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from wsjds.data.images import rgb_tensor
from wsjds.data.transforms import Augmentation, augment
from wsjds.proposals.store import ProposalStore
from wsjds.artifacts.pseudo_gt_store import PseudoGTStore


class LabelledImages(Protocol):
    """What training needs from a dataset split (VOCDataset and COCODataset provide it)."""

    ids: tuple[str, ...]

    def read_image(self, image_id: str) -> np.ndarray: ...

    def image_labels(self, image_id: str) -> np.ndarray: ...


@dataclass
class Sample:
    """One visit. ``image`` (3, H, W) float RGB 0-255 (the model normalises); ``rois`` (R, 4) in its
    pixels; ``scores`` (R,) proposal scores; ``labels`` (C,) image labels. ``view`` names the pixels
    when they depend only on (image, flip, scale), so a frozen trunk's output can be cached; else None."""

    visit: int
    image_id: str
    image: torch.Tensor
    rois: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    target_boxes: torch.Tensor | None = None    # (T, 4) Fast R-CNN training targets (pseudo GT)
    target_labels: torch.Tensor | None = None   # (T,) 0-based class indices
    view: tuple[str, bool, int] | None = None   # (image id, flipped, scale)


class VisitOrder:
    """Visit index -> image index: a fresh permutation of the N images per epoch, from the seed."""

    def __init__(self, num_images: int, seed: int):
        self.num_images, self.seed = num_images, seed
        self._permutation = lru_cache(maxsize=4)(self._make)

    def image_index(self, visit: int) -> int:
        epoch, position = divmod(visit, self.num_images)
        return int(self._permutation(epoch)[position])

    def _make(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0]).permutation(self.num_images)


class TrainingImages(Dataset):
    """``dataset[visit]`` -> :class:`Sample`. Images without any positive label are left out (as the
    authors' loader drops images without objects); :attr:`ids` lists the ones used."""

    def __init__(self, source: LabelledImages, proposals: str | Path, augmentation: Augmentation,
                 seed: int, max_proposals: int, total_visits: int,
                 targets: str | Path | None = None):
        self.source, self.proposals_path = source, Path(proposals)
        self.targets_path = None if targets is None else Path(targets)
        self.augmentation, self.seed = augmentation, seed
        self.max_proposals, self.total_visits = max_proposals, total_visits
        self.ids = tuple(i for i in source.ids if source.image_labels(i).any())
        self.skipped = len(source.ids) - len(self.ids)
        self.order = VisitOrder(len(self.ids), seed)
        self._store: ProposalStore | None = None   # opened lazily, once per worker process
        self._targets: PseudoGTStore | None = None

    def __len__(self) -> int:
        return self.total_visits

    def __getitem__(self, visit: int) -> Sample:
        image_id = self.ids[self.order.image_index(visit)]
        if self._store is None:
            self._store = ProposalStore.open(self.proposals_path)
        boxes, scores = self._store[image_id]
        boxes, scores = boxes[: self.max_proposals], scores[: self.max_proposals]
        targets = None
        if self.targets_path is not None:
            if self._targets is None:
                self._targets = PseudoGTStore.open(self.targets_path)
            target_boxes, target_labels, _ = self._targets[image_id]
            targets = (target_boxes, target_labels)
        rng = np.random.default_rng([self.seed, visit, 1])
        image, boxes, scores, targets, (flipped, scale) = augment(self.source.read_image(image_id), boxes, scores,
                                                                  rng, self.augmentation, targets)
        view = (image_id, flipped, scale) if self.augmentation.pixels_follow_view else None
        sample = Sample(visit=visit, image_id=image_id, image=rgb_tensor(image), rois=torch.from_numpy(boxes),
                        scores=torch.from_numpy(scores), labels=torch.from_numpy(self.source.image_labels(image_id)),
                        view=view)
        if targets is not None:
            sample.target_boxes = torch.from_numpy(targets[0])
            sample.target_labels = torch.from_numpy(targets[1].astype(np.int64))
        return sample


class VisitRange(Sampler[int]):
    """Visits ``start .. end - 1`` in order (one round, or the rest of an interrupted one). With
    ``share = (first, last)``, only the visits at offsets ``first .. last - 1`` of each update of
    ``visits_per_update`` (one training process's block, wsjds.distributed.Ranks.share)."""

    def __init__(self, start: int, end: int, visits_per_update: int = 1, share: tuple[int, int] | None = None):
        self.start, self.end = start, end
        self.visits_per_update = visits_per_update
        self.share = share or (0, visits_per_update)

    def __iter__(self):
        first, last = self.share
        return iter(v for v in range(self.start, self.end) if first <= v % self.visits_per_update < last)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def keep_sample(sample: Sample) -> Sample:
    """DataLoader collate for ``batch_size=None``: samples pass through unchanged."""
    return sample
