#!/usr/bin/env bash
# Measure `bash .ci/run` cold, as on a new machine: a fresh clone of this checkout's HEAD, with every
# cache that CI builds for itself removed first, then .ci/run in the clone, its output kept in a log and
# the timing table (printed by `make test`) shown again at the end with the phases that were cold.
#
#   tools/cold-run.sh --yes [--no-find-links] [--keep-clone]
#   tools/cold-run.sh --dry-run      clone, and list what would be removed; remove and run nothing
#
# DESTRUCTIVE for everyone on this machine: it removes every lab container (services, nodes, molecule
# instances of other checkouts), the lab network, the lab images (node image, prepared node image) and
# the caches below. Run it only when nothing else uses the lab; it takes /tmp/lab.lock while it runs.
#
# Removed (all rebuilt by .ci/run -> make test): the lab containers, network and images; pip's cache;
# ansible-test's cache (~/.ansible/test); ansible-lint's cache. The clone starts without .venv, .lab
# (repository, wheelhouse), build/ and .gi-venv, which the working trees keep. Not removed: the host
# packages tools/ensure-host.sh installs (Docker engine, debootstrap, ...: they cannot be removed from
# under a running Docker), nor the machine's own pip configuration (PIP_FIND_LINKS, a local wheel
# directory, is the machine's, like a site's mirror; --no-find-links runs without it, PyPI only).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
yes=false keep_clone=false no_find_links=false dry_run=false
for arg in "$@"; do
  case "$arg" in
    --yes) yes=true ;;
    --dry-run) dry_run=true ;;
    --keep-clone) keep_clone=true ;;
    --no-find-links) no_find_links=true ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cold-run: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if ! "$yes" && ! "$dry_run"; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
  echo "cold-run: nothing done; run with --yes to remove the caches above and measure" >&2
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "cold-run: run as root (.ci/run installs host packages)" >&2; exit 1; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
logdir=$root/build/cold-run
mkdir -p "$logdir"
log=$logdir/$stamp.log
work=$(mktemp -d /var/tmp/onprem-ai-cold-run.XXXXXX)
clone=$work/onprem_ai.maintenance
trap '"$keep_clone" || rm -rf "$work"' EXIT

if ! "$dry_run"; then
  exec 8>/tmp/lab.lock
  echo "cold-run: waiting for the lab lock (/tmp/lab.lock)"
  flock 8
fi

echo "cold-run: fresh clone of $(git -C "$root" rev-parse --short HEAD) into $clone"
git clone -q --no-hardlinks "$root" "$clone"
git -C "$clone" checkout -q --detach "$(git -C "$root" rev-parse HEAD)"

mapfile -t containers < <(docker ps -aq --filter label=onprem-ai-lab 2>/dev/null || true)
mapfile -t images < <(docker image ls --format '{{.Repository}}:{{.Tag}}' 2>/dev/null |
                      grep -E '^(onprem-ai-lab/|molecule_local/)' || true)
caches=("$HOME/.cache/pip" "$HOME/.ansible/test" "$HOME/.cache/ansible-lint"
        "${ONPREM_AI_LAB_CACHE:-/var/cache/onprem-ai-lab}/llama-server")
if "$dry_run"; then
  echo "cold-run: would remove ${#containers[@]} lab container(s), the network onprem-ai-lab, the images:"
  printf '  %s\n' "${images[@]}"
  echo "cold-run: and the caches: ${caches[*]}"
  echo "cold-run: then run: (cd $clone && bash .ci/run)"
  exit 0
fi
echo "cold-run: removing the lab containers, network and images, and the caches CI rebuilds"
[ "${#containers[@]}" -eq 0 ] || docker rm -f "${containers[@]}" >/dev/null
docker network rm onprem-ai-lab >/dev/null 2>&1 || true
[ "${#images[@]}" -eq 0 ] || docker rmi -f "${images[@]}" >/dev/null
docker image prune -f >/dev/null 2>&1 || true
rm -rf "${caches[@]}"
if command -v pip3 >/dev/null 2>&1; then pip3 cache purge >/dev/null 2>&1 || true; fi

env_args=()
if "$no_find_links"; then env_args=(-u PIP_FIND_LINKS); fi
echo "cold-run: bash .ci/run in the clone (log: $log)"
start=$(date +%s)
status=0
# 8>&-: nothing .ci/run starts (dockerd, when it starts it) may keep the lab lock.
( cd "$clone" && env "${env_args[@]}" bash .ci/run ) >"$log" 2>&1 8>&- || status=$?
seconds=$(( $(date +%s) - start ))

echo
echo "cold-run: the timing table of the run (from $log)"
# The table make test prints: from its heading to the end of the log.
sed -n '/^timing of this run:/,$p' "$log"
printf 'cold-run: .ci/run exited %s after %d:%02d (m:ss) from a fresh clone with every cache removed\n' \
  "$status" $(( seconds / 60 )) $(( seconds % 60 ))
cp "$clone/build/timing.tsv" "$logdir/$stamp.timing.tsv" 2>/dev/null || true
"$keep_clone" && echo "cold-run: clone kept in $clone"
exit "$status"
