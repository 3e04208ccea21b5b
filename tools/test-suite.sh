#!/usr/bin/env bash
# `make test`: every phase CI runs, each timed, and the timing table printed at the end, also when a
# phase fails. A failed set-up phase (host, virtualenv, collection, lab image, repository, wheelhouse,
# prepared node image) stops the run, since everything after needs it; the checks (lint, sanity, unit,
# site, molecule) all run and any failure fails the run.
#
#   tools/test-suite.sh            (MAKE, MOLECULE_SCENARIOS, MOLECULE_JOBS, MOLECULE_ALONE, MOLECULE_BESIDE
#                                   from make; SUITE_JOBS)
#
# The checks before molecule (lint, sanity, unit, site) each keep one core busy, one after the other, for
# about 14 minutes on 2 cores. With SUITE_JOBS=2 (the default) they run in two lanes side by side:
# lint then site (both run ansible-lint, never at once), and sanity then unit. Each lane's output goes to
# build/test-logs/<lane>.log and is printed whole when the lane ends (never interleaved); a line every few
# minutes says what still runs. SUITE_JOBS=1: one after the other, as before.
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
  "$timing" run "$@" || { status=1; return 1; }
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

lane_lint_site() {
  local rc=0
  phase lint -- "$make" --no-print-directory lint || rc=1
  phase site --cold-if 'installing galaxy-importer' -- "$make" --no-print-directory site || rc=1
  return "$rc"
}
lane_sanity_unit() {
  local rc=0
  phase sanity -- "$make" --no-print-directory sanity || rc=1
  phase unit -- "$make" --no-print-directory unit || rc=1
  return "$rc"
}

checks() {
  local jobs=${SUITE_JOBS:-2} logs=$root/build/test-logs lane heartbeat
  if [ "$jobs" -lt 2 ]; then
    lane_lint_site || status=1
    lane_sanity_unit || status=1
    return
  fi
  mkdir -p "$logs"
  echo "=== make test: lint, site | sanity, unit (two lanes side by side; logs in build/test-logs/)"
  declare -A pid_of=()
  for lane in lint_site sanity_unit; do
    "lane_$lane" >"$logs/$lane.log" 2>&1 </dev/null &
    pid_of[$lane]=$!
  done
  ( while sleep "${SUITE_HEARTBEAT:-240}"; do
      echo "=== make test: $(date +%H:%M:%S) still running: $(for f in "$logs"/lint_site.log "$logs"/sanity_unit.log; do
        grep '^=== make test: ' "$f" | tail -n 1 | cut -d' ' -f4-; done | paste -sd' ' -)"
    done ) &
  heartbeat=$!
  for lane in lint_site sanity_unit; do
    wait "${pid_of[$lane]}" || status=1
    echo "=== make test: lane ${lane/_/, } ended (log: build/test-logs/$lane.log)"
    cat "$logs/$lane.log"
  done
  kill "$heartbeat" 2>/dev/null
  wait "$heartbeat" 2>/dev/null
}

if setup; then
  checks
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
