"""A run's saved artifacts back as objects: its settings file, its dataset split, its trained network.

Every stage after training (detection, masks, Fast R-CNN) starts from a settings file (the run's
``settings.json``, or ``detect_settings.json`` / ``mask_settings.json``) and a round checkpoint,
which holds the run's settings; this is the one place that turns them back into a dataset reader
and a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wsjds.errors import ArtifactError


def load_settings(path: str | Path, required: Sequence[str] = ()) -> dict[str, Any]:
    """A settings JSON a rule wrote (``train_settings``, ``frcnn_settings``, ``detect_settings``, ...);
    a section of ``required`` that is missing (a file from an older wsjds) is an ArtifactError."""
    settings = json.loads(Path(path).read_text())
    missing = [key for key in required if key not in settings]
    if missing:
        raise ArtifactError(f"the settings have no {', '.join(map(repr, missing))} section (written by an older "
                            "wsjds?); delete the file and let its rule write it again", path=path)
    return settings


def dataset_section(settings: Mapping[str, Any], path: str | Path, kinds: Sequence[str],
                    keys: Sequence[str] = ("name", "kind", "root")) -> Mapping[str, Any]:
    """The settings' ``dataset`` section, checked before any image is read: ``keys`` present and a
    ``kind`` among ``kinds`` (what the reading stage can open); an ArtifactError naming the file otherwise."""
    data = settings["dataset"]
    missing = [key for key in keys if key not in data]
    if missing:
        raise ArtifactError(f"the dataset section lacks {missing}", path=path)
    if data["kind"] not in kinds:
        raise ArtifactError(f"dataset kind {data['kind']!r} cannot be read here; expected one of {list(kinds)}",
                            path=path)
    return data


def settings_and_split(path: str | Path, split: str, required: Sequence[str] = ()) -> tuple[dict[str, Any], Any]:
    """A run's settings (with the sections ``required``, and always ``dataset``) and a reader of
    ``split`` of its dataset."""
    settings = load_settings(path, ("dataset", *required))
    return settings, open_split(settings, split)


def open_split(settings: Mapping[str, Any], split: str):
    """A reader of ``split`` of the run's dataset: VOC layout (voc, synthetic), a prepared tags root,
    or COCO (``{root}/annotations/instances_{split}.json`` with images in ``{root}/images/{split}/``)."""
    from wsjds.data.coco import COCODataset
    from wsjds.data.kinds import open_split as open_dataset_split

    data = settings["dataset"]
    root = Path(data["root"])
    if data["kind"] == "coco":
        return COCODataset(root / "annotations" / f"instances_{split}.json", root / "images" / split,
                           data["include_difficult_labels"])
    return open_dataset_split(data["kind"], root, split, data["include_difficult_labels"])


def trained_scorer(settings: Mapping[str, Any] | None, checkpoint: str | Path, cfg, device,
                   classes: Sequence[str] | None = None):
    """``(scorer, source name)`` of a run's trained detector: the WSOD network (proposal scores
    x_rc) or, for a Fast R-CNN run, the retrained detector (class scores and regressed boxes); see
    :func:`wsjds.stages.infer.detect_split` for the scorer's signature. ``cfg`` is an InferenceConfig;
    ``settings`` are the run's, None: those the checkpoint was trained with. ``classes``, when
    given, must be the run's classes in order (the caller's settings file and the checkpoint agree)."""
    from wsjds.stages.train import load_checkpoint

    state = load_checkpoint(checkpoint)
    if settings is None:
        settings = json.loads(state["settings"])
    if classes is not None and list(classes) != list(settings["classes"]):
        raise ArtifactError(f"the run was trained on classes {settings['classes']}, the settings file asks for "
                            f"{list(classes)}; rebuild the settings and the checkpoint with one config",
                            path=checkpoint)
    if "frcnn" in settings:
        from wsjds.stages.frcnn import build_frcnn, frcnn_scorer

        model = build_frcnn(settings, pretrained=False)
        model.load_state_dict(state["model"])
        return frcnn_scorer(model.to(device), cfg, device), "wsjds frcnn"
    from wsjds.stages.infer import wsddn_scorer

    return wsddn_scorer(trained_wsjds(settings, state).to(device), cfg, device), "wsjds detect"


def trained_wsjds(settings: Mapping[str, Any], checkpoint: Mapping[str, Any]):
    """The WS-JDS network of a CGL run with a checkpoint's weights, in eval mode. No weights file is
    read: the checkpoint holds every weight."""
    from wsjds.cgl.objective import Method
    from wsjds.model.wsjds import build_model, weights_spec

    method = Method.from_config(settings["method"])
    weights = weights_spec(settings["weights"], with_file=False)
    model = build_model(settings["model"], weights, len(settings["classes"]), method.segmentation)
    model.load_state_dict(checkpoint["model"])
    return model.eval()
