"""Dense CRF (Kraehenbuehl & Koltun) through pydensecrf, behind one small interface.

Used by the constrain-to-boundary loss during training (reference §2.6b) and by the mask stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pydensecrf.densecrf as dcrf


@dataclass(frozen=True)
class CRFParams:
    """Mean-field iterations and the two Potts kernels. Spatial sigmas are in pixels of the image the
    CRF runs on; ``reference_side`` rescales them (sigma / (reference_side / max(h, w))) so that the
    authors' values, given for a 500-pixel side, keep their meaning at any resolution (reference §2.6b)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    reference_side: float = 500.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "CRFParams":
        """The fields of a config ``crf`` section by name, each as its field's type (YAML reads 500 for
        500.0); other keys of the section (``unary_floor``) belong to the caller."""
        return cls(**{f.name: type(f.default)(section[f.name]) for f in fields(cls)})


def dense_crf(image: np.ndarray, unary: np.ndarray, params: CRFParams) -> np.ndarray:
    """Refine label probabilities.

    ``image`` (H, W, 3) uint8 (RGB or BGR: the colour kernel treats channels alike); ``unary``
    (L, H, W) energies, i.e. negative log-probabilities. Returns Q (L, H, W) float32, each pixel a
    distribution over the L labels.
    """
    labels, height, width = unary.shape
    if image.shape[:2] != (height, width) or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 of size {height}x{width}, got {image.dtype} {image.shape[:2]}")
    scale = params.reference_side / max(height, width)
    crf = dcrf.DenseCRF2D(width, height, labels)
    # pydensecrf takes writeable C-contiguous buffers only (decoded images are often read-only views).
    crf.setUnaryEnergy(np.require(unary.reshape(labels, -1), np.float32, ("C", "W")))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy / scale, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy / scale, srgb=params.bilateral_srgb,
                             rgbim=np.require(image, np.uint8, ("C", "W")), compat=params.bilateral_compat)
    q = np.asarray(crf.inference(params.iterations), dtype=np.float32)
    return q.reshape(labels, height, width)
