"""The proposal rules: per-dataset settings, each job's settings file, the shard fan-out and an import through Snakemake."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate

from proposal_helpers import make_voc
from wsjds.proposals import ProposalStore
from wsjds import workflow as wf
from wsjds.workflow import proposals as proposal_cfg

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def base_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def snakemake(workdir: Path, *args: str, override: dict) -> subprocess.CompletedProcess:
    path = workdir / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(REPO / "config.yaml"), str(path),
                           "--workflow-profile", "none", *args], capture_output=True, text=True, env=env, cwd=workdir)


def test_dataset_overrides_merge_into_the_defaults():
    config = base_config()
    config["datasets"]["voc07"]["proposals"] = {"selective_search": {"mode": "quality"}, "shards": 3}
    validate(config, SCHEMA)
    merged = proposal_cfg.proposal_settings(config, "voc07")
    assert merged["shards"] == 3 and merged["min_side"] == config["proposals"]["min_side"]
    assert merged["selective_search"]["mode"] == "quality"
    assert merged["selective_search"]["resize_max_side"] == config["proposals"]["selective_search"]["resize_max_side"]
    assert config["proposals"]["selective_search"]["mode"] == "fast"  # the defaults are not modified
    synth = proposal_cfg.proposal_settings(config, "synth")
    assert synth["min_side"] == 8 and synth["shards"] == 2


def test_flags_shards_and_caps_per_split():
    config = base_config()
    assert proposal_cfg.max_per_image(config, "voc07", "trainval") == config["proposals"]["max_per_image_train"]
    assert proposal_cfg.max_per_image(config, "voc07", "test") == config["proposals"]["max_per_image_test"]
    job = wf.proposal_job_settings(config, "synth", "test")
    synth = proposal_cfg.proposal_settings(config, "synth")
    assert job["policy"] == {"min_side": synth["min_side"], "whole_image_fallback": synth["whole_image_fallback"],
                             "max_per_image": config["proposals"]["max_per_image_test"]}
    assert job["selective_search"] == synth["selective_search"] and "import_format" not in job
    assert job["dataset"] == {"name": "synth", "kind": "synthetic", "root": "results/synth/dataset",
                              "include_difficult_labels": False}
    assert job["split"] == "test"
    assert wf.proposal_job_settings(config, "synth", "trainval")["policy"]["max_per_image"] == \
        config["proposals"]["max_per_image_train"]
    assert proposal_cfg.shard_paths(config, "synth", "trainval") == [
        "results/synth/proposals/shards/trainval.0-of-2.h5", "results/synth/proposals/shards/trainval.1-of-2.h5"]
    config["datasets"]["voc07"]["proposals"] = {"source": {"format": "ss-mat", "path": "data/ss/voc_2007_{split}.mat"}}
    assert proposal_cfg.import_spec(config, "voc07", "test") == ("ss-mat", "data/ss/voc_2007_test.mat")
    assert wf.proposal_job_settings(config, "voc07", "test")["import_format"] == "ss-mat"
    datasets = ["synth", "voc07"]
    assert proposal_cfg.datasets_with_source(config, datasets, computed=True) == ["synth"]
    assert proposal_cfg.datasets_with_source(config, datasets, computed=False) == ["voc07"]
    with pytest.raises(ValueError, match="no import spec"):
        proposal_cfg.import_spec(config, "synth", "test")


def test_dry_run_fans_out_one_job_per_shard(tmp_path, voc_sample):
    override = {"datasets": {"voc07": {"root": str(voc_sample), "proposals": {"shards": 5}}}}
    result = snakemake(tmp_path, "-n", "results/voc07/proposals/test.h5", override=override)
    assert result.returncode == 0, result.stderr
    jobs = dict(re.findall(r"^(proposals_\w+)\s+(\d+)$", result.stdout, re.M))
    assert jobs == {"proposals_compute_shard": "5", "proposals_merge": "1"}
    assert "results/voc07/proposals/shards/test.4-of-5.h5" in result.stdout


def test_import_rule_writes_the_store(tmp_path):
    images = [("000005", 100, 90), ("000007", 120, 100)]
    voc = make_voc(tmp_path / "VOC2007", {"trainval": images, "test": images}, images=True)
    pkl = tmp_path / "props_test.pkl"
    pkl.write_bytes(pickle.dumps({"boxes": [np.array([[19, 9, 79, 49]]), np.array([[0, 0, 119, 99]])],
                                  "scores": [np.array([0.5]), np.array([0.25])], "indexes": [5, 7]}))
    source = {"format": "pkl", "path": str(tmp_path / "props_{split}.pkl")}
    override = {"datasets": {"voc07": {"root": str(voc), "proposals": {"source": source, "min_side": 4}}}}
    result = snakemake(tmp_path, "--cores", "1", "results/voc07/proposals/test.h5", override=override)
    assert result.returncode == 0, result.stderr
    with ProposalStore.open(tmp_path / "results/voc07/proposals/test.h5", dataset="voc07", split="test") as store:
        np.testing.assert_array_equal(store["000005"][0], [[19, 9, 80, 50]])
        np.testing.assert_array_equal(store["000007"][0], [[0, 0, 120, 100]])
        assert store.header.source == "import:pkl" and store.parameters["max_per_image"] == 9999
    assert (tmp_path / "logs/voc07/proposals_import_test.log").is_file()
    assert (tmp_path / "results/voc07/benchmarks/proposals_import_test.tsv").is_file()


def test_a_split_listing_an_id_without_files_fails_in_the_check_before_any_proposal_job(tmp_path):
    images = [("000005", 100, 90), ("000007", 120, 100), ("000009", 90, 110)]
    voc = make_voc(tmp_path / "VOC2007", {"test": images}, images=True)
    with (voc / "ImageSets/Main/test.txt").open("a") as listing:
        listing.write("000404\n")                                   # listed, no XML and no JPEG
    override = {"datasets": {"voc07": {"root": str(voc), "proposals": {"shards": 2}}}}
    result = snakemake(tmp_path, "--cores", "1", "results/voc07/proposals/test.h5", override=override)
    assert result.returncode != 0
    log = (tmp_path / "logs/voc07/dataset_summary_test.log").read_text()
    assert "'000404'" in log and "000404.xml" in log and "listed in ImageSets but not on disk" in log
    assert not list((tmp_path / "logs/voc07").glob("proposals_*")), "a proposal job ran before the check"
    assert not list((tmp_path / "results/voc07").glob("proposals/**/*.h5"))   # only the settings may be written


def test_the_check_reads_image_headers_without_decoding(tmp_path):
    images = [("000005", 100, 90), ("000007", 120, 100)]
    voc = make_voc(tmp_path / "VOC2007", {"test": images}, images=True)
    (voc / "JPEGImages/000007.jpg").unlink()
    override = {"datasets": {"voc07": {"root": str(voc)}}}
    result = snakemake(tmp_path, "--cores", "1", "results/voc07/proposals/test.h5", override=override)
    assert result.returncode != 0
    log = (tmp_path / "logs/voc07/dataset_summary_test.log").read_text()
    assert "'000007'" in log and "000007.jpg" in log and "image file is missing" in log
    assert not list((tmp_path / "logs/voc07").glob("proposals_*"))
