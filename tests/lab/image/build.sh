#!/usr/bin/env bash
# Build the lab node image: a Debian 12 rootfs made with debootstrap, imported into docker,
# systemd as PID 1. Cached by a hash of its inputs: a second run only re-tags.
#
#   tests/lab/image/build.sh [IMAGE_REPO]     (default: onprem-ai-lab/node)
#
# The host's CA bundle is baked in so that HTTPS through a corporate proxy works from the nodes,
# and it is part of the cache key (a new proxy CA rebuilds the image).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=${1:-onprem-ai-lab/node}
mirror=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ca_bundle=/etc/ssl/certs/ca-certificates.crt
packages=$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ',')

key=$( { cat "$here/build.sh" "$here/packages.txt"; echo "$mirror $security_mirror";
         [ -f "$ca_bundle" ] && cat "$ca_bundle"; } | sha256sum | cut -c1-12)
tag="$repo:$key"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$repo:latest"
  echo "lab image $tag is up to date (cached)"
  exit 0
fi

work=$(mktemp -d /var/tmp/onprem-ai-lab-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "building lab image $tag (debootstrap bookworm, about a minute)"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }

rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

if [ -f "$ca_bundle" ]; then
  install -m 0644 "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/lab-host-bundle.crt"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
fi

# systemd in a container: empty machine-id (generated at first boot), no consoles or udev.
: >"$rootfs/etc/machine-id"
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-firstboot.service \
            systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
            sys-fs-fuse-connections.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# docker import (docker 20.10) takes no STOPSIGNAL: the lab stops nodes with `docker rm -f`.
# The nodes are reached with docker exec; sshd is there for SFTP backup targets.
printf 'onprem-ai lab node (simulation; built by tests/lab/image/build.sh)\n' >"$rootfs/etc/onprem-ai-lab-release"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/tmp/* "$rootfs"/var/log/*.log

tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/sbin/init"]' -c 'ENV container=docker' \
  -m "onprem-ai lab node $key" - "$tag" >/dev/null
docker tag "$tag" "$repo:latest"
echo "built lab image $tag"
