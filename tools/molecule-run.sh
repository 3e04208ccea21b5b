#!/usr/bin/env bash
# Run molecule scenarios, up to JOBS at a time, each in a log of its own that is printed whole when
# the scenario ends (never interleaved). Any failed scenario fails the run; every scenario still runs.
#
#   tools/molecule-run.sh [-j JOBS] [SCENARIO...]      (default: every molecule/*/molecule.yml, JOBS=2)
#
# The lab is mostly waiting (node boots, restarts, streamed answers), so two scenarios side by side
# take about the time of the longer one. Scenarios named in MOLECULE_ALONE (space separated) run with
# nothing beside them but the scenarios named in MOLECULE_BESIDE (light ones measured not to disturb
# them; none by default). The longest scenarios start first (durations of the last run, kept in
# build/molecule-logs/durations, or the estimates below), so the short ones fill the other slot; a
# scenario that must run alone waits at the head of the queue until the running ones end.
# Rows go to tools/timing.sh's table ($TIMING_FILE, set by `make test`; otherwise a table of its own,
# printed at the end).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
jobs=${MOLECULE_JOBS:-2}
if [ "${1:-}" = -j ]; then jobs=$2; shift 2; fi
case "$jobs" in ''|*[!0-9]*|0) echo "molecule-run: JOBS must be a positive number, got '$jobs'" >&2; exit 2 ;; esac
alone=" ${MOLECULE_ALONE:-} "
beside=" ${MOLECULE_BESIDE:-} "
is_alone() { [[ "$alone" == *" $1 "* ]]; }
is_beside() { [[ "$beside" == *" $1 "* ]]; }
logs=$root/build/molecule-logs
mkdir -p "$logs"
timing=$root/tools/timing.sh
own_table=false
if [ -z "${TIMING_FILE:-}" ]; then
  export TIMING_FILE=$logs/timing.tsv
  "$timing" reset
  own_table=true
fi

if [ "$#" -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
fi
for s in "${scenarios[@]}"; do
  [ -f "molecule/$s/molecule.yml" ] || { echo "molecule-run: no scenario '$s' (molecule/$s/molecule.yml)" >&2; exit 2; }
done

# Seconds each scenario took when measured (2-core machine, CI of session 5; monitoring and backup from session 6):
# the order when no run is recorded, longest first.
estimate() {
  case "$1" in
    gateway_rolling) echo 1110 ;; strategies) echo 692 ;; monitoring) echo 720 ;; maintenance_run) echo 643 ;; backup) echo 620 ;;
    gpu_rollout) echo 381 ;; model_pull) echo 300 ;; gpu_stack_faults) echo 217 ;;
    backup_sftp) echo 201 ;; gpu_stack) echo 121 ;; cuda_toolkit) echo 108 ;; lab_driver_reboot) echo 93 ;;
    *) echo 300 ;;
  esac
}
duration() {
  local d
  d=$(awk -v s="$1" '$1==s {d=$2} END {print d}' "$logs/durations" 2>/dev/null)
  echo "${d:-$(estimate "$1")}"
}
mapfile -t queue < <(for s in "${scenarios[@]}"; do echo "$(duration "$s") $s"; done | sort -k1,1nr -k2 | cut -d' ' -f2)

# The lab's shared services (network, package repository, wheelhouse) once, before any scenario:
# scenarios side by side must not both create them.
"$timing" run "lab services" -- \
  ansible-playbook tests/lab/services.yml || { "$own_table" && "$timing" table; exit 1; }

declare -A pid_of=() start_of=()
failed=()
mode=$("$timing" mode)

# A line every few minutes while scenarios run (their output comes when they end), so that a CI log
# never looks stalled.
running_file=$logs/.running
: >"$running_file"
(
  while sleep "${MOLECULE_HEARTBEAT:-240}"; do
    echo "=== molecule-run: $(date +%H:%M:%S) still running: $(cat "$running_file" 2>/dev/null)"
  done
) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null' EXIT
note_running() { echo "${!pid_of[*]}" >"$running_file"; }

