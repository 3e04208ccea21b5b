#!/usr/bin/env bash
# `make test`: every phase CI runs, each timed, and the timing table printed at the end, also when a
# phase fails. A failed set-up phase (host, virtualenv, collection, lab image, repository, wheelhouse,
# prepared node image) stops the run, since everything after needs it; the checks (lint, sanity, unit,
# site, molecule) all run and any failure fails the run.
#
#   tools/test-suite.sh            (MAKE, MOLECULE_SCENARIOS, MOLECULE_JOBS, MOLECULE_ALONE, MOLECULE_BESIDE
#                                   from make)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
make=${MAKE:-make}
timing=$root/tools/timing.sh
export TIMING_FILE=$root/build/timing.tsv
"$timing" reset

status=0
phase() {  # phase NAME [--cold-if RE | --warm-if RE] -- make TARGET...
  echo "=== make test: $1"
  "$timing" run "$@" || status=1
}

setup() {
  phase host --cold-if 'installing host packages|starting dockerd' -- "$make" --no-print-directory host || return 1
  # make echoes the recipe only when it runs: the virtualenv was (re)installed.
  phase venv --cold-if 'pip install -q -r requirements.txt' -- "$make" --no-print-directory venv || return 1
  phase collection --warm-if 'collection-tree' -- "$make" --no-print-directory collection || return 1
  phase "lab image" --cold-if '^building lab image' -- "$make" --no-print-directory lab-image || return 1
  phase "lab repository" --warm-if 'cached' -- "$make" --no-print-directory lab-repo || return 1
  phase "lab wheelhouse" --cold-if '^building wheelhouse' -- "$make" --no-print-directory lab-wheelhouse || return 1
  phase "lab engine wheels" --cold-if '^built engine wheelhouse' -- "$make" --no-print-directory lab-engine-wheels || return 1
  phase "lab prepared node" --cold-if '^building prepared node image' -- "$make" --no-print-directory lab-node-prepared || return 1
  phase "lab llama-server" --cold-if '^building llama-server' -- "$make" --no-print-directory lab-llama-server || return 1
}

if setup; then
  phase lint -- "$make" --no-print-directory lint
  phase sanity -- "$make" --no-print-directory sanity
  phase unit -- "$make" --no-print-directory unit
  phase site --cold-if 'installing galaxy-importer' -- "$make" --no-print-directory site
  # One row per scenario (tools/molecule-run.sh adds them).
  echo "=== make test: molecule"
  "$make" --no-print-directory molecule || status=1
fi

"$timing" table
if [ "$status" -ne 0 ]; then
  echo "make test: FAILED (see the phases marked FAILED above)"
  exit 1
fi
echo "make test: all checks passed"
