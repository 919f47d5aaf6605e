"""Pseudo ground truth for Fast R-CNN retraining: boxes mined from WSOD scores on the training split.

For every image and every **positive** image-level class (all classes, the last one included), a
policy picks boxes among that class's candidates, ranked by their **true** score (never by file
order):

* ``top1`` (default; paper §4.2 "Testing", reference §6.5 with single-pass scores): the top box;
* ``threshold``: every box with score >= ``score_threshold``; with ``fallback_top1`` (the authors'
  ``_add_pseudo_gt_annotations``) the top box when none qualifies;
* ``topk``: the ``top_k`` highest-scoring boxes.

Candidates come from the WSOD detections file (``wsjds.detections``: the detections of the class)
or from the raw per-proposal scores (``wsjds.proposal_scores``: every proposal, scored for the
class). Equal scores keep stored order. The result is ``wsjds.pseudo_gt`` HDF5 (:mod:`wsjds.artifacts.pseudo_gt_store`;
per image sorted by class, then descending score) plus a JSON sanity report: boxes per class and, where real boxes exist, the
CorLoc and precision of the pseudo boxes against them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import h5py
import numpy as np

from wsjds.errors import ArtifactError
from wsjds.artifacts.detections import (DETECTIONS_FORMAT, PROPOSAL_SCORES_FORMAT, DetectionStore,
                              ProposalScoresStore)
from wsjds.evaluation.corloc import CORLOC_DEFINITIONS, evaluate_corloc
from wsjds.evaluation.detections_io import FlatDetections
from wsjds.evaluation.ground_truth import GroundTruth
from wsjds.evaluation.matching import best_overlaps
from wsjds.artifacts.hdf5 import Header, RaggedWriter
from wsjds.io import write_json
from wsjds.artifacts.pseudo_gt_store import PSEUDO_GT_FIELDS, PSEUDO_GT_FORMAT, PSEUDO_GT_VERSION

log = logging.getLogger(__name__)

POLICIES: tuple[str, ...] = ("top1", "threshold", "topk")


@dataclass(frozen=True)
class ReportMatching:
    """How the sanity report compares pseudo boxes with real ones (config ``evaluation``):
    ``iou_threshold`` for a pseudo box to count as correct, ``corloc_definition`` of its CorLoc."""

    iou_threshold: float
    corloc_definition: str

    def __post_init__(self) -> None:
        if self.corloc_definition not in CORLOC_DEFINITIONS:
            raise ValueError(f"unknown CorLoc definition {self.corloc_definition!r}; expected one of "
                             f"{list(CORLOC_DEFINITIONS)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ReportMatching":
        """``{iou_threshold, corloc_definition}`` (config ``evaluation``)."""
        return cls(float(cfg["iou_threshold"]), str(cfg["corloc_definition"]))


@dataclass(frozen=True)
class PseudoGTPolicy:
    """Which candidates of a positive class become pseudo boxes (see module docstring)."""

    kind: str = "top1"
    score_threshold: float | None = None
    top_k: int | None = None
    fallback_top1: bool = True

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ValueError(f"unknown pseudo-GT policy {self.kind!r}; expected one of {list(POLICIES)}")
        if self.kind == "threshold" and (self.score_threshold is None or not np.isfinite(self.score_threshold)):
            raise ValueError("the threshold policy needs a finite score_threshold")
        if self.kind == "topk" and (self.top_k is None or self.top_k < 1):
            raise ValueError(f"the topk policy needs top_k >= 1, got {self.top_k}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "PseudoGTPolicy":
        """Config ``pseudo_gt``: ``{policy, score_threshold, top_k, fallback_top1}`` (null where unused)."""
        threshold, top_k = cfg["score_threshold"], cfg["top_k"]
        return cls(str(cfg["policy"]), None if threshold is None else float(threshold),
                   None if top_k is None else int(top_k), bool(cfg["fallback_top1"]))

    def select(self, scores: np.ndarray) -> np.ndarray:
        """Indices of the chosen candidates among (K,) ``scores``, by descending score (ties: stored order)."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.kind == "top1":
            return np.array([int(np.argmax(scores))], dtype=np.int64)
        ranked = np.argsort(-scores, kind="stable")
        if self.kind == "topk":
            return ranked[: self.top_k].astype(np.int64)
        chosen = ranked[scores[ranked] >= self.score_threshold]
        if chosen.size == 0 and self.fallback_top1:
            chosen = ranked[:1]
        return chosen.astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LabelledSplit(Protocol):
    """What mining needs from a dataset split (VOCDataset and COCODataset both provide it)."""

    ids: tuple[str, ...]
    classes: tuple[str, ...]

    def image_labels(self, image_id: str) -> np.ndarray: ...

    def image_size(self, image_id: str) -> tuple[int, int]: ...


