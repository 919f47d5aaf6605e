#!/usr/bin/env bash
# Snakemake runs this once inside a new conda environment built from wsjds.yaml
# (--software-deployment-method conda): install the wsjds package from the checkout the workflow
# runs from (WSJDS_SOURCE, set by the Snakefile), editable and without touching the pinned deps.
set -euo pipefail
pip install --no-deps --no-build-isolation -e "${WSJDS_SOURCE:?WSJDS_SOURCE is set by the Snakefile to the repository root}"
