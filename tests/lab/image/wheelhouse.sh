#!/usr/bin/env bash
# Build the lab wheelhouse: every LiteLLM version the lab installs (the role's default, the lab
# inventory's and every version named in the molecule scenarios, playbooks and lab files), with its
# proxy extra and all dependencies, as wheels, built once inside a lab node container (the nodes'
# own Python and pip) and cached by a hash of its inputs like the node image: a second run only
# prints the directory. The lab serves it over HTTP (tests/lab/tasks/services.yml) and the gateway
# nodes install from it without reaching PyPI (tests/lab/provision.yml writes their pip.conf).
#
#   tests/lab/image/wheelhouse.sh OUTDIR [IMAGE]     (default image: onprem-ai-lab/node:latest)
#
# A version with a lock file (roles/litellm_gateway/files/locks/litellm-<v>.txt, what the role installs with
# --require-hashes) is downloaded exactly as locked, so the wheelhouse holds what the lock names even after
# PyPI has newer releases of its dependencies; a version without one is resolved by pip.
#
# OUTDIR/<key>/ holds the wheels, OUTDIR/<key>/versions.txt what was asked and found (a version that
# PyPI does not have, such as the scenarios' failed-upgrade version, is listed as absent), and
# OUTDIR/current the key in use. A failed build leaves nothing behind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:?usage: $0 OUTDIR [IMAGE]}
image=${2:-onprem-ai-lab/node:latest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# LiteLLM versions named anywhere the lab reads them.
mapfile -t versions < <(
  cd "$root" &&
  grep -rhoE --include='*.yml' --include='*.yaml' \
    "litellm_gateway_version[\"']?[[:space:]]*[:=][[:space:]]*[\"']?[0-9][0-9A-Za-z.+-]*" \
    roles/litellm_gateway/defaults inventories/lab molecule playbooks tests/lab 2>/dev/null |
  sed -E "s/.*[:=][[:space:]]*[\"']?//" | sort -uV)
[ "${#versions[@]}" -gt 0 ] || { echo "wheelhouse: no LiteLLM version found in the repository" >&2; exit 1; }

image_id=$(docker image inspect --format '{{.Id}}' "$image") \
  || { echo "wheelhouse: image $image missing (make lab-image)" >&2; exit 1; }
locks=$root/roles/litellm_gateway/files/locks
key=$( { cat "$here/wheelhouse.sh"; echo "$image_id"; printf '%s\n' "${versions[@]}";
         for v in "${versions[@]}"; do cat "$locks/litellm-$v.txt" 2>/dev/null || true; done; } |
       sha256sum | cut -c1-12)

exec 9>"$out/.lock"
flock 9  # scenarios side by side: one builds, the other waits and finds it cached
if [ -f "$out/$key/versions.txt" ]; then
  echo "$key" >"$out/current"
  echo "wheelhouse $out/$key is up to date (cached): LiteLLM ${versions[*]}"
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
cleanup() {
  docker rm -f "onprem-ai-lab-wheelhouse-build-$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "building wheelhouse $key in a lab node container: LiteLLM ${versions[*]}"
# One `pip wheel` per version (two LiteLLM versions cannot be resolved together). A version that the
# index does not have is recorded as absent; any other failure fails the build.
cat >"$work/build-in-node.sh" <<'EOF'
set -eu
python3 -m venv /tmp/pip
/tmp/pip/bin/python -m pip --version
: >/wheels/versions.txt
for v in "$@"; do
  if [ -f "/locks/litellm-$v.txt" ]; then
    /tmp/pip/bin/python -m pip download --disable-pip-version-check --progress-bar off -q --no-deps \
      --only-binary :all: --require-hashes -r "/locks/litellm-$v.txt" -d /wheels >/tmp/pip-$v.log 2>&1 \
      || { tail -n 30 /tmp/pip-$v.log >&2; echo "pip download of the locked litellm $v failed" >&2; exit 1; }
    echo "litellm[proxy]==$v" >>/wheels/versions.txt
    echo "  litellm[proxy]==$v: locked wheels ready"
  elif /tmp/pip/bin/python -m pip wheel --disable-pip-version-check --progress-bar off -q \
       --wheel-dir /wheels "litellm[proxy]==$v" >/tmp/pip-$v.log 2>&1; then
    echo "litellm[proxy]==$v" >>/wheels/versions.txt
    echo "  litellm[proxy]==$v: wheels ready"
  elif grep -qF "No matching distribution found for litellm[proxy]==$v" /tmp/pip-$v.log &&
       ! grep -qF "(from versions: none)" /tmp/pip-$v.log; then
    echo "# litellm==$v: absent from the index" >>/wheels/versions.txt
    echo "  litellm==$v: absent from the index (a scenario's failed-upgrade version?)"
  else
    tail -n 30 /tmp/pip-$v.log >&2
    echo "pip wheel litellm[proxy]==$v failed" >&2
    exit 1
  fi
done
EOF
mkdir -p "$work/wheels"
docker run --rm --name "onprem-ai-lab-wheelhouse-build-$$" --network bridge \
  -v "$work/wheels:/wheels" -v "$work/build-in-node.sh:/build-in-node.sh:ro" -v "$locks:/locks:ro" \
  -e PIP_DEFAULT_TIMEOUT=120 "$image" sh /build-in-node.sh "${versions[@]}"
grep -q '^litellm' "$work/wheels/versions.txt" \
  || { echo "wheelhouse: none of LiteLLM ${versions[*]} is on the index" >&2; exit 1; }
chmod -R a+rX "$work/wheels"
rm -rf "${out:?}/$key"
mv "$work/wheels" "$out/$key"
echo "$key" >"$out/current"
# Older wheelhouses are not used any more.
find "$out" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' -exec rm -rf {} +
echo "built wheelhouse $out/$key: $(find "$out/$key" -name '*.whl' | wc -l) wheels, $(du -sh "$out/$key" | cut -f1)"
