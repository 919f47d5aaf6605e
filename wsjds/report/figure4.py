"""A figure in the style of the paper's Fig. 4: the intermediate steps of Cyclic Guidance Learning
for a few images, one column per image.

Rows (paper Fig. 4, top to bottom): the input image with its ground-truth boxes; the localization
map of the detection branch (:func:`wsjds.cgl.localization.localization_maps`, the maximum over the
image's labelled classes); the segmentation seeds derived from it
(:func:`wsjds.cgl.seeds.segmentation_seeds`; red foreground, blue background, green uncertain, as
in the paper); the segmentation branch's output without CRF (per pixel the argmax over background
= 1 - max_c p_c and the class probabilities p_c). Methods without a segmentation branch get the
first two rows; methods that do not train segmentation on seeds get no seed row.

The network runs as at test time (eval mode: no dropout), at one scale, on the image's stored
proposals (the first ``max_proposals`` by score, as in training). The seeds use training's gate
(``cgl.tau``: a labelled class scoring below it is uncertain everywhere) and thresholds, so they are
the seeds training would derive from these maps; the displayed maps use their own gate
(``map_min_score``), so a map can be shown for a class training would not yet have used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsjds.cgl.seeds import IGNORE
from wsjds.data.images import rgb_tensor
from wsjds.data.transforms import resize
from wsjds.io import atomic_path
from wsjds.report.plotting import pyplot

if TYPE_CHECKING:   # torch loads only when the figure is made
    import torch

    from wsjds.model.wsjds import WSJDSModel

log = logging.getLogger(__name__)

# Seed colours of the paper's Fig. 4 (RGB in [0, 1]): foreground, background, uncertain.
SEED_FOREGROUND = (0.85, 0.1, 0.1)
SEED_BACKGROUND = (0.1, 0.2, 0.85)
SEED_UNCERTAIN = (0.1, 0.7, 0.2)
BACKGROUND_COLOUR = (0.0, 0.0, 0.0)          # background class in the segmentation row
# One colour per class: tab10 while the classes fit (its colours are the most distinct; the
# synthetic set has 6), tab20 up to 20 (VOC), cycled beyond.
CLASS_COLOURMAPS: tuple[tuple[str, int], ...] = (("tab10", 10), ("tab20", 20))
MAP_COLOURMAP = "inferno"
MAP_GAMMA = 0.5                              # display only: sqrt brightens the low values of gradient maps
BOX_LINE_WIDTH = 1.5                         # points
DIFFICULT_LINE_STYLE = "--"                  # difficult ground-truth boxes
LEGEND_ENTRIES_PER_COLUMN = 2               # class legend entries per image column of the grid

ROW_IMAGE, ROW_MAP, ROW_SEEDS, ROW_SEGMENTATION = ("image + GT", "localization map", "seeds",
                                                   "segmentation (no CRF)")


@dataclass(frozen=True)
class Figure4Settings:
    """How the steps are computed. ``scale`` / ``max_side``: the test scale (shorter side) and its
    cap; ``max_proposals``: proposals scored per image; ``map_min_score``: image-score gate of the
    displayed maps; ``tau``, ``seed_fg``, ``seed_bg``: training's seed gate and thresholds;
    ``skip_max_one``: the authors' CPGScale bug switch; ``batched``: one batched backward."""

    scale: int
    max_side: int
    max_proposals: int
    map_min_score: float
    tau: float
    seed_fg: float
    seed_bg: float
    skip_max_one: bool = False
    batched: bool = True

    @classmethod
    def from_run(cls, settings: Mapping[str, Any], scale: int, max_side: int, map_min_score: float) -> "Figure4Settings":
        """From a CGL run's settings.json (its ``cgl`` and ``training`` sections) and the report's knobs."""
        cgl = settings["cgl"]
        return cls(scale, max_side, int(settings["training"]["max_proposals"]), map_min_score, cgl["tau"],
                   cgl["seed_fg"], cgl["seed_bg"], bool(cgl["parity"]["cpg_scale_skip_max_one"]),
                   bool(cgl["batched_localization"]))


@dataclass(frozen=True)
class Figure4Style:
    """``panel_inches``: side of one cell; ``dpi``: pixels per inch. The PNG is exactly
    (images x panel x dpi) wide and (rows x panel x dpi) high."""

    panel_inches: float
    dpi: int


