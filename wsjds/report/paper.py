"""The paper's per-class PASCAL VOC 2007 numbers (Shen et al., CVPR 2019), the one place they live.

Read off the paper's tables (``shared/docs/paper-ws-jds-cvpr2019.txt``), in % with one decimal as
printed, classes in the devkit order of :data:`wsjds.data.classes.VOC_CLASSES`:

* Table 1 (AP on VOC07 test, the ablation of the guidance directions): the columns WSDDN*
  (the authors' reproduction of WSDDN on VGG16, our ``wsddn``), WSOD || WSSS (``parallel``),
  WSOD -> WSSS (``det2seg``), WSOD <- WSSS (``seg2det``) and WSOD <=> WSSS (``wsjds``, the full
  CGL; the same numbers as Table 2's WS-JDS row).
* Table 2 (AP on VOC07 test): the row "WS-JDS FRCNN", Fast R-CNN retrained on the pseudo ground
  truth of the full method (52.5 mAP).
* Table 3 (CorLoc on VOC07 trainval): the row "WS-JDS" (64.5 mean).

Each column keeps the mean the paper prints ("Av."); the per-class values average to it within
the rounding of one decimal (checked in tests/test_report.py). Table 3's "WS-JDS FRCNN" CorLoc row
is left out: its printed classes average to 68.4 while its "Av." reads 68.6.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsjds.data.classes import VOC_CLASSES

PAPER = "Shen et al., CVPR 2019"
PAPER_YEAR = 2007            # every per-class table of the paper is on PASCAL VOC 2007
PERCENT = 100.0              # the paper prints % ; metrics JSONs hold fractions


@dataclass(frozen=True)
class PaperColumn:
    """One per-class column of a paper table: ``values`` in % in VOC class order, ``mean`` the
    printed average, ``source`` where it is in the paper."""

    label: str
    source: str
    values: tuple[float, ...]
    mean: float

    def __post_init__(self) -> None:
        if len(self.values) != len(VOC_CLASSES):
            raise ValueError(f"{self.label}: {len(self.values)} values for {len(VOC_CLASSES)} VOC classes")

    def per_class(self) -> dict[str, float]:
        """Class name -> value as a fraction in [0, 1] (the metrics JSONs' scale)."""
        return {name: value / PERCENT for name, value in zip(VOC_CLASSES, self.values)}


# Table 1: WSOD AP (%) on VOC07 test per method of the ablation (the {method} wildcard).
TABLE1_WSOD_AP: dict[str, PaperColumn] = {
    "wsddn": PaperColumn("WSDDN*", "Table 1, row WSDDN* (the authors' WSDDN on VGG16)", (
        45.9, 48.1, 32.4, 13.3, 23.0, 61.7, 51.1, 40.7, 16.8, 37.9,
        23.8, 28.4, 43.1, 53.0, 6.5, 21.1, 41.2, 44.0, 60.6, 45.9), 36.9),
    "parallel": PaperColumn("WSOD || WSSS", "Table 1, row WSOD || WSSS", (
        50.1, 56.3, 32.4, 22.7, 19.0, 51.8, 41.1, 62.6, 2.7, 45.3,
        45.6, 24.4, 43.7, 56.0, 12.4, 20.5, 38.1, 34.8, 53.2, 33.4), 37.3),
    "det2seg": PaperColumn("WSOD -> WSSS", "Table 1, row WSOD -> WSSS", (
        52.4, 63.5, 28.8, 16.1, 27.3, 58.0, 55.8, 41.6, 22.5, 47.3,
        14.0, 25.9, 8.5, 55.2, 18.9, 22.1, 46.9, 45.0, 54.8, 49.9), 37.7),
    "seg2det": PaperColumn("WSOD <- WSSS", "Table 1, row WSOD <- WSSS", (
        39.8, 61.4, 34.6, 18.1, 27.3, 66.1, 52.9, 50.8, 15.6, 43.0,
        42.4, 46.1, 19.4, 57.9, 30.5, 24.2, 44.0, 48.2, 64.8, 52.9), 42.0),
    "wsjds": PaperColumn("WS-JDS", "Table 1, row WSOD <=> WSSS (= Table 2, row WS-JDS)", (
        52.0, 64.5, 45.5, 26.7, 27.9, 60.5, 47.8, 59.7, 13.0, 50.4,
        46.4, 56.3, 49.6, 60.7, 25.4, 28.2, 50.0, 51.4, 66.5, 29.7), 45.6),
}

# Table 2: Fast R-CNN retrained on the full method's pseudo GT, AP (%) on VOC07 test.
TABLE2_FRCNN_AP: dict[str, PaperColumn] = {
    "wsjds": PaperColumn("WS-JDS FRCNN", "Table 2, row WS-JDS FRCNN", (
        64.8, 70.7, 51.5, 25.1, 29.0, 74.1, 69.7, 69.6, 12.7, 69.5,
        43.9, 54.9, 39.3, 71.3, 32.6, 29.8, 57.0, 61.0, 66.6, 57.4), 52.5),
}

# Table 3: CorLoc (%) of the WSOD detector on VOC07 trainval.
TABLE3_WSOD_CORLOC: dict[str, PaperColumn] = {
    "wsjds": PaperColumn("WS-JDS", "Table 3, row WS-JDS", (
        82.9, 74.0, 73.4, 47.1, 60.9, 80.4, 77.5, 78.8, 18.6, 70.0,
        56.7, 67.0, 64.5, 84.0, 47.0, 50.1, 71.9, 57.6, 83.3, 43.5), 64.5),
}


@dataclass(frozen=True)
class PaperReference:
    """The paper's columns a run's metrics table sits beside (None where the paper has none)."""

    wsod_ap: PaperColumn | None
    frcnn_ap: PaperColumn | None
    wsod_corloc: PaperColumn | None


def paper_reference(method: str) -> PaperReference:
    """The paper's VOC2007 columns for ``method`` (a Table 1 method name)."""
    return PaperReference(TABLE1_WSOD_AP.get(method), TABLE2_FRCNN_AP.get(method), TABLE3_WSOD_CORLOC.get(method))
