"""The report's metrics table of one run: per-class AP of the WSOD and the Fast R-CNN detector and
the WSOD CorLoc, each beside the paper's column where there is one (VOC2007), as a standalone HTML
page (`snakemake --report` shows it in a frame).

Values come from the metrics JSONs that ``wsjds evaluate voc`` writes (``metric``, ``per_class``
fractions or null, ``mean``) and, where the dataset has instance masks, the ``wsjds masks evaluate``
JSON (``AP_b``, ``AP_r`` per mask variant). Numbers are shown in % with the paper's one decimal.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsjds.errors import ArtifactError
from wsjds.io import atomic_path
from wsjds.report.paper import PAPER, PERCENT, PaperColumn, PaperReference

DECIMALS = 1                 # the paper's precision
MISSING = "–"                # a value that is undefined (no ground truth) or absent (no paper column)
METRIC_KEYS = ("metric", "per_class", "mean")


@dataclass(frozen=True)
class Column:
    """One column of the table: ``per_class`` fractions (None where undefined) and their ``mean``;
    ``paper`` marks a column read from the paper; ``source`` says where the numbers come from."""

    label: str
    source: str
    per_class: Mapping[str, float | None]
    mean: float | None
    paper: bool = False


@dataclass(frozen=True)
class MetricsTable:
    """Rows are ``classes`` plus the mean; ``notes`` are the evaluation settings behind the numbers."""

    title: str
    classes: tuple[str, ...]
    columns: tuple[Column, ...]
    notes: tuple[str, ...] = ()


def metrics_table(title: str, wsod_map: Mapping[str, Any], wsod_corloc: Mapping[str, Any],
                  frcnn_map: Mapping[str, Any] | None = None, paper: PaperReference | None = None,
                  sources: Mapping[str, str] | None = None) -> MetricsTable:
    """The table of one run from its metrics (as read by :func:`read_metrics`).

    Columns: WSOD AP, Fast R-CNN AP (when given) and WSOD CorLoc, each followed by the paper's
    column when ``paper`` has one. The rows are the WSOD mAP file's classes in the dataset's order
    (its ``classes`` list; the ``per_class`` keys are stored sorted); the other files must have
    the same classes. ``sources`` names each metric's file for the column notes (keys
    ``wsod_map``, ``frcnn_map``, ``wsod_corloc``).
    """
    sources = dict(sources or {})
    classes = class_order(wsod_map)
    measured = {"wsod_map": wsod_map, "frcnn_map": frcnn_map, "wsod_corloc": wsod_corloc}
    for key, metrics in measured.items():
        if metrics is not None and set(metrics["per_class"]) != set(classes):
            raise ArtifactError(f"classes {sorted(metrics['per_class'])} differ from the WSOD mAP's {sorted(classes)}",
                               path=sources.get(key))
    labels = {"wsod_map": "WSOD AP", "frcnn_map": "Fast R-CNN AP", "wsod_corloc": "WSOD CorLoc"}
    references = {"wsod_map": paper and paper.wsod_ap, "frcnn_map": paper and paper.frcnn_ap,
                  "wsod_corloc": paper and paper.wsod_corloc}
    columns: list[Column] = []
    for key in ("wsod_map", "frcnn_map", "wsod_corloc"):
        metrics = measured[key]
        if metrics is None:
            continue
        columns.append(Column(labels[key], sources.get(key, ""), dict(metrics["per_class"]), metrics["mean"]))
        reference = references[key]
        if reference:
            columns.append(_paper_column(reference, classes, sources.get(key)))
    return MetricsTable(title, classes, tuple(columns), _notes(wsod_map, wsod_corloc))


def class_order(metrics: Mapping[str, Any]) -> tuple[str, ...]:
    """The classes of a metrics dict in the dataset's order: its ``classes`` list where that names
    exactly the ``per_class`` keys (``wsjds evaluate`` records it), else the keys' order."""
    listed = metrics.get("classes")
    if isinstance(listed, list) and len(listed) == len(metrics["per_class"]) and set(listed) == set(metrics["per_class"]):
        return tuple(listed)
    return tuple(metrics["per_class"])


def read_metrics(path: str | Path, metric: str | None = None) -> dict[str, Any]:
    """A metrics JSON (``wsjds evaluate voc``), checked to hold ``metric`` / ``per_class`` / ``mean``
    and, when ``metric`` is given, to be that metric. Bad input raises ArtifactError naming the file."""
    path = Path(path)
    data = read_json_file(path, "metrics file")
    missing = [key for key in METRIC_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise ArtifactError(f"not a metrics file: no {missing}", path=path)
    if metric is not None and data["metric"] != metric:
        raise ArtifactError(f"holds metric {data['metric']!r}, expected {metric!r}", path=path)
    values = [data["mean"], *data["per_class"].values()]
    if any(v is not None and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0) for v in values):
        raise ArtifactError("values must be fractions in [0, 1] or null", path=path)
    return data


