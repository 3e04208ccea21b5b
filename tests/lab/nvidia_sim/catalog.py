# -*- coding: utf-8 -*-
# Package catalog of the SIMULATED NVIDIA apt repository for the onprem_ai lab.
#
# The one declarative place that says which packages build_repo.py builds: product versions,
# package templates (names, Depends, Provides/Conflicts, files, maintainer scripts), shaped like
# NVIDIA's real CUDA repository. None of these packages contains NVIDIA software.
#
# Placeholders, filled in per product version by build_repo.py: @VERSION@ (upstream version),
# @BRANCH@ (driver branch), @CUDA@ (CUDA major.minor), @CUDA_DASH@ (12-4), @PRIO@
# (update-alternatives priority), @MULTIARCH@ (x86_64-linux-gnu), @TARGET@ (x86_64-linux)
# and any key of the product's "vars".
"""Declarative package catalog of the simulated NVIDIA repository (onprem_ai lab)."""

REVISION = "1"
SIMULATED = "SIMULATED for the onprem_ai lab"
MAINTAINER = "onprem_ai lab (simulated NVIDIA packages) <lab-nvidia-sim@onprem-ai.invalid>"
ARCH_DIRS = {"amd64": "x86_64", "arm64": "sbsa"}
MULTIARCH = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
TARGETS = {"amd64": "x86_64-linux", "arm64": "sbsa-linux"}

DKMS_MODULES = "nvidia nvidia-uvm nvidia-modeset nvidia-drm nvidia-peermem"

DKMS_POSTINST = """#!/bin/sh
# SIMULATED for the onprem_ai lab: stands in for DKMS building the NVIDIA kernel modules.
set -e
if [ "$1" = "configure" ]; then
    kernel=$(uname -r)
    dir=/lib/modules/$kernel/updates/dkms
    echo "Building initial module for $kernel (SIMULATED)"
    mkdir -p "$dir"
    for module in @DKMS_MODULES@; do
        printf 'simulated %s.ko version=%s\\n' "$module" "@VERSION@" >"$dir/$module.ko"
    done
    echo "Done."
    echo "nvidia/@VERSION@, $kernel, $(uname -m): installed"
fi
exit 0
"""

DKMS_PRERM = """#!/bin/sh
# SIMULATED for the onprem_ai lab: stands in for `dkms remove nvidia/@VERSION@ --all`.
set -e
case "$1" in
    remove|upgrade|deconfigure|failed-upgrade)
        echo "Deleting module nvidia-@VERSION@ completely from the DKMS tree. (SIMULATED)"
        for file in /lib/modules/*/updates/dkms/nvidia*.ko; do
            if [ -f "$file" ] && grep -q "version=@VERSION@\\$" "$file"; then
                rm -f "$file"
            fi
        done
        ;;
esac
exit 0
"""

CUDART_POSTINST = """#!/bin/sh
# SIMULATED for the onprem_ai lab: manages the /usr/local/cuda alternatives as the real package does.
set -e
if [ "$1" = "configure" ]; then
    update-alternatives --install /usr/local/cuda cuda /usr/local/cuda-@CUDA@ @PRIO@
    update-alternatives --install /usr/local/cuda-12 cuda-12 /usr/local/cuda-@CUDA@ @PRIO@
fi
exit 0
"""

CUDART_PRERM = """#!/bin/sh
# SIMULATED for the onprem_ai lab.
set -e
if [ "$1" = "remove" ] || [ "$1" = "deconfigure" ]; then
    update-alternatives --remove cuda /usr/local/cuda-@CUDA@
    update-alternatives --remove cuda-12 /usr/local/cuda-@CUDA@
fi
exit 0
"""

LDCONFIG_POSTINST = """#!/bin/sh
# SIMULATED for the onprem_ai lab.
set -e
if [ "$1" = "configure" ]; then
    ldconfig
fi
exit 0
"""

VERSION_JSON = """{
   "cuda" : {
      "name" : "CUDA SDK",
      "version" : "@VERSION@"
   },
   "cuda_cudart" : {
      "name" : "CUDA Runtime (cudart)",
      "version" : "@CUDART@"
   },
   "cuda_nvcc" : {
      "name" : "CUDA NVCC",
      "version" : "@NVCC@"
   },
   "nvidia_driver" : {
      "name" : "NVIDIA Linux Driver",
      "version" : "@DRIVER@"
   }
}
"""

