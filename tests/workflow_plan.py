"""Helpers for tests that run the workflow or read its plan: a Snakemake runner for a temporary
working directory, the tiny synthetic config, and a parser for what `snakemake -n` prints.

A dry run prints one block per planned job (``rule NAME:`` / ``localrule NAME:`` and indented
``input:``, ``output:``, ``reason:`` ... lines). Jobs are identified by their output files, and a
job graph is built by matching one job's outputs with another's inputs, so a test can compute what
a move (``--forcerun``, ``--until``, a config change) must plan from the DAG itself instead of from
a hard-coded list that goes stale when stages are added.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE_TIMEOUT_S = 900

# The synthetic chain through the WSOD stages: what `snakemake --cores 2` built before the Fast R-CNN
# headline existed (wsjds.workflow.default_targets for ds=synth, method=wsjds). Tests name these
# files rather than rule `all`, so they do not depend on later stages. () means the default target.
WSOD_TARGETS = (
    "results/synth/dataset_summary/trainval.json",
    "results/synth/dataset_summary/test.json",
    "results/synth/proposals/trainval.h5",
    "results/synth/proposals/test.h5",
    "results/synth/wsjds/training/curves.png",
    "results/synth/wsjds/metrics/test_map.json",
    "results/synth/wsjds/metrics/trainval_corloc.json",
    "results/synth/wsjds/detections/test_coco_results.json",
    "results/synth/wsjds/pseudo_gt.h5",
)


def tiny_config() -> dict:
    """Config overrides for the smallest synthetic run: 6 + 3 images, one epoch of 3-image updates,
    one test scale, no flip. Every training recipe the synth dataset uses is shortened (the CGL
    recipe, the Fast R-CNN one where the config has that stage, and the trunk's pretraining)."""
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    synth = base["datasets"]["synth"]
    recipes = {synth["training"]}
    frcnn_preset = base.get("frcnn", {}).get(synth.get("frcnn"), {})
    if "training" in frcnn_preset:
        recipes.add(frcnn_preset["training"])
    weights = base["weights"][base["models"][synth["model"]]["weights"]]
    pretraining = weights.get("pretraining")
    return {
        "datasets": {"synth": {"generator": {"num_trainval": 6, "num_test": 3}}},
        "training": {name: {"epochs": 1, "effective_batch": 3} for name in sorted(recipes)},
        "inference": {synth["inference"]: {"scales": [176], "flip": False}},
        "pretraining": {} if pretraining is None else
        {pretraining: {"scenes": 30, "held_out": 6, "side": 64, "epochs": 1, "batch": 8}},
    }


def snakemake(workdir: Path, *args: str, configs: tuple[dict, ...] = (), env: dict | None = None,
              timeout: float = SNAKEMAKE_TIMEOUT_S, profile: str = "none") -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with config.yaml plus ``configs`` (written to
    override files). ``profile`` is the workflow profile (``none``: not even profiles/default).
    The process runs in a session of its own and is killed with its group on timeout."""
    files = [str(REPO / "config.yaml")]
    for k, override in enumerate(configs):
        path = workdir / f"override{k}.yaml"
        path.write_text(yaml.safe_dump(override))
        files.append(str(path))
    env = dict(env if env is not None else os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", *files, "--workflow-profile", profile, *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        err += f"\n[test] snakemake killed after {timeout:.0f} s"
        return subprocess.CompletedProcess(argv, 124, out, err)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@dataclass(frozen=True)
class Job:
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    reason: str = field(compare=False, default="")
    resources: str = field(compare=False, default="")
    local: bool = field(compare=False, default=False)      # a local rule: runs in the main process

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.rule, self.outputs or self.inputs


def planned(stdout: str) -> list[Job]:
    """The jobs a dry run plans (empty when it says there is nothing to be done)."""
    jobs = []
    stdout = re.split(r"^Reasons:$", stdout, flags=re.M)[0]   # the summary after the last job
    for block in re.split(r"^(?=(?:local)?(?:rule|checkpoint) \w+:$)", stdout, flags=re.M):
        head = re.match(r"(local)?(?:rule|checkpoint) (\w+):$", block, re.M)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        jobs.append(Job(head.group(2), _files(fields, "input"), _files(fields, "output"), fields.get("reason", ""),
                        fields.get("resources", ""), bool(head.group(1))))
    return jobs


def _files(fields: dict[str, str], key: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in fields.get(key, "").split(",") if f.strip())


def counts(jobs) -> dict[str, int]:
    out: dict[str, int] = {}
    for job in jobs:
        out[job.rule] = out.get(job.rule, 0) + 1
    return out


class JobGraph:
    """Jobs of a forced dry run (``-F -n``) linked by files: a job feeds the jobs that read its outputs."""

    def __init__(self, jobs: list[Job]):
        self.jobs = {job.key: job for job in jobs}
        producer = {f: job.key for job in jobs for f in job.outputs}
        self.parents: dict = {key: set() for key in self.jobs}
        self.children: dict = {key: set() for key in self.jobs}
        for job in jobs:
            for f in job.inputs:
                if f in producer:
                    self.parents[job.key].add(producer[f])
                    self.children[producer[f]].add(job.key)

    def of_rule(self, rule: str) -> set:
        return {key for key, job in self.jobs.items() if job.rule == rule}

    def _closure(self, start: set, links: dict) -> set:
        seen, todo = set(start), list(start)
        while todo:
            for nxt in links[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def downstream(self, start: set) -> set:
        """``start`` and every job that (transitively) reads their outputs."""
        return self._closure(start, self.children)

    def upstream(self, start: set) -> set:
        """``start`` and every job they (transitively) depend on."""
        return self._closure(start, self.parents)

    def counts(self, keys: set) -> dict[str, int]:
        return counts(self.jobs[key] for key in keys)
