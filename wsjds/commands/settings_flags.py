"""A command's dataset and numbers come from one source per call: the settings file its rule wrote
from the config (``--settings``), or flags when a user runs the command by hand, never a mix.

The workflow passes settings files only, so every config number reaches a job through one file;
the flags keep the commands usable on predictions and datasets outside the workflow.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wsjds.errors import UserError


def settings_or_flags(args: argparse.Namespace, settings_dest: str, read: Callable[[str], Mapping[str, Any]],
                      required: Sequence[str], optional: Sequence[str] = ()) -> None:
    """Fill the ``required`` and ``optional`` dests of ``args`` from the settings file in
    ``args.<settings_dest>`` (``read(path)`` maps each dest to its value); then none of their flags
    may be given. Without the file, every ``required`` flag must be given. A UserError names the flags."""
    dests = (*required, *optional)
    path = getattr(args, settings_dest)
    settings_flag = _flag(settings_dest)
    if path is None:
        missing = [_flag(dest) for dest in required if getattr(args, dest) is None]
        if missing:
            raise UserError(f"give {', '.join(missing)}, or {settings_flag} (a settings file that holds them)")
        return
    given = [_flag(dest) for dest in dests if getattr(args, dest) is not None]
    if given:
        raise UserError(f"{settings_flag} {path} holds {', '.join(given)}; give either the file or the flags")
    values = read(path)
    for dest in dests:
        setattr(args, dest, values[dest])


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def evaluation_values(path: str) -> dict[str, Any]:
    """The dests of an evaluation settings file (rule ``evaluation_settings``; a report settings file
    holds the same sections): the dataset's root, kind and box annotations, and the ``evaluation``
    numbers."""
    from wsjds.data.kinds import CHAIN_KINDS
    from wsjds.runs import dataset_section, load_settings

    settings = load_settings(path, ("dataset", "evaluation"))
    data = dataset_section(settings, path, CHAIN_KINDS, ("name", "kind", "root", "boxes"))
    numbers = settings["evaluation"]
    return {"root": data["root"], "kind": data["kind"], "boxes": data["boxes"], "use07": numbers["use07"],
            "iou_threshold": numbers["iou_threshold"], "corloc_definition": numbers["corloc_definition"],
            **numbers["failure_modes"]}


def report_values(path: str, item: str) -> dict[str, Any]:
    """The dests of one report item (``pr_curves``, ``figure4``, ``gallery``, ``ablation``) in a report
    settings file (rule ``report_settings``): the evaluation values and the item's figure numbers."""
    from wsjds.errors import ArtifactError
    from wsjds.runs import load_settings

    report = load_settings(path, ("report",))["report"]
    if item not in report:
        raise ArtifactError(f"the report settings have no {item!r} item; expected {sorted(report)}", path=path)
    return {**evaluation_values(path), **report[item]}
