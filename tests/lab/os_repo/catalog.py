# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Package catalog of the SIMULATED lab OS repository (build_os_repo.py): which packages each suite publishes.

bookworm           the node's starting point: lab-libssl-sim / lab-openssl-sim 3.0.11, lab-tzdata-sim 2024a,
                   lab-tools-sim 1.0, kernel 6.1.0-90-lab (+ headers), the simulated dkms and boot loader
bookworm-updates   lab-tzdata-sim 2025b, lab-tools-sim 1.1 (regular updates)
bookworm-security  lab-libssl-sim / lab-openssl-sim 3.0.15 and kernel 6.1.0-91-lab (+ headers) (security)

Kernels behave like Debian's: linux-image-<kver> installs /boot/vmlinuz-<kver> and /lib/modules/<kver>/ and its
postinst runs the /etc/kernel/postinst.d hooks; linux-headers-<kver> installs /usr/src/linux-headers-<kver>/
and runs /etc/kernel/header_postinst.d; linux-image-lab / linux-headers-lab are the meta packages that pull
the newest one. The simulated `dkms` package ships those hooks (as Debian's dkms does) and /usr/sbin/dkms
(`status`, `autoinstall -k`): it "builds" the simulated NVIDIA module (the files tests/lab/nvidia_sim's
nvidia-dkms writes) for a kernel only when that kernel's headers are installed, else fails like DKMS.
`lab-boot-sim` simulates the boot loader: see README.md (a container keeps the host's kernel).
"""

from __future__ import annotations

SIMULATED = "SIMULATED for the onprem_ai lab"
MAINTAINER = "onprem_ai lab (simulated Debian packages) <lab-os-sim@onprem-ai.invalid>"
SUITES = {
    "bookworm": {"origin": "Lab"},
    "bookworm-updates": {"origin": "Lab"},
    "bookworm-security": {"origin": "Lab-Security"},
}
KERNELS = {"bookworm": ("6.1.0-90-lab", "6.1.119-1"), "bookworm-security": ("6.1.0-91-lab", "6.1.124-1")}
NVIDIA_MODULES = "nvidia nvidia-uvm nvidia-modeset nvidia-drm nvidia-peermem"

DKMS = r"""#!/bin/sh
# SIMULATED dkms for the onprem_ai lab: status and autoinstall of the simulated NVIDIA module only.
# "Building" writes the text files that tests/lab/nvidia_sim's nvidia-dkms writes; it needs the kernel's
# headers (/usr/src/linux-headers-<kernel>) as the real build does.
set -e
modules="@MODULES@"
nvidia_version() {
    dpkg-query -W -f='${Version} ${db:Status-Abbrev}\n' 'nvidia-dkms-*' 2>/dev/null \
        | awk '$2 ~ /^[ih]i$/ { sub(/-[^-]*$/, "", $1); print $1; exit }'
}
build() {
    kernel=$1
    version=$(nvidia_version)
    [ -n "$version" ] || return 0
    if [ ! -d "/usr/src/linux-headers-$kernel" ]; then
        echo "Error! Your kernel headers for kernel $kernel cannot be found." >&2
        echo "Please install the linux-headers-$kernel package or use the --kernelsourcedir option to tell DKMS where it's located." >&2
        return 21
    fi
    echo "Building initial module for $kernel (SIMULATED)"
    mkdir -p "/lib/modules/$kernel/updates/dkms"
    for module in $modules; do
        printf 'simulated %s.ko version=%s\n' "$module" "$version" >"/lib/modules/$kernel/updates/dkms/$module.ko"
    done
    echo "nvidia/$version, $kernel, $(uname -m): installed"
}
status() {
    for file in /lib/modules/${1:-*}/updates/dkms/nvidia.ko; do
        [ -f "$file" ] || continue
        kernel=$(basename "$(dirname "$(dirname "$(dirname "$file")")")")
        version=$(sed -n 's/.*version=//p' "$file")
        echo "nvidia/$version, $kernel, $(uname -m): installed"
    done
}
command=$1; shift || true
kernel=""
while [ $# -gt 0 ]; do
    case "$1" in -k|--kernelver) kernel=$2; shift 2 ;; *) shift ;; esac
done
case "$command" in
    status) status "$kernel" ;;
    autoinstall) build "${kernel:-$(uname -r)}" ;;
    kernel_postinst) build "$kernel" || true ;;  # the hooks: a failed build never fails the kernel's install
    *) echo "dkms (SIMULATED): only status, autoinstall" >&2; exit 2 ;;
esac
"""

HOOK = """#!/bin/sh
# SIMULATED for the onprem_ai lab: the dkms kernel hook (builds the DKMS modules for kernel $1).
exec /usr/sbin/dkms kernel_postinst -k "$1"
"""

IMAGE_POSTINST = """#!/bin/sh
# SIMULATED for the onprem_ai lab: the kernel hooks as Debian's linux-image postinst runs them, then the
# simulated boot loader's default (update-grub: the newest kernel boots next).
set -e
if [ "$1" = configure ]; then
    if [ -d /etc/kernel/postinst.d ]; then
        run-parts --report --exit-on-error --arg=@KVER@ --arg=/boot/vmlinuz-@KVER@ /etc/kernel/postinst.d
    fi
    mkdir -p /boot/lab-sim
    current=$(cat /boot/lab-sim/default-kernel 2>/dev/null || true)
    if [ -z "$current" ] || [ "$(printf '%s\\n%s\\n' "$current" "@KVER@" | sort -V | tail -n 1)" = "@KVER@" ]; then
        echo "@KVER@" >/boot/lab-sim/default-kernel
    fi
