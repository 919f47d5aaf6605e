"""Detections (and masks) on new images with a trained run: what a user does with the model.

For each image: Selective Search with the run's proposal settings, the run's test-time passes and
NMS, and, where the method has a segmentation branch, the masks stage's class maps cut to each box.
Per image a JSON in the COCO results style (one entry per detection, best first: ``bbox`` [x, y,
w, h] in pixels, ``score``, ``category_id`` (0-based), ``category_name``, and ``segmentation`` as
COCO RLE with masks) and a PNG with the detections drawn that score at least the run's
``drawing.min_score``, at most ``drawing.max_boxes`` (config ``report.gallery``, as the report's
gallery). Files are written atomically, one pair per image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsjds.errors import DatasetError
from wsjds.data.tags import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

PREDICT_SETTINGS = "predict_settings.json"   # written into every run directory by rule predict_settings


@dataclass
class Prediction:
    """Detections of one image: ``boxes`` (K, 4) package convention, ``scores`` (K,), ``labels`` (K,)
    0-based; ``masks`` K of (H, W) bool, or None without a segmentation branch."""

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: list[np.ndarray] | None


class Predictor:
    """A trained run, ready for new images: ``Predictor.from_run(dir)(image)`` -> :class:`Prediction`."""

    def __init__(self, run_dir: str | Path, device: Any, with_masks: bool = True):
        from wsjds.stages.infer import InferenceConfig
        from wsjds.proposals.postprocess import ProposalPolicy
        from wsjds.proposals.selective_search import SelectiveSearchParams
        from wsjds.runs import load_settings, trained_scorer

        self.run_dir = Path(run_dir)
        settings_path = self.run_dir / PREDICT_SETTINGS
        if not settings_path.is_file():
            raise DatasetError(f"not a trained run directory: no {PREDICT_SETTINGS} (the workflow writes it with "
                               f"the run; e.g. snakemake results/<ds>/<method>/frcnn/{PREDICT_SETTINGS})",
                               path=settings_path)
        self.settings = json.loads(settings_path.read_text())
        self.classes: tuple[str, ...] = tuple(self.settings["classes"])
        self.inference = InferenceConfig.from_config(self.settings["inference"])
        self.search = SelectiveSearchParams.from_config(self.settings["selective_search"])
        self.policy = ProposalPolicy.from_config(self.settings["proposal_policy"])
        self.device = device
        run_settings = load_settings(self._existing(self.run_dir / "settings.json"))
        self.scorer, _ = trained_scorer(run_settings, self._existing(self.run_dir / self.settings["checkpoint"]),
                                        self.inference, device)
        self.masks = self._mask_model() if with_masks and self.settings["masks"] else None

    def __call__(self, image: np.ndarray, name: str = "image") -> Prediction:
        """``image`` (H, W, 3) uint8 RGB; ``name`` appears in errors."""
        from wsjds.stages.infer import postprocess
        from wsjds.proposals.postprocess import postprocess as clean_proposals
        from wsjds.proposals.selective_search import selective_search

        height, width = image.shape[:2]
        raw = selective_search(image, self.search)
        boxes, scores = clean_proposals(raw, None, width, height, self.policy, image_id=name, path=None)
        boxes, scores = boxes[: self.inference.max_proposals], scores[: self.inference.max_proposals]
        x, scored_boxes = self.scorer(image, boxes, scores)
        boxes, scores, labels = postprocess(scored_boxes, x, self.inference)
        return Prediction(image, boxes, scores, labels, self._cut_masks(image, boxes, labels))

    def _cut_masks(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> list[np.ndarray] | None:
        from wsjds.stages.masks import class_probabilities, crf_class_maps, detection_masks, threshold_class_maps

        if self.masks is None:
            return None
        if len(boxes) == 0:
            return []
        model, params, variant = self.masks
        height, width = image.shape[:2]
        probs = class_probabilities(model, image, params, self.device)
        present = np.unique(labels).tolist()
        maps = (crf_class_maps(image, probs, present, params) if variant == "crf"
                else threshold_class_maps(probs, present, params.threshold))
        return detection_masks(variant, boxes, labels, width, height, maps)

    def _mask_model(self):
        from wsjds.stages.masks import MaskParams
        from wsjds.runs import load_settings, trained_wsjds
        from wsjds.stages.train import load_checkpoint

        spec = self.settings["masks"]
        settings = load_settings(self._existing(self.run_dir / spec["settings"]))
        state = load_checkpoint(self._existing(self.run_dir / spec["checkpoint"]))
        return trained_wsjds(settings, state).to(self.device), MaskParams.from_json(spec["params"]), spec["variant"]

    def _existing(self, path: Path) -> Path:
        if not path.is_file():
            raise DatasetError(f"the run directory {str(self.run_dir)!r} lacks a file its {PREDICT_SETTINGS} names",
                               path=path)
        return path


def predict_images(predictor: Predictor, inputs: Sequence[str | Path], out_dir: str | Path,
                   progress: bool = True) -> list[Path]:
    """Predict every image of ``inputs`` (files, or folders searched recursively for jpg / jpeg /
    png) into ``out_dir``: ``{stem}.json`` and ``{stem}.png`` per image (a folder's sub-paths kept).
    Returns the JSON paths. A file that does not decode stops the run with its path named."""
    from tqdm import tqdm

    from wsjds.data.images import read_rgb
    from wsjds.io import atomic_path
    from wsjds.report.drawing import draw_detections

    images = list(_image_files(inputs))
    if not images:
        raise DatasetError(f"no {' / '.join(IMAGE_SUFFIXES)} image among {[str(p) for p in inputs]}")
    out_dir = Path(out_dir)
    written = []
    for path, relative in tqdm(images, desc="predict", unit="img", disable=not progress):
        image = read_rgb(path, relative.as_posix())
        prediction = predictor(image, relative.as_posix())
        target = out_dir / relative.with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        entries = coco_entries(relative.as_posix(), prediction, predictor.classes)
        json_path = target.with_name(target.name + ".json")
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(entries, indent=1) + "\n")
        show = _shown(prediction.scores, predictor.settings["drawing"])
        drawn = draw_detections(image, prediction.boxes[show], prediction.labels[show], prediction.scores[show],
                                predictor.classes, None if prediction.masks is None else
                                [prediction.masks[k] for k in show])
        from PIL import Image

        with atomic_path(target.with_name(target.name + ".png")) as tmp:
            Image.fromarray(drawn).save(tmp, format="PNG")
        written.append(json_path)
        log.info("%s: %d detections", relative.as_posix(), len(prediction.boxes))
    return written


def coco_entries(image: str, prediction: Prediction, classes: Sequence[str]) -> list[dict[str, Any]]:
    """The COCO results-style list of one image's detections (see the module docstring)."""
    from wsjds.boxes import xyxy_to_xywh
    from wsjds.artifacts.mask_store import encode_rle, rle_object

    height, width = prediction.image.shape[:2]
    entries = []
    for k in range(len(prediction.boxes)):
        label = int(prediction.labels[k])
        entry = {"image": image, "width": width, "height": height, "category_id": label,
                 "category_name": classes[label], "score": round(float(prediction.scores[k]), 6),
                 "bbox": [round(float(v), 2) for v in xyxy_to_xywh(prediction.boxes[k][None])[0]]}
        if prediction.masks is not None:
            entry["segmentation"] = rle_object(encode_rle(prediction.masks[k]), width, height)
        entries.append(entry)
    return entries


def _shown(scores: np.ndarray, drawing: dict) -> np.ndarray:
    """Indices of the detections to draw: score >= ``min_score``, the best ``max_boxes``."""
    order = np.argsort(-scores, kind="stable")
    return order[scores[order] >= drawing["min_score"]][: drawing["max_boxes"]]


def _image_files(inputs: Sequence[str | Path]) -> Iterator[tuple[Path, Path]]:
    """(file, path to name its outputs by) for each image: a file by its name, a folder's images by
    their path inside it, in sorted order."""
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                yield path, path.relative_to(item)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"not a {' / '.join(IMAGE_SUFFIXES)} image", path=item)
            yield item, Path(item.name)
        else:
            raise DatasetError("no such image file or folder", path=item)
