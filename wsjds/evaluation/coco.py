"""COCO AP^b (boxes) and AP^r (masks, RLE) through pycocotools' COCOeval.

Class index i maps to the i-th category id in ascending order (as :class:`COCODataset` reads
them); image ids are the annotation file's integers (strings inside the package). Boxes go to
COCO as ``[x, y, w, h]`` straight from the package convention. pycocotools' prints are captured
and logged at DEBUG; the 12 summary numbers come back with names, -1 ("undefined") as None.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Sequence

from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from wsjds.boxes import xyxy_to_xywh
from wsjds.data.coco import COCODataset
from wsjds.errors import ArtifactError
from wsjds.evaluation.detections_io import (FlatDetections, load_json_list, parse_detections_list,
                                            read_detections)
from wsjds.evaluation.result import MetricResult

log = logging.getLogger(__name__)

IOU_TYPES: tuple[str, ...] = ("bbox", "segm")
COCO_STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                                    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# Indices into COCOeval.eval["precision"] (T, R, K, A, M) for the per-class AP: area "all", maxDets 100.
_AREA_ALL = 0
_MAX_DETS_LAST = -1


def evaluate_coco(dataset: COCODataset, dets: FlatDetections, iou_type: str = "bbox",
                  segmentations: Sequence[dict | None] | None = None) -> MetricResult:
    """COCO AP of ``dets`` (image ids = ``dataset.ids``) for ``iou_type`` ``bbox`` or ``segm``.

    ``segmentations`` (one RLE dict per detection, in order) is required for ``segm``. ``mean`` is
    AP@[.5:.95]; ``per_class`` is each category's AP@[.5:.95] (None without ground truth).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown iou_type {iou_type!r}; expected one of {list(IOU_TYPES)}")
    if dets.image_ids != dataset.ids:
        raise ValueError("detections and the COCO dataset index different image lists")
    category_ids = sorted(dataset.coco.getCatIds())
    results = coco_results(dets, category_ids, iou_type, segmentations, dataset.annotation_file)
    details: dict[str, Any] = {"iou_type": iou_type, "num_images": len(dataset.ids), "num_detections": len(dets)}
    if not results:  # COCO.loadRes cannot take an empty list: nothing detected scores 0 where GT exists
        log.warning("no detections: COCO %s metrics are 0", iou_type)
        has_gt = {c: bool(dataset.coco.getAnnIds(catIds=[c], iscrowd=False)) for c in category_ids}
        per_class = {name: (0.0 if has_gt[c] else None) for name, c in zip(dataset.classes, category_ids)}
        stats = {name: 0.0 for name in COCO_STAT_NAMES}
        return MetricResult(f"coco_{iou_type}", per_class, 0.0, {**details, "stats": stats})
    log_stream = io.StringIO()
    with contextlib.redirect_stdout(log_stream):
        coco_dt = dataset.coco.loadRes(results)
        evaluator = COCOeval(dataset.coco, coco_dt, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.debug("pycocotools output:\n%s", log_stream.getvalue())
    stats = {name: _defined(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    precision = evaluator.eval["precision"]
    per_class = {}
    for k, name in enumerate(dataset.classes):
        values = precision[:, :, k, _AREA_ALL, _MAX_DETS_LAST]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else None
    return MetricResult(f"coco_{iou_type}", per_class, stats["AP"], {**details, "stats": stats})


def coco_results(dets: FlatDetections, category_ids: Sequence[int], iou_type: str,
                 segmentations: Sequence[dict | None] | None, path: Path) -> list[dict[str, Any]]:
    """Standard COCO results dicts (integer image ids, COCO category ids) for ``COCO.loadRes``.

    For ``segm`` the entries carry the RLE and no box, so pycocotools takes the area from the mask.
    """
    image_ids = [int(image_id) for image_id in dets.image_ids]
    ids = [image_ids[i] for i in dets.image_index.tolist()]
    cats = [int(category_ids[label]) for label in dets.labels.tolist()]
    scores = dets.scores.tolist()
    if iou_type == "bbox":
        return [{"image_id": i, "category_id": c, "bbox": b, "score": s}
                for i, c, b, s in zip(ids, cats, xyxy_to_xywh(dets.boxes).tolist(), scores)]
    if segmentations is None or len(segmentations) != len(dets):
        raise ArtifactError("segm evaluation needs a 'segmentation' RLE for every detection", path=path)
    results = []
    for k, (i, c, s, rle) in enumerate(zip(ids, cats, scores, segmentations)):
        if not (isinstance(rle, dict) and "counts" in rle and "size" in rle):
            raise ArtifactError(f"detection {k}: 'segmentation' must be an RLE dict {{size, counts}}, found "
                               f"{type(rle).__name__}", path=path, image_id=str(i))
        results.append({"image_id": i, "category_id": c, "segmentation": rle, "score": s})
    return results


def read_coco_detections(path: str | Path, dataset: COCODataset) -> tuple[FlatDetections, list[dict | None]]:
    """Detections for a COCO dataset, with their RLE masks where the input has them.

    A JSON list whose image ids are integers is a standard COCO results file (category ids are the
    annotation file's); with string image ids it is the package's form (0-based ``category_id``).
    The package's HDF5 works too (boxes only).
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        dets = read_detections(path, dataset.ids, dataset.classes)
        return dets, [None] * len(dets)
    entries = load_json_list(path)
    if entries and isinstance(entries[0], dict) and type(entries[0].get("image_id")) is int:
        entries = _standard_to_package(entries, sorted(dataset.coco.getCatIds()), path)
    entries = [_with_box_from_mask(e) for e in entries]
    dets = parse_detections_list(entries, dataset.ids, dataset.classes, path)
    return dets, [e.get("segmentation") for e in entries]


def _standard_to_package(entries: list, category_ids: Sequence[int], path: Path) -> list[dict]:
    """COCO results form -> package form (string image ids, 0-based class indices)."""
    index = {cat: i for i, cat in enumerate(category_ids)}
    converted = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or type(e.get("image_id")) is not int:
            raise ArtifactError(f"detection {k}: a COCO results file needs integer image ids in every entry",
                               path=path)
        if e.get("category_id") not in index:
            raise ArtifactError(f"detection {k}: category_id {e.get('category_id')!r} is not in the annotation "
                               f"file (ids {list(category_ids)[:10]}...)", path=path, image_id=str(e["image_id"]))
        converted.append({**e, "image_id": str(e["image_id"]), "category_id": index[e["category_id"]]})
    return converted


def _with_box_from_mask(entry: Any) -> Any:
    """Mask-only results (standard for segm) get the mask's tight box, so every entry has a ``bbox``."""
    if isinstance(entry, dict) and "bbox" not in entry and isinstance(entry.get("segmentation"), dict):
        try:
            return {**entry, "bbox": mask_utils.toBbox(entry["segmentation"]).tolist()}
        except (TypeError, ValueError, KeyError):
            return entry  # left for the entry check to report
    return entry


def _defined(value: float) -> float | None:
    return None if value < 0 else float(value)
