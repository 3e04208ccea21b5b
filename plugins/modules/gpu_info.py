#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: gpu_info
short_description: Report the GPUs, NVIDIA driver, CUDA toolkits and GPU processes of a host
version_added: 0.1.0
description:
  - Reads the NVIDIA stack of a host without changing anything.
  - Reports the driver version three ways, as installed (packages), as loaded (the kernel module in
    C(/sys/module/nvidia/version)) and as reported by C(nvidia-smi), so that a pending reload or reboot
    ("Driver/library version mismatch") is visible before it breaks a workload.
  - Lists the GPUs (name, UUID, PCI bus id, memory, persistence mode, ECC errors), the highest CUDA version
    the driver supports, the CUDA toolkits installed under C(/usr/local/cuda-X.Y) and the default one, the
    fabric manager package and service, and the compute processes running on the GPUs.
  - On a host without GPUs or without a driver it reports that (RV(gpus_present=false) with a reason)
    instead of failing.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.attributes.INFO_MODULE
options: {}
requirements:
  - C(dpkg-query) (Debian, Ubuntu) or C(rpm) (RHEL family) on the target.
notes:
  - C(nvidia-smi) is optional; without it the GPU list is empty and RV(driver.smi_version) is null.
seealso:
  - name: nvidia-smi documentation
    description: The tool whose C(-q -x) output this module parses.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
'''

EXAMPLES = r'''
- name: Read the GPU stack
  onprem_ai.maintenance.gpu_info:
  register: gpu

- name: Stop before maintenance when the node needs a reboot already
  ansible.builtin.assert:
    that: not gpu.driver.mismatch
    fail_msg: "{{ gpu.driver.reload_or_reboot_reason }}"

- name: Show the GPUs
  ansible.builtin.debug:
    msg: "{{ gpu.gpus | map(attribute='name') | list }} on driver {{ gpu.driver.loaded_version }}"
'''

RETURN = r'''
gpus_present:
  description: Whether C(nvidia-smi) lists at least one GPU.
  returned: always
  type: bool
  sample: true
gpu_count:
  description: Number of GPUs listed by C(nvidia-smi).
  returned: always
  type: int
  sample: 8
reason:
  description: Why no GPU is reported (no driver, no devices, version mismatch, tool error); null when GPUs are listed.
  returned: always
  type: str
  sample: "Failed to initialize NVML: Driver/library version mismatch"
gpus:
  description: One entry per GPU.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: GPU index (minor number).
      type: int
    name:
      description: Product name.
      type: str
      sample: NVIDIA H100 80GB HBM3
    uuid:
      description: GPU UUID.
      type: str
    pci_bus_id:
      description: PCI bus id.
      type: str
    serial:
      description: Board serial number.
      type: str
    architecture:
      description: Product architecture.
      type: str
    vbios_version:
      description: VBIOS version.
      type: str
    persistence_mode:
      description: C(Enabled) or C(Disabled).
      type: str
    memory_total_mib:
      description: Framebuffer memory in MiB.
      type: int
    memory_used_mib:
      description: Framebuffer memory in use in MiB.
      type: int
    ecc_mode:
      description: Current ECC mode.
      type: str
    ecc_errors:
      description: Corrected and uncorrected ECC error counts, C(volatile) (since the driver loaded) and C(aggregate) (lifetime).
      type: dict
driver:
  description: The driver version as installed, loaded and reported.
  returned: always
  type: dict
  contains:
    installed_version:
      description: Upstream version of the installed user-space driver packages.
      type: str
      sample: 570.133.20
    loaded_version:
      description: Version of the loaded nvidia kernel module, null when it is not loaded.
      type: str
      sample: 550.127.08
    smi_version:
      description: Driver version reported by C(nvidia-smi), null when it failed.
      type: str
    branch:
      description: Driver branch (major version).
      type: str
      sample: "570"
    max_cuda_version:
      description: Highest CUDA version the loaded driver supports, as C(nvidia-smi) reports it.
      type: str
      sample: "12.8"
    mismatch:
      description: Whether the installed and the loaded driver differ (a reload or a reboot is pending).
      type: bool
    reload_or_reboot_required:
      description: Same as RV(driver.mismatch), named for playbooks.
      type: bool
    reload_or_reboot_reason:
      description: Human-readable reason when a reload or reboot is required.
      type: str
nvidia_smi:
  description: How the C(nvidia-smi -q -x) call went.
  returned: always
  type: dict
  contains:
    path:
      description: Path of nvidia-smi, null when not installed.
      type: str
    state:
      description: One of V(ok), V(not_installed), V(driver_not_loaded), V(driver_library_mismatch), V(no_devices), V(error).
      type: str
    rc:
      description: Exit code, null when not run.
      type: int
    message:
      description: The tool's own message when it failed.
      type: str
packages:
  description: Installed NVIDIA and CUDA packages with their full versions.
  returned: always
  type: dict
  sample: {"nvidia-driver-570": "570.133.20-1", "cuda-toolkit-12-8": "12.8.1-1"}
cuda_toolkits:
  description: CUDA toolkits found under C(/usr/local/cuda-X.Y), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Toolkit version from its C(version.json).
      type: str
      sample: 12.8.1
    path:
      description: Installation directory.
      type: str
    default:
      description: Whether C(/usr/local/cuda) points at it.
      type: bool
fabric_manager:
  description: NVIDIA Fabric Manager package and service.
  returned: always
  type: dict
  contains:
    installed:
      description: Whether a fabric manager package is installed.
      type: bool
    version:
      description: Its upstream version (must equal the driver's).
      type: str
    active:
      description: C(systemctl is-active) of nvidia-fabricmanager.service.
      type: str
processes:
  description: Compute processes running on the GPUs.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Process id.
      type: int
    name:
      description: Process name.
      type: str
    type:
      description: C(C) compute, C(G) graphics, C(C+G) both.
      type: str
    used_memory_mib:
      description: GPU memory used by the process.
      type: int
    gpu_uuid:
      description: UUID of the GPU it runs on.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._gpu_info import gather


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    result = gather(module)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
