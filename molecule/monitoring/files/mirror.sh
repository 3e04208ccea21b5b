#!/usr/bin/env bash
# LAB: a local apt mirror for the monitoring scenario (molecule/monitoring), built once on the test host and cached:
#   - Debian 12's prometheus, prometheus-alertmanager and prometheus-node-exporter (and what they depend on, for a
#     lab node image) at the role's pinned versions, downloaded by apt in a throwaway lab node container (apt checks
#     the bookworm signatures);
#   - prometheus-node-exporter 1.9.0-1+b4 of Debian 13 (its dependencies, adduser and libc6 >= 2.34, are met by
#     Debian 12): the second pinned version the scenario upgrades to. Neither bookworm nor bookworm-backports has
#     another node exporter version, so it comes from trixie: its InRelease is checked with gpgv against the host's
#     debian-archive-keyring, Packages.xz against the InRelease, the .deb against Packages.
# The nodes read it as a flat file: repository (tests mount nothing: the prepare step copies it in).
#
#   molecule/monitoring/files/mirror.sh DIR     build DIR unless it is up to date; prints DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: mirror.sh DIR}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
image=${LAB_IMAGE:-onprem-ai-lab/node:latest}
bookworm_pkgs="prometheus=2.42.0+ds-5+deb12u1 prometheus-alertmanager=0.25.0-1+b4 prometheus-node-exporter=1.5.0-1+b6"
trixie_pkg=prometheus-node-exporter
trixie_version=1.9.0-1+b4
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
key=$( { cat "$here/mirror.sh"; echo "$mirror $image"; docker image inspect --format '{{.Id}}' "$image"; } | sha256sum | cut -c1-12)

if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ] && [ -s "$dir/Packages" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ] && [ -s "$dir/Packages" ]; then
  echo "$dir"
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/lab-monitoring-mirror.XXXXXX")
builder=lab-monitoring-mirror-$$
cleanup() { docker rm -f "$builder" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/debs"

# bookworm: apt in a lab node container downloads the packages and their dependencies (signatures checked by apt)
docker run --name "$builder" --rm -v "$work/debs:/out" --entrypoint /bin/sh "$image" -c \
  "apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends $bookworm_pkgs >/dev/null \
   && cp /var/cache/apt/archives/*.deb /out/ && chmod 0644 /out/*.deb" >&2

# trixie: InRelease (signed) -> Packages.xz (sha256 in InRelease) -> the .deb (sha256 in Packages)
curl -fsS --max-time 120 "$mirror/dists/trixie/InRelease" -o "$work/InRelease"
gpgv --keyring "$keyring" "$work/InRelease" 2>"$work/gpgv.log" || { cat "$work/gpgv.log" >&2; echo "trixie InRelease: bad signature" >&2; exit 1; }
want=$(awk '/^SHA256:/{s=1; next} /^[A-Za-z]/{s=0} s && $3 == "main/binary-amd64/Packages.xz" {print $1}' "$work/InRelease")
[ -n "$want" ] || { echo "trixie InRelease names no main/binary-amd64/Packages.xz" >&2; exit 1; }
curl -fsS --max-time 300 "$mirror/dists/trixie/main/binary-amd64/Packages.xz" -o "$work/Packages.xz"
echo "$want  $work/Packages.xz" | sha256sum -c --quiet -
read -r file sum < <(xz -dc "$work/Packages.xz" | awk -v p="$trixie_pkg" -v v="$trixie_version" '
  /^Package: /{pkg=$2} /^Version: /{ver=$2} /^Filename: /{f=$2} /^SHA256: /{s=$2}
  /^$/ { if (pkg == p && ver == v) { print f, s; exit } pkg=ver=f=s="" }')
[ -n "${file:-}" ] || { echo "trixie has no $trixie_pkg $trixie_version any more" >&2; exit 1; }
curl -fsS --max-time 300 "$mirror/$file" -o "$work/debs/$(basename "$file")"
echo "$sum  $work/debs/$(basename "$file")" | sha256sum -c --quiet -

(cd "$work/debs" && apt-ftparchive packages . > Packages 2>/dev/null)
echo "$key" > "$work/debs/.key"
rm -rf "$dir"
mv "$work/debs" "$dir"
chmod 0755 "$dir"
echo "$dir"