finish() {  # $1: scenario, $2: exit status
  local s=$1 rc=$2 secs result
  secs=$(( $(date +%s) - start_of[$s] ))
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED($rc)"; failed+=("$s"); fi
  echo "=== molecule test -s $s: $result after ${secs} s (log: build/molecule-logs/$s.log)"
  cat "$logs/$s.log"
  echo "=== end of molecule test -s $s: $result"
  "$timing" add "molecule $s" "$result" "$secs" "$mode"
  { grep -v "^$s " "$logs/durations" 2>/dev/null; echo "$s $secs"; } >"$logs/durations.new"
  mv "$logs/durations.new" "$logs/durations"
  unset "pid_of[$s]"
  note_running
}

wait_one() {  # wait for one running scenario to end
  local done_pid s rc
  wait -n -p done_pid "${pid_of[@]}"
  rc=$?
  for s in "${!pid_of[@]}"; do
    if [ "${pid_of[$s]}" = "$done_pid" ]; then finish "$s" "$rc"; return; fi
  done
}

interrupted() {
  echo "molecule-run: interrupted; stopping the running scenarios: ${!pid_of[*]}" >&2
  trap '' INT TERM
  for s in "${!pid_of[@]}"; do kill -TERM -- "-${pid_of[$s]}" 2>/dev/null; done
  kill "$heartbeat" 2>/dev/null
  wait
  "$own_table" && "$timing" table
  exit 130
}
trap interrupted INT TERM

# Every task's time in each scenario's log (and the slowest tasks at the end of each play run), so that a CI log
# says where a scenario spends its time. Output parsers (molecule's idempotence, the scenarios' PLAY RECAP
# readers) ignore the callback's lines. MOLECULE_PROFILE=0 turns it off.
if [ "${MOLECULE_PROFILE:-1}" != 0 ] && [[ "${ANSIBLE_CALLBACKS_ENABLED:-}" != *profile_tasks* ]]; then
  export ANSIBLE_CALLBACKS_ENABLED=${ANSIBLE_CALLBACKS_ENABLED:+$ANSIBLE_CALLBACKS_ENABLED,}ansible.posix.profile_tasks
fi

start() {  # $1: scenario
  local s=$1
  echo "=== molecule test -s $s: started (running: ${!pid_of[*]} $s)"
  start_of[$s]=$(date +%s)
  # A session of its own: an interrupt stops the scenario's whole process tree (ansible-playbook too).
  setsid -w molecule test -s "$s" >"$logs/$s.log" 2>&1 </dev/null &
  pid_of[$s]=$!
  note_running
}

# The index in the queue of the scenario to start now, or nothing: the head of the queue when a slot is
# free (a scenario in MOLECULE_ALONE only when whatever runs is in MOLECULE_BESIDE); while a scenario
# in MOLECULE_ALONE runs, the first queued one in MOLECULE_BESIDE.
next_index() {
  local r i
  [ "${#pid_of[@]}" -lt "$jobs" ] || return 0
  for r in "${!pid_of[@]}"; do
    if is_alone "$r"; then
      for i in "${!queue[@]}"; do
        if is_beside "${queue[$i]}" && ! is_alone "${queue[$i]}"; then echo "$i"; return 0; fi
      done
      return 0
    fi
  done
  if is_alone "${queue[0]}"; then
    for r in "${!pid_of[@]}"; do is_beside "$r" || return 0; done
  fi
  echo 0
}

while [ "${#queue[@]}" -gt 0 ]; do
  i=$(next_index)
  if [ -z "$i" ]; then wait_one; continue; fi
  start "${queue[$i]}"
  unset 'queue[i]'
  queue=("${queue[@]}")
done
while [ "${#pid_of[@]}" -gt 0 ]; do wait_one; done

"$own_table" && "$timing" table
if [ "${#failed[@]}" -gt 0 ]; then
  echo "molecule-run: failed: ${failed[*]}" >&2
  exit 1
fi
echo "molecule-run: ${#scenarios[@]} scenario(s) passed"