def write_metrics_html(table: MetricsTable, out: str | Path,
                       instance_seg: Mapping[str, Any] | None = None) -> None:
    """Write the table (and the instance-segmentation AP, when given) as one standalone HTML page."""
    with atomic_path(out) as tmp:
        tmp.write_text(render_metrics_html(table, instance_seg), encoding="utf-8")


def render_metrics_html(table: MetricsTable, instance_seg: Mapping[str, Any] | None = None) -> str:
    """The HTML page of :func:`write_metrics_html`."""
    head = "".join(f'<th class="{_kind(c)}" title="{html.escape(c.source)}">{html.escape(c.label)}'
                   f'{"<br><small>paper</small>" if c.paper else ""}</th>' for c in table.columns)
    rows = []
    for name in table.classes:
        cells = "".join(f'<td class="{_kind(c)}">{format_percent(c.per_class.get(name))}</td>' for c in table.columns)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    mean = "".join(f'<td class="{_kind(c)}">{format_percent(c.mean)}</td>' for c in table.columns)
    rows.append(f'<tr class="mean"><th>mean (mAP, CorLoc)</th>{mean}</tr>')
    sources = "".join(f"<li><b>{html.escape(c.label)}{' (paper)' if c.paper else ''}</b>: {html.escape(c.source)}</li>"
                      for c in table.columns if c.source)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    parts = [f"<h1>{html.escape(table.title)}</h1>",
             f'<table><thead><tr><th>class</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>',
             f"<p>Values in %. {MISSING} = undefined (no ground truth of the class) or not in the paper.</p>",
             f"<ul>{sources}{notes}</ul>"]
    if instance_seg is not None:
        parts.append(render_instance_seg(instance_seg))
    return _PAGE.format(title=html.escape(table.title), body="\n".join(parts))


def render_instance_seg(result: Mapping[str, Any]) -> str:
    """The COCO instance-segmentation summary: AP^b of the boxes and AP^r of every mask variant."""
    rows = [f"<tr><th>AP<sup>b</sup> (boxes)</th><td>{format_percent(result.get('AP_b'))}</td></tr>"]
    rows += [f"<tr><th>AP<sup>r</sup> {html.escape(name)}</th><td>{format_percent(value)}</td></tr>"
             for name, value in result.get("AP_r", {}).items()]
    rows += [f"<tr><th>AP<sup>r</sup> {html.escape(name)}</th><td>{MISSING} ({html.escape(why)})</td></tr>"
             for name, why in result.get("unavailable", {}).items()]
    return ("<h2>Instance segmentation (COCO AP, IoU 0.50:0.95)</h2>"
            f"<table><tbody>{''.join(rows)}</tbody></table>"
            f"<p>{result.get('num_images', MISSING)} images; masks of the Fast R-CNN detections.</p>")


def format_percent(value: float | None) -> str:
    """A fraction as % with :data:`DECIMALS` decimals; :data:`MISSING` for None."""
    return MISSING if value is None else f"{PERCENT * value:.{DECIMALS}f}"


def _paper_column(reference: PaperColumn, classes: Sequence[str], source: str | None) -> Column:
    values = reference.per_class()
    unknown = [name for name in classes if name not in values]
    if unknown:
        raise ArtifactError(f"classes {unknown} are not VOC classes; the paper's columns are for VOC2007",
                           path=source)
    return Column(reference.label, f"{PAPER}, {reference.source}", {name: values[name] for name in classes},
                  reference.mean / PERCENT, paper=True)


def _notes(wsod_map: Mapping[str, Any], wsod_corloc: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    if "use_07_metric" in wsod_map:
        ap = "11-point interpolated AP (VOC2007)" if wsod_map["use_07_metric"] else "area under the PR curve (VOC2010+)"
        notes.append(f"AP: {ap}, a match needs IoU > {wsod_map.get('iou_threshold', MISSING)}; "
                     f"{wsod_map.get('num_images', MISSING)} images of split {wsod_map.get('split', MISSING)!s}.")
    if "definition" in wsod_corloc:
        notes.append(f"CorLoc: {wsod_corloc['definition']} definition on split {wsod_corloc.get('split', MISSING)!s} "
                     f"({wsod_corloc.get('num_images', MISSING)} images).")
    return tuple(notes)


def _kind(column: Column) -> str:
    return "paper" if column.paper else "ours"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
tbody th, thead th:first-child {{ text-align: left; }}
tbody th {{ font-weight: normal; }}
td.paper, th.paper {{ background: #f1f1f8; color: #445; font-style: italic; }}
tr.mean th, tr.mean td {{ font-weight: bold; border-top: 2px solid #888; }}
li {{ margin: 0.2em 0; }}
</style></head>
<body>
{body}
</body></html>
"""


def read_json_file(path: str | Path, what: str) -> Any:
    """The parsed JSON of ``path``; a missing or unparsable file raises ArtifactError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} does not exist", path=path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"not valid JSON ({exc})", path=path) from None
