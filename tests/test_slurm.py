"""Cluster and software deployment: the SLURM profiles, a real run through SLURM, the conda env.

The real run starts a single-node SLURM with munge on localhost (tests/slurm_cluster.py; a fake GPU,
so the GPU rules are submitted with --gpus=N), sends the tiny synthetic pipeline through
profiles/slurm-ci, and checks that every job that is not a local rule went through sbatch and
completed in SLURM. It needs root and the Debian packages slurm-wlm and munge (.ci/run installs
them when it runs as root); elsewhere it is skipped with the reason, unless WSJDS_REQUIRE_SLURM=1
(set by .ci/run once the packages are installed), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from slurm_cluster import LocalSlurm, pid_alive, unavailable_reason
from workflow_plan import REPO, counts, planned, snakemake, tiny_config

# What the SLURM run builds: the headline, i.e. the whole chain from data to Fast R-CNN mAP.
SLURM_TARGETS: tuple[str, ...] = ("results/synth_frcnn_map.json",)
SLURM_RUN_TIMEOUT_S = 1200
SLURM_PROFILE = str(REPO / "profiles" / "slurm-ci")
USER_PROFILE = str(REPO / "profiles" / "slurm")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$", re.M)


def test_conda_env_mirrors_pyproject_dependencies():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    env = yaml.safe_load((REPO / "envs" / "wsjds.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == pyproject["project"]["dependencies"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert pyproject["project"]["requires-python"] == ">=3.11" and python == "python=3.11"
    deploy = REPO / "envs" / "wsjds.post-deploy.sh"
    assert os.access(deploy, os.X_OK) and "pip install --no-deps" in deploy.read_text()
    used = [(rules.name, env_file) for rules in sorted((REPO / "rules").glob("*.smk"))
            for env_file in re.findall(r'conda:\s*\n\s*"([^"]+)"', rules.read_text())]
    assert used and all(env_file == "../envs/wsjds.yaml" for _, env_file in used), used


def test_slurm_profile_sends_gpu_jobs_to_the_gpu_partition(tmp_path):
    """A dry run with the user's profile (no daemons needed): every job carries the account, GPU
    jobs go to the GPU partition with CPUs per GPU, all others to the CPU partition."""
    env = dict(os.environ, WSJDS_SLURM_ACCOUNT="acct42", WSJDS_SLURM_PARTITION="cpuq", WSJDS_SLURM_GPU_PARTITION="gpuq")
    result = snakemake(tmp_path, "-n", "-F", configs=(tiny_config(),), env=env, profile=USER_PROFILE)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned(result.stdout)
    gpu_rules = set()
    for job in jobs:
        res = dict(re.findall(r"(\w+)=([^,]+)", job.resources))
        assert res.get("slurm_account") == "acct42", (job.rule, res)
        if int(res.get("gpu", 0)) > 0:
            gpu_rules.add(job.rule)
            assert res.get("slurm_partition") == "gpuq" and "cpus_per_gpu" in res, (job.rule, res)
        else:
            assert res.get("slurm_partition") == "cpuq", (job.rule, res)
    assert {"train_round", "frcnn_round", "detect_shard"} <= gpu_rules


@pytest.mark.slurm
@pytest.mark.slow
def test_pipeline_runs_through_a_real_slurm(tmp_path):
    reason = unavailable_reason()
    if reason:
        if os.environ.get("WSJDS_REQUIRE_SLURM") == "1":
            pytest.fail(f"WSJDS_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    config = tiny_config()
    # The CGL rounds train in 2 processes (gloo: the GPUs are fake), so they ask SLURM for 2 GPUs.
    cgl_recipe = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["synth"]["training"]
    config["training"][cgl_recipe].update(world_size=2, effective_batch=2)
    plan = planned(snakemake(tmp_path, "-n", *SLURM_TARGETS, configs=(config,), profile=SLURM_PROFILE).stdout)
    assert plan, "the dry run planned nothing"

    cluster = LocalSlurm(fake_gpus=2)
    started = time.monotonic()
    try:
        with cluster:
            assert cluster.command("srun", "hostname").returncode == 0
            run = snakemake(tmp_path, *SLURM_TARGETS, configs=(config,), env=cluster.env, profile=SLURM_PROFILE,
                            timeout=SLURM_RUN_TIMEOUT_S)
            wall = time.monotonic() - started
            log = run.stdout + run.stderr
            assert run.returncode == 0, f"{log[-6000:]}\n{cluster.log_tails()}"
            submitted = SUBMITTED.findall(log)
            slurm_jobs = cluster.job_table()
        pids = dict(cluster.started_pids)
    finally:
        cluster.stop()
        cluster.cleanup()

    # The run ran the planned jobs; every one that is not a local rule went through sbatch, once,
    # and completed in SLURM.
    ran = planned(log)       # the run prints a block per job, "localrule" for those run in place
    assert {job.key for job in ran} == {job.key for job in plan}
    remote = [job for job in ran if not job.local]
    assert len(submitted) == len(remote), (len(submitted), [job.rule for job in remote])
    gpu_rules = {job.rule for job in remote if re.search(r"\bgpu=[1-9]", job.resources)}
    assert {"train_round", "frcnn_round", "detect_shard"} <= gpu_rules
    by_rule: dict[str, int] = {}
    for _, slurm_id, slurm_log in submitted:
        info = slurm_jobs[slurm_id]
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", info["Comment"]).group(1)
        by_rule[rule] = by_rule.get(rule, 0) + 1
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
        assert Path(slurm_log).is_file() and f"/rule_{rule}/" in slurm_log
        if rule in gpu_rules:
            two_processes = rule == "train_round"   # CGL world_size 2; Fast R-CNN and detection one each
            assert info.get("TresPerJob") == f"gres:gpu:{2 if two_processes else 1}", info   # --gpus=world_size
    assert by_rule == counts(remote)
    for target in SLURM_TARGETS:
        assert (tmp_path / target).exists(), target
    for round_log in sorted((tmp_path / "logs" / "synth" / "wsjds").glob("train_round*.log")):
        text = round_log.read_text()
        assert "starting 2 training processes (gloo" in text and "2 processes)" in text, text[-2000:]
    again = snakemake(tmp_path, "-n", *SLURM_TARGETS, configs=(config,))
    assert "Nothing to be done" in again.stdout + again.stderr

    # Every process the cluster started is gone.
    assert cluster.alive_pids() == []
    assert not any(pid_alive(pid) for pid in pids.values()), pids
    print(f"\nSLURM run: {len(submitted)} jobs through sbatch, {wall:.0f} s wall (cluster start included)")
