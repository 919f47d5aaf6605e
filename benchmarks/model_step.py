"""Seconds and peak memory of one CGL forward + backward per Table 1 variant, on CPU (or --device).

    python benchmarks/model_step.py                   # small backbone, synthetic image, 200 proposals
    python benchmarks/model_step.py --model vgg16_c5d --scale 480 --proposals 200

Each measurement runs in a fresh subprocess so its peak resident memory is its own. The image
score gate is opened (tau = 0) so an untrained network exercises every guidance path. Prints one
JSON line per variant and writes them to --out if given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_small")
    parser.add_argument("--methods", nargs="+", default=["wsddn", "parallel", "det2seg", "seg2det", "wsjds"])
    parser.add_argument("--scale", type=int, default=0, help="shorter side to resize to (0: keep the synthetic size)")
    parser.add_argument("--proposals", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--child", method, "--model", args.model, "--scale", str(args.scale),
               "--proposals", str(args.proposals), "--repeats", str(args.repeats), "--device", args.device]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


def measure(method_name: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import yaml

    from wsjds.cgl.losses import CenterLoss
    from wsjds.cgl.objective import CGLConfig, Method, cgl_objective
    from wsjds.data.synthetic import SynthConfig, generate_image
    from wsjds.model.wsjds import build_model, weights_spec

    torch.manual_seed(0)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    model_cfg = dict(config["models"][args.model])
    weights = weights_spec(config["weights"][model_cfg["weights"]], with_file=False)   # timing needs no file
    method = Method.from_config(config["methods"][method_name])
    model = build_model(model_cfg, weights, 6, method.segmentation).to(args.device).train()
    cfg = dataclasses.replace(CGLConfig.from_config(config["cgl"]), tau=0.0)
    center = CenterLoss(6, model.detection.fc7.out_features).to(args.device)

    sample = generate_image(np.random.default_rng([0, 0, 3]), SynthConfig())
    rgb = torch.from_numpy(sample.image).permute(2, 0, 1).float()[None]
    if args.scale:
        factor = args.scale / min(rgb.shape[-2:])
        rgb = F.interpolate(rgb, scale_factor=factor, mode="bilinear", align_corners=False)
    height, width = rgb.shape[-2:]
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(args.proposals, 2, generator=g) * torch.tensor([width * 0.85, height * 0.85])
    size = torch.rand(args.proposals, 2, generator=g) * torch.tensor([width * 0.5, height * 0.5]) + 16
    rois = torch.cat([corner, torch.minimum(corner + size, torch.tensor([float(width), float(height)]))], 1)
    labels = torch.zeros(6)
    labels[[o.label for o in sample.objects]] = 1
    image = rgb.to(args.device)
    rois, labels = rois.to(args.device), labels.to(args.device)

    times = []
    for _ in range(args.repeats + 1):   # the first pass warms up allocators and kernels
        start = time.perf_counter()
        objective = cgl_objective(model, image, rois, None, labels, method, cfg, True, center)
        objective.loss.backward(inputs=model.trainable_parameters())
        model.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"method": method_name, "model": args.model, "image": [int(height), int(width)],
            "proposals": args.proposals, "seconds_per_step": round(float(np.median(times[1:])), 4),
            "peak_memory_mb": round(peak, 1), "device": args.device, "torch_threads": torch.get_num_threads()}


if __name__ == "__main__":
    main()
