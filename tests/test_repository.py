"""The front door stays true: CI runs exactly the README's test command, and the pinned torch /
torchvision pair imports together (torchvision's compiled ops included)."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision.ops


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    test_commands = [b for b in blocks if "pytest" in b]
    assert len(test_commands) == 1, blocks
    ci = (repo_root / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci


def test_torchvision_ops_run_on_this_torch():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    assert torchvision.ops.box_iou(boxes, boxes)[0, 1].item() == pytest.approx(25.0 / 175.0)
    pooled = torchvision.ops.roi_pool(torch.arange(16.0).reshape(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 3, 3]]), 2)
    assert pooled.flatten().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_the_cli_starts_without_loading_torch():
    """Every rule calls `wsjds`; CPU stages (proposals, evaluation, masks' merge) must not pay for
    importing torch just to parse their arguments."""
    import subprocess
    import sys

    code = "import sys, wsjds.cli; wsjds.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_report_command_needs_nothing_beyond_the_user_install(repo_root):
    """README's `snakemake --report` imports jinja2 and pygments (snakemake/report/html_reporter);
    Snakemake requires only jinja2, so the other must be a runtime dependency, not a test one."""
    import importlib.metadata
    import tomllib

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()

    declared = {name(r) for r in tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]}
    from_snakemake = {name(r) for r in importlib.metadata.requires("snakemake") or [] if "extra ==" not in r}
    for package in ("jinja2", "pygments"):
        assert package in declared | from_snakemake, f"{package} comes only with the test extra"


def test_readme_puts_snakemake_targets_before_configfile(repo_root):
    """After `--configfile A B`, Snakemake reads every further word as a config file, so a target
    there is silently a config file; README's commands must name targets first."""
    commands = re.findall(r"snakemake[^`\n]*--configfile[^`\n]*", (repo_root / "README.md").read_text())
    assert commands
    for command in commands:
        after = command.split("--configfile", 1)[1].split()
        assert not [word for word in after if word.startswith("results/") or word == "all"], command


def test_artifact_paths_are_spelt_only_in_workflow_paths(repo_root):
    """Rules and workflow helpers name results through wsjds.workflow.paths; only logs and Snakemake
    benchmark files (which nothing else reads) are spelt beside their rule."""
    offenders = []
    sources = [*sorted((repo_root / "rules").glob("*.smk")), repo_root / "Snakefile",
               *sorted((repo_root / "wsjds" / "workflow").glob("*.py"))]
    for path in sources:
        if path.name == "paths.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"""["']results/""", code) and "/benchmarks/" not in code:
                offenders.append(f"{path.relative_to(repo_root)}:{number}: {line.strip()}")
    assert not offenders, "artifact paths spelt outside wsjds/workflow/paths.py:\n" + "\n".join(offenders)
