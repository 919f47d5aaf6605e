"""``wsjds synth --out DIR --seed N [knobs]``: write the embedded synthetic dataset."""

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
    for field in dataclasses.fields(SynthConfig):
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), nargs=len(default), default=default,
                                metavar=("LOW", "HIGH"), help=f"default: {' '.join(map(str, default))}")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default: {default}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SynthConfig)}
    config = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    manifest = generate_dataset(args.out, config)
    print(json.dumps(manifest["splits"], sort_keys=True))
    return 0