@dataclass(frozen=True)
class CGLSteps:
    """One image's column. Arrays are at the network's input size (h, w). ``boxes`` (N, 4) ground
    truth in those pixels with ``box_labels`` and ``difficult``; ``labels`` (C,) image labels;
    ``scores`` (C,) image scores y_c; ``maps`` (C, h, w) displayed localization maps; ``seeds``
    (C, h, w) in {0, 0.5, 1}; ``segmentation`` (h, w) 0 = background, 1 + c = class c, or None."""

    image_id: str
    image: np.ndarray
    boxes: np.ndarray
    box_labels: np.ndarray
    difficult: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    maps: np.ndarray
    seeds: np.ndarray
    segmentation: np.ndarray | None


def figure4(model: "WSJDSModel", source, proposals: str | Path, image_ids: Sequence[str], classes: Sequence[str],
            settings: Figure4Settings, style: Figure4Style, out: str | Path, *, seeds: bool = True,
            device: "torch.device | None" = None, title: str = "") -> list[CGLSteps]:
    """Compute the steps of ``image_ids`` (read from ``source``, a VOC-layout split) and write the
    PNG grid to ``out``. ``seeds``: draw the seed row (methods that train segmentation on seeds)."""
    import torch

    from wsjds.proposals.store import ProposalStore

    if not image_ids:
        raise ValueError("figure4 needs at least one image id")
    device = device or torch.device("cpu")
    steps = []
    with ProposalStore.open(proposals) as store:
        for image_id in image_ids:
            boxes, scores = store[image_id]
            steps.append(cgl_steps(model, image_id, source.read_image(image_id), _boxes_if_any(source, image_id),
                                   source.image_labels(image_id), boxes[: settings.max_proposals],
                                   scores[: settings.max_proposals], settings, device))
    plot_figure4(steps, classes, out, style, seeds=seeds, title=title)
    return steps


def _boxes_if_any(source, image_id: str):
    """The image's ground-truth objects, or none for a dataset without boxes (tags only)."""
    if getattr(source, "has_boxes", True):
        return source.annotation(image_id)
    from wsjds.data.voc import Annotation

    width, height = source.image_size(image_id)
    return Annotation(image_id, width, height, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                      np.zeros(0, bool), np.zeros(0, bool))


def cgl_steps(model: "WSJDSModel", image_id: str, image: np.ndarray, annotation, labels: np.ndarray,
              proposals: np.ndarray, proposal_scores: np.ndarray, settings: Figure4Settings,
              device: "torch.device") -> CGLSteps:
    """The localization maps, seeds and segmentation of one image (H, W, 3) RGB uint8 with its
    annotation (ground-truth boxes, drawn only), image labels (C,) in {0, 1} and proposals (R, 4)
    with scores (R,) in its pixels."""
    import torch
    import torch.nn.functional as F

    from wsjds.cgl.localization import localization_maps
    from wsjds.cgl.seeds import segmentation_seeds

    if len(proposals) == 0:
        raise ValueError(f"image {image_id!r} has no proposals")
    height, width = image.shape[:2]
    resized, to_input = resize(image, settings.scale, settings.max_side)
    new_h, new_w = resized.shape[:2]
    labels_np = np.asarray(labels, np.float32)
    model.eval()
    tensor = rgb_tensor(resized)[None]
    tensor = tensor.to(device).requires_grad_(True)
    rois = torch.from_numpy(np.asarray(proposals, np.float32) * to_input).to(device)
    boost = torch.from_numpy(np.asarray(proposal_scores, np.float32)).to(device) if model.detection.score_boost else None
    label_tensor = torch.from_numpy(labels_np).to(device)
    with torch.enable_grad():
        out = model(tensor, rois, boost)
        y = out.det.y.detach()
        # Every labelled class's map (gate 0), gated afterwards: the normalisation is per class, so
        # gating after equals gating inside the op.
        raw = localization_maps(out.det.x, tensor, label_tensor, y, tau=0.0, batched=settings.batched,
                                skip_max_one=settings.skip_max_one).detach()
    shown = raw * (y >= settings.map_min_score).view(-1, 1, 1)
    trained = raw * (y >= settings.tau).view(-1, 1, 1)
    seeds = segmentation_seeds(trained, label_tensor, y, settings.tau, settings.seed_fg, settings.seed_bg)
    segmentation = None
    if out.seg_logits is not None:
        with torch.no_grad():
            up = F.interpolate(out.seg_logits.detach(), size=(new_h, new_w), mode="bilinear", align_corners=True)[0]
            probs = torch.sigmoid(up)
            background = 1.0 - probs.max(dim=0, keepdim=True).values
            segmentation = torch.cat([background, probs]).argmax(dim=0).cpu().numpy().astype(np.int64)
    return CGLSteps(image_id, resized, (annotation.boxes * to_input).astype(np.float32),
                    np.asarray(annotation.labels, np.int64), np.asarray(annotation.difficult, bool), labels_np,
                    y.cpu().numpy(), shown.cpu().numpy(), seeds.cpu().numpy(), segmentation)


