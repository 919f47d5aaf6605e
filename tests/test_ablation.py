"""The Table 1 ablation: seed-suffixed run names (``wsjds-seed12``) reach the training settings; the
``ablation`` section names configured methods."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from workflow_plan import REPO
from wsjds import workflow as wf
from wsjds.train import settings_hash

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


# --- run names with a seed ---------------------------------------------------------------------

@pytest.mark.parametrize("name, parsed", [("wsjds", ("wsjds", None)), ("wsjds-seed12", ("wsjds", 12)),
                                          ("det2seg-seed0", ("det2seg", 0)), ("wsddn-seed1234", ("wsddn", 1234))])
def test_parse_method_reads_the_seed_suffix(name, parsed):
    assert wf.parse_method(name) == parsed
    assert wf.method_run_name(*parsed) == name


@pytest.mark.parametrize("name", ["", "wsjds-seed", "wsjds-seed012", "wsjds-seed-1", "wsjds-12", "wsjds_seed12",
                                  "wsjds-seed12x", "WSJDS", "wsjds/frcnn", "wsjds-seed1-seed2"])
def test_parse_method_rejects_other_names_saying_what_a_name_looks_like(name):
    with pytest.raises(ValueError, match=r"bad method name .*METHOD-seedN"):
        wf.parse_method(name)


def test_the_wildcards_take_configured_methods_with_a_seed_only():
    method, run = re.compile(wf.method_wildcard(CONFIG)), re.compile(wf.run_wildcard(CONFIG))
    assert all(method.fullmatch(n) for n in ("wsjds", "wsjds-seed12", "parallel-seed0"))
    assert not any(method.fullmatch(n) for n in ("wsjds-seed012", "foo-seed1", "wsjds-seed", "wsjds/frcnn"))
    assert run.fullmatch("wsjds-seed12/frcnn") and run.fullmatch("wsddn") and not run.fullmatch("wsjds/frcnn/x")
    with pytest.raises(ValueError, match="'foo' .* is not among methods"):
        wf.method_entry(CONFIG, "foo-seed1")


def test_a_seed_suffix_is_the_training_seed_of_the_wsod_and_fast_rcnn_runs():
    plain, seeded = wf.run_settings(CONFIG, "synth", "wsjds"), wf.run_settings(CONFIG, "synth", "wsjds-seed12")
    recipe = CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]
    assert plain["training"]["seed"] == recipe["seed"] != 12 and seeded["training"]["seed"] == 12
    assert seeded["method_name"] == "wsjds-seed12" and seeded["method"] == CONFIG["methods"]["wsjds"]
    assert {k: v for k, v in seeded["training"].items() if k != "seed"} == \
           {k: v for k, v in plain["training"].items() if k != "seed"}
    assert settings_hash(seeded) != settings_hash(plain)
    assert settings_hash(seeded) != settings_hash(wf.run_settings(CONFIG, "synth", "wsjds-seed13"))
    frcnn, frcnn_seeded = (wf.run_settings(CONFIG, "synth", f"{m}/frcnn") for m in ("wsjds", "wsjds-seed12"))
    frcnn_recipe = CONFIG["training"][CONFIG["frcnn"][CONFIG["datasets"]["synth"]["frcnn"]]["training"]]
    assert frcnn["training"]["seed"] == frcnn_recipe["seed"] and frcnn_seeded["training"]["seed"] == 12
    assert frcnn_seeded["method_name"] == "wsjds-seed12" and settings_hash(frcnn_seeded) != settings_hash(frcnn)
    assert CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]["seed"] == recipe["seed"]   # config untouched


# --- config checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(methods=["wsddn", "wsjdss"]), r"ablation.methods \['wsjdss'\] are not among methods"),
    (lambda a: a.update(frcnn_methods=["parallel"], methods=["wsddn", "wsjds"]),
     r"ablation.frcnn_methods \['parallel'\] are not among ablation.methods"),
    (lambda a: a.update(seeds=[11, 12, 11]), r"ablation.seeds repeats \[11\]"),
])
def test_check_references_rejects_a_bad_ablation(mutate, message):
    wf.check_references(CONFIG)
    config = copy.deepcopy(CONFIG)
    mutate(config["ablation"])
    with pytest.raises(ValueError, match=message):
        wf.check_references(config)