FABRICMANAGER_UNIT = """# SIMULATED for the onprem_ai lab (nvidia-fabricmanager-@BRANCH@ @VERSION@).
[Unit]
Description=NVIDIA fabric manager service
After=network-online.target nvidia-sim-modules.service

[Service]
Type=simple
ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg
LimitCORE=infinity

[Install]
WantedBy=multi-user.target
"""

# Package templates. files: (kind, path, data): "text" = template text, "tool" = a script of this
# directory with constants baked in (data = (source, {CONSTANT: template})), "link" = symlink target.
# replaces: the virtual package it Provides/Conflicts/Replaces (one installed per system).
PRODUCTS = [
    {
        "product": "driver",
        "versions": [
            {"version": "550.127.08", "vars": {"BRANCH": "550", "CUDA": "12.4"}},
            {"version": "550.144.03", "vars": {"BRANCH": "550", "CUDA": "12.4"}},
            {"version": "570.124.06", "vars": {"BRANCH": "570", "CUDA": "12.8"}},
            {"version": "570.133.20", "vars": {"BRANCH": "570", "CUDA": "12.8"}},
        ],
        "packages": [
            {"name": "cuda-drivers-@BRANCH@", "summary": "CUDA drivers metapackage, branch @BRANCH@",
             "depends": ["nvidia-driver-@BRANCH@ (= @VERSION@-1)"]},
            {"name": "nvidia-driver-@BRANCH@", "summary": "NVIDIA driver metapackage, branch @BRANCH@",
             "depends": ["nvidia-utils-@BRANCH@ (= @VERSION@-1)", "libnvidia-compute-@BRANCH@ (= @VERSION@-1)",
                         "nvidia-kernel-common-@BRANCH@ (= @VERSION@-1)", "nvidia-dkms-@BRANCH@ (= @VERSION@-1)"],
             "virtual": "nvidia-driver-binary"},
            {"name": "nvidia-utils-@BRANCH@", "summary": "NVIDIA driver support binaries (nvidia-smi)",
             "depends": ["libnvidia-compute-@BRANCH@ (= @VERSION@-1)"], "virtual": "nvidia-utils",
             "files": [("tool", "/usr/bin/nvidia-smi", ("nvidia_smi.py", {"DRIVER_VERSION": "@VERSION@", "CUDA_VERSION": "@CUDA@"}))]},
            {"name": "libnvidia-compute-@BRANCH@", "summary": "NVIDIA libcompute package (NVML)", "virtual": "libnvidia-compute",
             "files": [("text", "/usr/lib/@MULTIARCH@/libnvidia-ml.so.@VERSION@",
                        "SIMULATED libnvidia-ml.so @VERSION@ for the onprem_ai lab (placeholder, not a library)\n"),
                       ("link", "/usr/lib/@MULTIARCH@/libnvidia-ml.so.1", "libnvidia-ml.so.@VERSION@")]},
            {"name": "nvidia-kernel-common-@BRANCH@", "summary": "Shared files used with the NVIDIA kernel modules (GSP firmware)",
             "virtual": "nvidia-kernel-common",
             "files": [("text", "/lib/firmware/nvidia/@VERSION@/gsp_ga10x.bin", "SIMULATED GSP firmware @VERSION@ (placeholder)\n")]},
            {"name": "nvidia-dkms-@BRANCH@", "summary": "NVIDIA DKMS package (simulated module build)",
             "depends": ["nvidia-kernel-common-@BRANCH@ (= @VERSION@-1)"], "virtual": "nvidia-dkms",
             "scripts": {"postinst": DKMS_POSTINST, "prerm": DKMS_PRERM}},
            {"name": "nvidia-fabricmanager-@BRANCH@", "summary": "Fabric Manager for NVSwitch based systems",
             "virtual": "nvidia-fabricmanager",
             "files": [("tool", "/usr/bin/nv-fabricmanager", ("nv_fabricmanager.py", {"VERSION": "@VERSION@"})),
                       ("text", "/lib/systemd/system/nvidia-fabricmanager.service", FABRICMANAGER_UNIT),
                       ("text", "/usr/share/nvidia/nvswitch/fabricmanager.cfg", "# SIMULATED fabricmanager.cfg @VERSION@\nLOG_LEVEL=4\n")]},
        ],
    },
    {
        "product": "cuda-toolkit",
        "versions": [
            {"version": "12.4.1", "vars": {"CUDA": "12.4", "CUDA_DASH": "12-4", "PRIO": "124", "NVCC": "12.4.131", "CUDART": "12.4.127",
                                           "DRIVER": "550.54.15", "BUILT_ON": "Thu_Mar_28_02:18:24_PDT_2024",
                                           "BUILD": "cuda_12.4.r12.4/compiler.34097967_0", "YEAR": "2024"}},
            {"version": "12.8.1", "vars": {"CUDA": "12.8", "CUDA_DASH": "12-8", "PRIO": "128", "NVCC": "12.8.93", "CUDART": "12.8.90",
                                           "DRIVER": "570.124.06", "BUILT_ON": "Fri_Feb_21_20:23:50_PST_2025",
                                           "BUILD": "cuda_12.8.r12.8/compiler.35583870_0", "YEAR": "2025"}},
        ],
        "packages": [
            {"name": "cuda-toolkit-@CUDA_DASH@", "summary": "CUDA Toolkit @CUDA@ meta-package",
             "depends": ["cuda-nvcc-@CUDA_DASH@ (= @VERSION@-1)", "cuda-cudart-@CUDA_DASH@ (= @VERSION@-1)", "cuda-toolkit-config-common"]},
            {"name": "cuda-nvcc-@CUDA_DASH@", "summary": "CUDA nvcc",
             "files": [("tool", "/usr/local/cuda-@CUDA@/bin/nvcc",
                        ("nvcc_sim.py", {"RELEASE": "@CUDA@", "NVCC_VERSION": "@NVCC@", "BUILT_ON": "@BUILT_ON@", "BUILD": "@BUILD@", "YEAR": "@YEAR@"}))]},
            {"name": "cuda-cudart-@CUDA_DASH@", "summary": "CUDA Runtime native Libraries",
             "files": [("text", "/usr/local/cuda-@CUDA@/version.json", VERSION_JSON),
                       ("text", "/usr/local/cuda-@CUDA@/targets/@TARGET@/lib/libcudart.so.@CUDART@",
                        "SIMULATED libcudart @CUDART@ (placeholder, not a library)\n")],
             "scripts": {"postinst": CUDART_POSTINST, "prerm": CUDART_PRERM}},
        ],
    },
    {
        "product": "cuda-toolkit-config",
        "versions": [{"version": "12.8.90", "vars": {}}],
        "packages": [
            {"name": "cuda-toolkit-config-common", "summary": "Common config package for CUDA Toolkit",
             "files": [("text", "/etc/ld.so.conf.d/000_cuda.conf", "/usr/local/cuda/targets/@TARGET@/lib\n")],
             "scripts": {"postinst": LDCONFIG_POSTINST}},
        ],
    },
    {
        "product": "container-toolkit",
        "versions": [
            {"version": "1.17.4", "vars": {"COMMIT": "9b69590c7428470a72f2ae05f826412976af1395"}},
            {"version": "1.17.8", "vars": {"COMMIT": "f202b80a9b9d0db00d9b1d73c0128c8962c55f4d"}},
        ],
        "packages": [
            {"name": "nvidia-container-toolkit", "summary": "NVIDIA Container toolkit",
             "depends": ["nvidia-container-toolkit-base (= @VERSION@-1)", "libnvidia-container-tools (= @VERSION@-1)"]},
            {"name": "nvidia-container-toolkit-base", "summary": "NVIDIA Container Toolkit Base (nvidia-ctk)",
             "files": [("tool", "/usr/bin/nvidia-ctk", ("nvidia_ctk.py", {"VERSION": "@VERSION@", "COMMIT": "@COMMIT@"}))]},
            {"name": "libnvidia-container-tools", "summary": "NVIDIA container runtime library (command-line tools)",
             "depends": ["libnvidia-container1 (= @VERSION@-1)"]},
            {"name": "libnvidia-container1", "summary": "NVIDIA container runtime library",
             "files": [("text", "/usr/lib/@MULTIARCH@/libnvidia-container.so.@VERSION@", "SIMULATED libnvidia-container @VERSION@ (placeholder)\n"),
                       ("link", "/usr/lib/@MULTIARCH@/libnvidia-container.so.1", "libnvidia-container.so.@VERSION@")]},
        ],
    },
    {
        # Kernel headers for the running kernel (lab containers share the host's kernel), so that the
        # "headers/DKMS for the running kernel" preflight has something real to find. @KERNEL@ is uname -r.
        "product": "kernel-headers",
        "versions": [{"version": "1.0", "vars": {}}],
        "packages": [
            {"name": "linux-headers-@KERNEL@", "summary": "Header files for Linux @KERNEL@ (placeholder)",
             "files": [("text", "/usr/src/linux-headers-@KERNEL@/SIMULATED", "SIMULATED kernel headers for @KERNEL@\n")]},
        ],
    },
]