def plot_figure4(steps: Sequence[CGLSteps], classes: Sequence[str], out: str | Path, style: Figure4Style, *,
                 seeds: bool = True, title: str = "") -> None:
    """The grid PNG: rows of :data:`ROW_IMAGE` .. :data:`ROW_SEGMENTATION` (as available), one column
    per image, exactly (columns x panel x dpi) by (rows x panel x dpi) pixels."""
    rows = [ROW_IMAGE, ROW_MAP]
    if seeds:
        rows.append(ROW_SEEDS)
    if all(s.segmentation is not None for s in steps):
        rows.append(ROW_SEGMENTATION)
    plt = pyplot()
    from matplotlib.colors import PowerNorm
    from matplotlib.patches import Patch, Rectangle

    palette = class_palette(len(classes))
    # Constrained layout fits the panels and the legend inside the fixed figure size.
    figure, axes = plt.subplots(len(rows), len(steps), squeeze=False, layout="constrained",
                                figsize=(len(steps) * style.panel_inches, len(rows) * style.panel_inches))
    for col, step in enumerate(steps):
        for row, name in enumerate(rows):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize="small")
            if name == ROW_IMAGE:
                ax.imshow(step.image)
                for box, label, hard in zip(step.boxes, step.box_labels, step.difficult):
                    x1, y1, x2, y2 = (float(v) for v in box)
                    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=palette[label],
                                           linewidth=BOX_LINE_WIDTH,
                                           linestyle=DIFFICULT_LINE_STYLE if hard else "-"))
                ax.set_title(step.image_id, fontsize="small")
            elif name == ROW_MAP:
                present = np.flatnonzero(step.labels > 0.5)
                shown = step.maps[present].max(axis=0) if present.size else np.zeros(step.image.shape[:2])
                ax.imshow(shown, cmap=MAP_COLOURMAP, norm=PowerNorm(MAP_GAMMA, vmin=0.0, vmax=1.0))
                ax.set_title(", ".join(f"{classes[c]} y={step.scores[c]:.2f}" for c in present), fontsize="x-small")
            elif name == ROW_SEEDS:
                ax.imshow(seed_image(step.seeds, step.labels))
            else:
                ax.imshow(segmentation_image(step.segmentation, palette))
    # Two legends, so class colours (boxes, segmentation) and seed colours never read as one key.
    classes_key = [Patch(color=palette[c], label=name) for c, name in enumerate(classes)]
    figure.legend(handles=classes_key, title="classes", loc="outside lower center", fontsize="x-small",
                  title_fontsize="x-small", ncol=min(len(classes_key), len(steps) * LEGEND_ENTRIES_PER_COLUMN),
                  frameon=False)
    if seeds:
        seeds_key = [Patch(color=SEED_FOREGROUND, label="foreground"), Patch(color=SEED_BACKGROUND, label="background"),
                     Patch(color=SEED_UNCERTAIN, label="uncertain")]
        figure.legend(handles=seeds_key, title="seeds", loc="outside right upper", fontsize="x-small",
                      title_fontsize="x-small", frameon=False)
    if title:
        figure.suptitle(title, fontsize="small")
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png", dpi=style.dpi)
    plt.close(figure)


def seed_image(seeds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(h, w, 3) colours of the seeds (C, h, w): foreground where any class's seed is 1, else
    uncertain where a labelled class's seed is 0.5, else background."""
    present = labels > 0.5
    foreground = (seeds == 1.0).any(axis=0)
    uncertain = (seeds[present] == IGNORE).any(axis=0) if present.any() else np.zeros(seeds.shape[1:], bool)
    rgb = np.empty((*seeds.shape[1:], 3), np.float32)
    rgb[:] = SEED_BACKGROUND
    rgb[uncertain] = SEED_UNCERTAIN
    rgb[foreground] = SEED_FOREGROUND
    return rgb


def segmentation_image(segmentation: np.ndarray, palette: Sequence[tuple[float, ...]]) -> np.ndarray:
    """(h, w, 3) colours of a label map (0 = background, 1 + c = class c)."""
    colours = np.array([BACKGROUND_COLOUR, *[p[:3] for p in palette]], np.float32)
    return colours[segmentation]


def class_palette(num_classes: int) -> list[tuple[float, ...]]:
    """One RGBA colour per class from the first of :data:`CLASS_COLOURMAPS` with room for all
    (the last one, cycled, beyond)."""
    plt = pyplot()
    name = next((n for n, size in CLASS_COLOURMAPS if num_classes <= size), CLASS_COLOURMAPS[-1][0])
    cmap = plt.get_cmap(name)
    return [tuple(cmap(c % cmap.N)) for c in range(num_classes)]

