"""``wsjds synth --out DIR [--settings S | --seed N knobs]``: write the embedded synthetic dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json

from wsjds.data.synthetic import SynthConfig, generate_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate the synthetic dataset (VOC layout + COCO JSON + segmentation PNGs)",
        description="Generate the synthetic dataset. The same seed and knobs give the same bytes.")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--settings", help="dataset settings JSON (the workflow's results/{ds}/dataset_settings.json): "
                                           "its `generator` section gives every knob, instead of their flags")
    for field in dataclasses.fields(SynthConfig):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), nargs=len(default), metavar=("LOW", "HIGH"),
                                help=f"default: {' '.join(map(str, default))}")
        else:
            parser.add_argument(flag, type=type(default), help=f"default: {default}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wsjds.commands.settings_flags import settings_or_flags
    from wsjds.runs import load_settings

    knobs = [field.name for field in dataclasses.fields(SynthConfig)]
    settings_or_flags(args, "settings", lambda path: _generator(load_settings(path, ("generator",))["generator"], path),
                      (), knobs)
    config = SynthConfig.from_config({name: getattr(args, name) for name in knobs if getattr(args, name) is not None})
    manifest = generate_dataset(args.out, config)
    print(json.dumps(manifest["splits"], sort_keys=True))
    return 0


def _generator(section: dict, path: str) -> dict:
    """Every knob of the settings' generator section (the defaults where it is silent); an unknown
    key is an ArtifactError naming the file."""
    from wsjds.errors import ArtifactError

    fields = {field.name: field.default for field in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ArtifactError(f"unknown generator knobs {unknown}; expected some of {sorted(fields)}", path=path)
    return {**fields, **section}