fi
exit 0
"""

HEADERS_POSTINST = """#!/bin/sh
# SIMULATED for the onprem_ai lab: the header hooks as Debian's linux-headers postinst runs them.
set -e
if [ "$1" = configure ] && [ -d /etc/kernel/header_postinst.d ]; then
    run-parts --report --exit-on-error --arg=@KVER@ /etc/kernel/header_postinst.d
fi
exit 0
"""

BOOT = """#!/bin/sh
# SIMULATED boot loader of the onprem_ai lab: the container keeps the host's kernel (uname -r), so "booting"
# kernel K means: record K as booted (/run/lab-boot-sim/booted-kernel) and let the running kernel's module
# directory hold exactly K's NVIDIA modules (none when they were not built for K), before the simulated
# module autoload (nvidia-sim-modules.service) runs. Production code reads none of this.
booted=$(cat /boot/lab-sim/default-kernel 2>/dev/null) || exit 0
running=$(uname -r)
mkdir -p /run/lab-boot-sim
echo "$booted" >/run/lab-boot-sim/booted-kernel
dst=/lib/modules/$running/updates/dkms
rm -f "$dst"/nvidia*.ko
if ls "/lib/modules/$booted/updates/dkms/"nvidia*.ko >/dev/null 2>&1; then
    mkdir -p "$dst"
    cp "/lib/modules/$booted/updates/dkms/"nvidia*.ko "$dst/"
fi
"""

BOOT_UNIT = """# SIMULATED for the onprem_ai lab: the boot loader's choice of kernel (see /usr/lib/lab-boot-sim/boot).
[Unit]
Description=Boot the default kernel (onprem_ai lab simulation)
DefaultDependencies=no
After=local-fs.target
Before=nvidia-sim-modules.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/lab-boot-sim/boot

[Install]
WantedBy=sysinit.target
"""

BOOT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    systemctl enable lab-boot-sim.service >/dev/null 2>&1 || ln -sf /lib/systemd/system/lab-boot-sim.service \
        /etc/systemd/system/sysinit.target.wants/lab-boot-sim.service
fi
exit 0
"""


def _doc(name, version):
    return {"/usr/share/doc/%s/SIMULATED" % name: (0o644, "%s %s - %s\n" % (name, version, SIMULATED))}


def _plain(name, version, summary, depends=(), arch=None):
    package = {"name": name, "version": version, "summary": summary, "depends": list(depends), "files": _doc(name, version)}
    if arch:
        package["arch"] = arch
    return package


def _kernel(kver, version):
    def fill(text):
        return text.replace("@KVER@", kver)

    image = {"name": "linux-image-%s" % kver, "version": version, "section": "kernel",
             "summary": "Linux %s for the lab (kernel image placeholder)" % kver,
             "files": {"/boot/vmlinuz-%s" % kver: (0o644, "SIMULATED kernel image %s\n" % kver),
                       "/lib/modules/%s/modules.order" % kver: (0o644, "")},
             "scripts": {"postinst": fill(IMAGE_POSTINST)}}
    headers = {"name": "linux-headers-%s" % kver, "version": version, "section": "kernel",
               "summary": "Header files for Linux %s (placeholder)" % kver,
               "files": {"/usr/src/linux-headers-%s/SIMULATED" % kver: (0o644, "SIMULATED kernel headers %s\n" % kver)},
               "scripts": {"postinst": fill(HEADERS_POSTINST)}}
    meta = kver.rsplit("-", 1)[0]
    return [image, headers,
            _plain("linux-image-lab", version, "Linux for the lab (meta package)", ["linux-image-%s" % kver]),
            _plain("linux-headers-lab", version, "Header files for the lab kernel (meta package)", ["linux-headers-%s" % kver])]


def packages(suite):
    """The packages of a suite (dicts: name, version, summary, depends, files {path: (mode, text)}, scripts)."""
    if suite == "bookworm":
        dkms = {"name": "dkms", "version": "3.0.10-8+lab1", "arch": "all", "summary": "Dynamic Kernel Module System (simulated)",
                "files": {"/usr/sbin/dkms": (0o755, DKMS.replace("@MODULES@", NVIDIA_MODULES)),
                          "/etc/kernel/postinst.d/dkms": (0o755, HOOK),
                          "/etc/kernel/header_postinst.d/dkms": (0o755, HOOK)}}
        boot = {"name": "lab-boot-sim", "version": "1.0-1", "arch": "all", "summary": "Simulated boot loader of the lab",
                "files": {"/usr/lib/lab-boot-sim/boot": (0o755, BOOT),
                          "/lib/systemd/system/lab-boot-sim.service": (0o644, BOOT_UNIT)},
                "scripts": {"postinst": BOOT_POSTINST}}
        return [dkms, boot,
                _plain("lab-libssl-sim", "3.0.11-1", "TLS library (simulated libssl3)"),
                _plain("lab-openssl-sim", "3.0.11-1", "TLS tools (simulated openssl)", ["lab-libssl-sim (>= 3.0.11-1)"]),
                _plain("lab-tzdata-sim", "2024a-1", "Time zone data (simulated tzdata)", arch="all"),
                _plain("lab-tools-sim", "1.0-1", "Admin tools (simulated)")] + _kernel(*KERNELS[suite])
    if suite == "bookworm-updates":
        return [_plain("lab-tzdata-sim", "2025b-1", "Time zone data (simulated tzdata)", arch="all"),
                _plain("lab-tools-sim", "1.1-1", "Admin tools (simulated)")]
    if suite == "bookworm-security":
        return [_plain("lab-libssl-sim", "3.0.15-1", "TLS library (simulated libssl3)"),
                _plain("lab-openssl-sim", "3.0.15-1", "TLS tools (simulated openssl)", ["lab-libssl-sim (>= 3.0.15-1)"])] \
            + _kernel(*KERNELS[suite])
    raise KeyError(suite)
