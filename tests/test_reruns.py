"""Rerunning one stage: the user's moves, checked by the jobs `snakemake -n` plans for each.

    snakemake -c2 --forcerun train_round        the stage and everything downstream, nothing upstream
    snakemake -c2 --forcerun train_round --until results/synth/wsjds/round2.pt
                                                the stage only (--until names its last file: with the
                                                rule name, Snakemake 9.27 stops after the first of the
                                                chained rounds, "BUG: Out of jobs ready to be started")
    snakemake -c2 --until pseudo_gt             a stage and what it needs, nothing past it
    edit a value in config.yaml, then snakemake -c2
                                                the jobs whose params the value reaches, and their
                                                downstream (Snakemake's default --rerun-triggers
                                                include params; --rerun-triggers mtime ignores it)

After one complete tiny run (a module fixture), each move is dry-run in the same directory and its
plan is compared with what the move must plan, computed from the workflow's own job graph (``-F
-n``: every job, linked by files), so the tests stay true when stages are added.

Round checkpoints are ``protected()`` (read-only once written). For a user other than root, a real
rerun that would overwrite them stops with "Write-protected output files": retraining means removing
them first (``rm -f results/synth/wsjds/round*.pt``). Root ignores file modes, so a root CI cannot
show that refusal.
"""

from __future__ import annotations

import re

import pytest
import yaml

from workflow_plan import REPO, WSOD_TARGETS, JobGraph, counts, planned, snakemake, tiny_config

pytestmark = pytest.mark.slow

BASE = yaml.safe_load((REPO / "config.yaml").read_text())
INFERENCE = BASE["datasets"]["synth"]["inference"]          # the synth inference preset's name
UPSTREAM_OF_TRAINING = {"synth_dataset", "dataset_summary", "proposals_compute_shard", "proposals_merge",
                        "proposals_import"}
TARGETS = WSOD_TARGETS    # what the fixture builds and every move asks for
WSOD_CHECKPOINT = re.compile(r"^results/synth/wsjds/round\d+\.pt$")


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """A working directory holding a complete tiny run of TARGETS, and the job graph of TARGETS."""
    workdir = tmp_path_factory.mktemp("reruns")
    config = tiny_config()
    run = snakemake(workdir, "--cores", "2", *TARGETS, configs=(config,))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    graph = snakemake(workdir, "-n", "-F", *TARGETS, configs=(config,))
    assert graph.returncode == 0, graph.stderr[-3000:]
    return workdir, config, JobGraph(planned(graph.stdout))


def dry_run(workdir, config, *args, extra=()) -> list:
    result = snakemake(workdir, "-n", *TARGETS, *args, configs=(config, *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return planned(result.stdout)


def test_the_completed_run_is_up_to_date(completed):
    workdir, config, graph = completed
    assert dry_run(workdir, config) == []
    assert {"synth_dataset", "train_round", "detect_shard", "pseudo_gt", "voc_metric"} <= set(counts(
        graph.jobs.values()))


def test_forcerun_replans_the_stage_and_everything_downstream_only(completed):
    workdir, config, graph = completed
    jobs = dry_run(workdir, config, "--forcerun", "train_round")
    expected = graph.downstream(graph.of_rule("train_round"))
    assert {job.key for job in jobs} == expected
    planned_rules = counts(jobs)
    assert not UPSTREAM_OF_TRAINING & set(planned_rules), planned_rules
    assert {"train_round", "training_curves", "detect_shard", "detect_merge", "voc_metric", "detect_export",
            "pseudo_gt"} <= set(planned_rules)
    assert sum(bool(WSOD_CHECKPOINT.match(f)) for job in jobs for f in job.outputs) == wsod_rounds()


def test_forcerun_with_until_stops_at_the_stage(completed):
    """``--until`` takes the stage's last file here: with the rule name, Snakemake 9.27 stops after
    the first of several chained jobs of one rule ("BUG: Out of jobs ready to be started")."""
    workdir, config, graph = completed
    last_round = f"results/synth/wsjds/round{wsod_rounds()}.pt"
    jobs = dry_run(workdir, config, "--forcerun", "train_round", "--until", last_round)
    stage = graph.of_rule("train_round")
    until = {key for key, job in graph.jobs.items() if last_round in job.outputs}
    assert {job.key for job in jobs} == graph.downstream(stage) & graph.upstream(until)
    rules = counts(jobs)
    assert rules == {"train_round": wsod_rounds()}, rules


def test_until_runs_a_stage_and_its_upstream_jobs_only(tmp_path, completed):
    _, config, graph = completed
    jobs = dry_run(tmp_path, config, "--until", "pseudo_gt")    # a fresh directory: nothing built yet
    assert {job.key for job in jobs} == graph.upstream(graph.of_rule("pseudo_gt"))
    rules = counts(jobs)
    assert rules["pseudo_gt"] == 1 and rules["synth_dataset"] == 1
    assert rules["dataset_summary"] == 1          # the trainval split's check, before its proposals
    assert not {"voc_metric", "detect_export", "training_curves"} & set(rules), rules
    assert all("/test" not in f for job in jobs for f in job.outputs), "no test-split job feeds the pseudo GT"


def changed_params_plan(completed, override):
    workdir, config, graph = completed
    jobs = dry_run(workdir, config, extra=(override,))
    changed = {job.key for job in jobs if "Params have changed" in job.reason}
    assert changed, [(job.rule, job.reason) for job in jobs]
    assert {job.key for job in jobs} == graph.downstream(changed)
    return jobs, changed, graph


def test_changed_inference_parameter_replans_detection_and_downstream_only(completed):
    jobs, changed, graph = changed_params_plan(completed, {"inference": {INFERENCE: {"nms_iou": 0.4}}})
    assert {graph.jobs[key].rule for key in changed} == {"detect_settings"}
    assert ("detect_settings", ("results/synth/wsjds/detect_settings.json",)) in changed
    wsod_shards = {key for key in graph.of_rule("detect_shard")
                   if key[1][0].startswith("results/synth/wsjds/detections/")}
    assert wsod_shards <= {job.key for job in jobs}
    assert not UPSTREAM_OF_TRAINING & set(counts(jobs))
    assert not any(WSOD_CHECKPOINT.match(f) for job in jobs for f in job.outputs), "the WSOD model is kept"
    assert {"detect_merge", "voc_metric", "pseudo_gt", "detect_export"} <= set(counts(jobs))


def test_changed_training_parameter_replans_training_and_downstream_only(completed):
    jobs, changed, graph = changed_params_plan(completed, {"cgl": {"crf": {"iterations": 5}}})
    assert {graph.jobs[key].rule for key in changed} == {"train_settings"}
    assert ("train_settings", ("results/synth/wsjds/settings.json",)) in changed
    rules = counts(jobs)
    assert not UPSTREAM_OF_TRAINING & set(rules), rules
    assert sum(bool(WSOD_CHECKPOINT.match(f)) for job in jobs for f in job.outputs) == wsod_rounds()


def test_mtime_only_trigger_ignores_a_parameter_change(completed):
    workdir, config, _ = completed
    jobs = dry_run(workdir, config, "--rerun-triggers", "mtime", extra=({"inference": {INFERENCE: {"nms_iou": 0.4}}},))
    assert jobs == []


def wsod_rounds() -> int:
    return BASE["training"][BASE["datasets"]["synth"]["training"]]["rounds"]
