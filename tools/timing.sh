#!/usr/bin/env bash
# Wall time of each phase of `make test`, kept in a table that is printed at the end, pass or fail.
#
#   tools/timing.sh reset                          start a new table ($TIMING_FILE)
#   tools/timing.sh run NAME [--cold-if RE] [--warm-if RE] -- CMD...
#                                                  run CMD (its output passes through), add a row
#   tools/timing.sh add NAME STATUS SECONDS CACHE [setup|check]
#                                                  add a row measured elsewhere (molecule-run.sh)
#   tools/timing.sh mode                           cold or warm: was a set-up phase of this run cold
#   tools/timing.sh table                          print the table
#
# CACHE says what the phase found: "cold" (it built or installed what it caches: packages, the
# virtualenv, the node image, the wheelhouse), "warm" (everything was cached), or for the checks
# (lint, sanity, unit, molecule) the state of the set-up they depend on: "cold" when a set-up phase
# of this run was cold. --cold-if / --warm-if: an extended regular expression on CMD's output that
# tells a cold run from a warm one.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
file=${TIMING_FILE:-$root/build/timing.tsv}

cmd=${1:-}
shift || true
case "$cmd" in
  reset)
    mkdir -p "$(dirname "$file")"
    : >"$file"
    date +%s >"$file.start"
    ;;
  add)
    [ "$#" -eq 4 ] || [ "$#" -eq 5 ] || { echo "usage: $0 add NAME STATUS SECONDS CACHE [setup|check]" >&2; exit 2; }
    mkdir -p "$(dirname "$file")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-check}" >>"$file"
    ;;
  run)
    name=${1:?usage: $0 run NAME [--cold-if RE] [--warm-if RE] -- CMD...}
    shift
    cold_re='' warm_re=''
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
      case "$1" in
        --cold-if) cold_re=$2; shift 2 ;;
        --warm-if) warm_re=$2; shift 2 ;;
        *) echo "$0 run: unknown option $1" >&2; exit 2 ;;
      esac
    done
    [ "${1:-}" = -- ] && shift
    [ "$#" -gt 0 ] || { echo "$0 run $name: no command" >&2; exit 2; }
    mkdir -p "$(dirname "$file")"
    log=$(mktemp "${TMPDIR:-/tmp}/timing.XXXXXX")
    start=$(date +%s)
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    seconds=$(( $(date +%s) - start ))
    kind=setup
    if [ -n "$cold_re" ]; then
      if grep -Eq -- "$cold_re" "$log"; then cache=cold; else cache=warm; fi
    elif [ -n "$warm_re" ]; then
      if grep -Eq -- "$warm_re" "$log"; then cache=warm; else cache=cold; fi
    else
      kind=check
      cache=$("$0" mode)
    fi
    rm -f "$log"
    if [ "$status" -eq 0 ]; then result=ok; else result="FAILED($status)"; fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$result" "$seconds" "$cache" "$kind" >>"$file"
    exit "$status"
    ;;
  mode)
    # cold when a set-up phase of this run was cold (what a check's CACHE column says)
    if awk -F'\t' '$5=="setup" && $4=="cold" {found=1} END {exit !found}' "$file" 2>/dev/null; then
      echo cold
    else
      echo warm
    fi
    ;;
  table)
    [ -s "$file" ] || { echo "timing: no phase recorded ($file)"; exit 0; }
    total=0
    if [ -f "$file.start" ]; then total=$(( $(date +%s) - $(cat "$file.start") )); fi
    fmt() { printf '%d:%02d' $(( $1 / 60 )) $(( $1 % 60 )); }
    mode=$("$0" mode)
    echo
    built=$(awk -F'\t' '$5=="setup" && $4=="cold" && !seen[$1]++ {printf "%s%s", sep, $1; sep=", "}' "$file")
    echo "timing of this run: ${mode} (${built:+cold phases: }${built:-every cache was warm})"
    printf '%-28s %-12s %8s  %s\n' phase result 'm:ss' cache
    printf '%-28s %-12s %8s  %s\n' ---------------------------- ------------ -------- -----
    while IFS=$'\t' read -r name result seconds cache _; do
      printf '%-28s %-12s %8s  %s\n' "$name" "$result" "$(fmt "$seconds")" "$cache"
    done <"$file"
    summed=$(awk -F'\t' '{s+=$3} END {print s+0}' "$file")
    printf '%-28s %-12s %8s\n' 'sum of phases' '' "$(fmt "$summed")"
    if [ "$total" -gt 0 ]; then
      printf '%-28s %-12s %8s  %s\n' 'wall time' '' "$(fmt "$total")" '(scenarios side by side count once)'
    fi
    ;;
  *)
    echo "usage: $0 reset | run NAME [--cold-if RE] [--warm-if RE] -- CMD... | add NAME STATUS SECONDS CACHE [KIND] | mode | table" >&2
    exit 2
    ;;
esac
