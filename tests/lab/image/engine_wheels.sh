#!/usr/bin/env bash
# Build the lab's engine wheelhouse: the lab inference server (a SIMULATION of vLLM) packaged as the wheels
# lab-inference-server 1.0.0, 1.1.0 and a broken 1.2.0 (tests/lab/inference_server/build_wheels.py), so that
# the model_server role upgrades and rolls back the engine through real pip, virtualenvs and systemd.
# Pure-Python wheels written with the standard library on this machine: no container, no network. Cached by a
# hash of its inputs like the LiteLLM wheelhouse (tests/lab/image/wheelhouse.sh): a second run only prints
# the directory. The lab serves it over HTTP (tests/lab/tasks/services.yml, container lab-engine-wheels) as a
# find-links page; the GPU nodes install from http://lab-engine-wheels/<key>/ (OUTDIR/current holds the key).
#
#   tests/lab/image/engine_wheels.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../inference_server" && pwd)
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}

key=$(cat "$here/engine_wheels.sh" "$src/build_wheels.py" "$src/lab_inference_server.py" | sha256sum | cut -c1-12)

exec 9>"$out/.lock"
flock 9  # scenarios side by side: one builds, the other waits and finds it cached
if [ -f "$out/$key/versions.txt" ]; then
  echo "$key" >"$out/current"
  echo "engine wheelhouse $out/$key is up to date (cached)"
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels"
"$python" "$src/build_wheels.py" "$work/wheels" >"$work/versions.txt"
mv "$work/versions.txt" "$work/wheels/versions.txt"
chmod -R a+rX "$work/wheels"
rm -rf "${out:?}/$key"
mv "$work/wheels" "$out/$key"
echo "$key" >"$out/current"
# Older engine wheelhouses are not used any more.
find "$out" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' -exec rm -rf {} +
echo "built engine wheelhouse $out/$key:"
sed 's/^/  /' "$out/$key/versions.txt"