class CandidateSource(Protocol):
    """Scored boxes per image and class: a detections file or a raw proposal-scores file."""

    path: Path
    classes: tuple[str, ...]
    format: str

    def __contains__(self, image_id: object) -> bool: ...

    def candidates(self, image_id: str, labels: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{class: (boxes (K, 4), scores (K,))}`` for the requested classes of one image."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PseudoImage:
    """Pseudo boxes of one image; ``missing`` lists positive classes that had no candidate at all."""

    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    missing: tuple[int, ...]


def make_pseudo_gt(source_path: str | Path, split_data: LabelledSplit, out: str | Path, report: str | Path | None,
                   *, dataset: str, split: str, policy: PseudoGTPolicy,
                   ground_truth: GroundTruth | None = None, matching: ReportMatching | None = None) -> dict[str, Any]:
    """Mine, write ``out`` (``wsjds.pseudo_gt``) and the sanity ``report`` JSON; returns the report.
    With ``ground_truth`` the report also scores the pseudo boxes, as ``matching`` says."""
    if ground_truth is not None and matching is None:
        raise ValueError("scoring pseudo boxes against ground truth needs the matching (IoU threshold, CorLoc definition)")
    source = open_candidates(source_path, dataset=dataset, split=split)
    try:
        if tuple(source.classes) != tuple(split_data.classes):
            raise ArtifactError(f"scores file has classes {list(source.classes)} but the dataset has "
                               f"{list(split_data.classes)}", path=source.path)
        images = list(mine_pseudo_gt(source, split_data, policy))
    finally:
        source.close()
    header = Header(format=PSEUDO_GT_FORMAT, version=PSEUDO_GT_VERSION, dataset=dataset, split=split,
                    source=str(source_path), classes=tuple(split_data.classes),
                    parameters={"policy": policy.to_json(), "source_format": source.format})
    with RaggedWriter(out, header, PSEUDO_GT_FIELDS) as writer:
        for image in images:
            writer.append(image.image_id, image.width, image.height, boxes=image.boxes, labels=image.labels,
                          scores=image.scores)
    result = sanity_report(images, split_data.classes, ground_truth, matching)
    result.update({"dataset": dataset, "split": split, "source": str(source_path), "source_format": source.format,
                   "policy": policy.to_json()})
    if report is not None:
        write_json(report, result)
    log.info("pseudo GT of %s/%s: %d boxes on %d images (policy %s) -> %s", dataset, split, result["num_boxes"],
             result["num_images"], policy.kind, out)
    return result


def mine_pseudo_gt(source: CandidateSource, split_data: LabelledSplit, policy: PseudoGTPolicy) -> Iterator[PseudoImage]:
    """Apply ``policy`` to every positive class of every image of the split, in split order."""
    for image_id in split_data.ids:
        if image_id not in source:
            raise ArtifactError("image of the split has no scores in the file (pseudo GT must cover every "
                               "training image)", path=source.path, image_id=image_id)
        positive = np.flatnonzero(np.asarray(split_data.image_labels(image_id)) > 0).tolist()
        found = source.candidates(image_id, positive)
        boxes, labels, scores, missing = [], [], [], []
        for label in positive:
            cand_boxes, cand_scores = found[label]
            chosen = policy.select(cand_scores)
            if chosen.size == 0:
                missing.append(label)
                continue
            boxes.append(cand_boxes[chosen])
            scores.append(cand_scores[chosen])
            labels.append(np.full(chosen.size, label, dtype=np.int64))
        width, height = split_data.image_size(image_id)
        yield PseudoImage(
            image_id, width, height,
            boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
            labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
            scores=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
            missing=tuple(missing))


def sanity_report(images: Sequence[PseudoImage], classes: Sequence[str],
                  ground_truth: GroundTruth | None, matching: ReportMatching | None = None) -> dict[str, Any]:
    """Counts per class and, with real boxes, how good the pseudo boxes are.

    ``corloc``: CorLoc of the pseudo boxes (authors' definition; the top pseudo box per image and
    class). ``precision``: per class, the fraction of pseudo boxes with IoU > 0.5 with a real box of
    their class (difficult boxes included, as CorLoc does).
    """
    num_classes = len(classes)
    labels = np.concatenate([im.labels for im in images]) if images else np.zeros(0, np.int64)
    boxes_per_class = np.bincount(labels, minlength=num_classes)
    positive = np.zeros(num_classes, dtype=np.int64)
    missing = np.zeros(num_classes, dtype=np.int64)
    for im in images:
        positive[np.unique(im.labels)] += 1
        missing[list(im.missing)] += 1
    positive += missing
    if missing.any():
        log.warning("positive classes without any candidate (no pseudo box): %s",
                    {classes[c]: int(n) for c, n in enumerate(missing) if n})
    report: dict[str, Any] = {
        "num_images": len(images),
        "images_with_boxes": sum(1 for im in images if len(im.labels)),
        "num_boxes": int(labels.size),
        "boxes_per_class": {name: int(boxes_per_class[c]) for c, name in enumerate(classes)},
        "positive_images_per_class": {name: int(positive[c]) for c, name in enumerate(classes)},
        "positives_without_candidates": {name: int(missing[c]) for c, name in enumerate(classes)},
        "corloc": None,
        "precision": None,
    }
    if ground_truth is None or len(ground_truth.labels) == 0:
        return report
    flat = _flatten(images, ground_truth.image_ids)
    corloc = evaluate_corloc(ground_truth, flat, matching.corloc_definition)
    report["corloc"] = {"definition": matching.corloc_definition, "per_class": dict(corloc.per_class),
                        "mean": corloc.mean}
    overlap, _ = best_overlaps(ground_truth, flat.image_index, flat.labels, flat.boxes)
    good = np.bincount(flat.labels[overlap > matching.iou_threshold], minlength=num_classes)
    per_class = {name: (float(good[c] / boxes_per_class[c]) if boxes_per_class[c] else None)
                 for c, name in enumerate(classes)}
    report["precision"] = {"iou_threshold": matching.iou_threshold, "per_class": per_class,
                           "overall": float(good.sum() / labels.size) if labels.size else None}
    return report


def open_candidates(path: str | Path, *, dataset: str | None = None, split: str | None = None) -> "CandidateSource":
    """Open a detections or proposal-scores file as a candidate source, by its ``format`` attribute."""
    path = Path(path)
    fmt = _peek_format(path)
    if fmt == DETECTIONS_FORMAT:
        return _DetectionCandidates(DetectionStore.open(path, dataset=dataset, split=split))
    if fmt == PROPOSAL_SCORES_FORMAT:
        return _ProposalCandidates(ProposalScoresStore.open(path, dataset=dataset, split=split))
    raise ArtifactError(f"format is {fmt!r}; pseudo GT is mined from {DETECTIONS_FORMAT!r} or "
                       f"{PROPOSAL_SCORES_FORMAT!r} files", path=path)


class _Candidates:
    """A scores store seen as pseudo-GT candidates; subclasses say what a class's candidates are."""

    format = ""

    def __init__(self, store: DetectionStore | ProposalScoresStore):
        self._store = store
        self.path = store.path
        self.classes = store.classes

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._store

    def close(self) -> None:
        self._store.close()


class _DetectionCandidates(_Candidates):
    """Candidates of class c = the image's detections labelled c."""

    format = DETECTIONS_FORMAT

    def candidates(self, image_id: str, labels: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        dets = self._store[image_id]
        return {c: (dets.boxes[dets.labels == c], dets.scores[dets.labels == c]) for c in labels}


class _ProposalCandidates(_Candidates):
    """Candidates of class c = every proposal, scored by its class-c score."""

    format = PROPOSAL_SCORES_FORMAT

    def candidates(self, image_id: str, labels: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        boxes, scores = self._store[image_id]
        return {c: (boxes, scores[:, c]) for c in labels}


def _peek_format(path: Path) -> str:
    if not path.is_file():
        raise ArtifactError("scores file does not exist", path=path)
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("format")
    except OSError as exc:
        raise ArtifactError(f"cannot open as HDF5 ({exc})", path=path) from exc
    return value.decode() if isinstance(value, bytes) else str(value)


def _flatten(images: Sequence[PseudoImage], image_ids: Sequence[str]) -> FlatDetections:
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    parts = [im for im in images if len(im.labels)]
    if not parts:
        return FlatDetections.empty(image_ids)
    return FlatDetections.from_lists(
        image_ids, np.concatenate([np.full(len(im.labels), index[im.image_id]) for im in parts]),
        np.concatenate([im.boxes for im in parts]), np.concatenate([im.scores for im in parts]),
        np.concatenate([im.labels for im in parts]))
