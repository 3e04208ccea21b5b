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
  - Lists the GPUs in nvidia-smi's index order (name, UUID, PCI bus id and device id, minor number, architecture,
    memory, persistence mode, ECC errors in every counter layout, MIG mode and MIG devices), the highest CUDA version
    the driver supports, the CUDA toolkits installed under C(/usr/local/cuda-X.Y) and the default one, the
    fabric manager package and service, and the compute and graphics processes running on the GPUs.
  - Reads C(nvidia-smi -q -x) of every driver generation (XML layouts v9 to v13). A value that cannot be read
    is null and named in RV(unknown); null never stands for zero, none or disabled.
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
  description: Number of GPUs listed by C(nvidia-smi -q -x).
  returned: always
  type: int
  sample: 8
reason:
  description: Why no GPU is reported (no driver, no devices, version mismatch, tool error); null when GPUs are listed.
  returned: always
  type: str
  sample: "Failed to initialize NVML: Driver/library version mismatch"
unknown:
  description:
    - What could not be read for sure, one line each. The values concerned are null; null never means zero, none or disabled.
    - Empty when everything was read.
  returned: always
  type: list
  elements: str
  sample: ["GPU 0 (00000000:1A:00.0): uncorrectable ECC count (ECC is enabled)"]
ecc_problems:
  description:
    - One line per GPU that has uncorrectable ECC errors (volatile or aggregate, in any counter layout), naming the GPU and the counts,
      and per GPU whose ECC is enabled but whose uncorrectable count cannot be read.
    - Empty when every GPU is known to be free of uncorrectable errors or has ECC disabled or unsupported.
  returned: always
  type: list
  elements: str
  sample: ["GPU 1 (00000000:2A:00.0, GPU-0a1b2c3d-1111-2222-3333-444455557777) has uncorrectable ECC errors: 3 volatile"]
mig_enabled:
  description: RV(gpus[].index) of the GPUs whose MIG mode is enabled now or pending (enabled after the next GPU reset).
  returned: always
  type: list
  elements: int
  sample: [0, 1]
gpus:
  description: One entry per GPU, in nvidia-smi's order. Every value nvidia-smi prints as C(N/A) (or not at all) is null.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description:
        - nvidia-smi's index of the GPU, its enumeration order, as in C(nvidia-smi -L), C(--query-gpu=index) and C(nvidia-smi -i N).
        - Not the minor number (see RV(gpus[].minor_number)); on multi-GPU servers the two often differ.
        - Null when nvidia-smi listed fewer GPUs than RV(nvidia_smi.attached_gpus) (positions are then not indexes).
      type: int
      sample: 0
    minor_number:
      description: The device node number N of C(/dev/nvidiaN). Null when nvidia-smi prints N/A (vGPU guests, Windows).
      type: int
      sample: 3
    name:
      description: Product name exactly as nvidia-smi prints it (C(NVIDIA H100 80GB HBM3), C(Tesla P100-PCIE-16GB), C(GRID P4-1Q)).
      type: str
      sample: NVIDIA H100 80GB HBM3
    brand:
      description: Product brand (C(NVIDIA), C(Tesla), C(GeForce), C(NVIDIA RTX Virtual Workstation) ...).
      type: str
    uuid:
      description: GPU UUID.
      type: str
    pci_bus_id:
      description: PCI bus id as nvidia-smi prints it (C(00000000:18:00.0)).
      type: str
    pci_device_id:
      description: PCI device id in lower-case hex without the vendor (C(2330) for an H100 SXM5); null when not printed.
      type: str
      sample: "2330"
    serial:
      description: Board serial number.
      type: str
    architecture:
      description:
        - GPU architecture (C(Maxwell), C(Pascal), C(Volta), C(Turing), C(Ampere), C(Ada Lovelace), C(Hopper), C(Blackwell)).
        - Drivers up to 470 print none; it then comes from the PCI device id table of the collection. Null when neither knows it.
      type: str
      sample: Hopper
    architecture_source:
      description: Where RV(gpus[].architecture) came from, V(nvidia-smi) or V(pci_device_id); null when unknown.
      type: str
    vbios_version:
      description: VBIOS version.
      type: str
    persistence_mode:
      description: C(Enabled) or C(Disabled); null where not applicable (vGPU guests, Windows).
      type: str
    virtualization_mode:
      description: C(None) (bare metal), C(Pass-Through), C(VGPU) (a vGPU guest), C(Host VGPU); null when not printed.
      type: str
    memory_total_mib:
      description: Framebuffer memory in MiB.
      type: int
    memory_used_mib:
      description: Framebuffer memory in use in MiB.
      type: int
    ecc_mode:
      description: Current ECC mode, C(Enabled) or C(Disabled); null when the GPU has no ECC (consumer boards) or it is not printed.
      type: str
    ecc_pending_mode:
      description: ECC mode after the next reboot.
      type: str
    ecc_errors:
      description:
        - C(volatile) (since the driver was loaded) and C(aggregate) (lifetime) counts, each with C(corrected) and C(uncorrected).
        - A count is the sum of every readable counter of its kind, whatever the layout (C(sram_uncorrectable_parity) +
          C(sram_uncorrectable_secded) + C(dram_uncorrectable) from drivers 570 on, C(sram_uncorrectable) + C(dram_uncorrectable)
          before, C(single_bit/total) and C(double_bit/total) on Pascal and older boards).
        - Null when no counter of that kind could be read (ECC disabled or unsupported, or N/A).
      type: dict
      sample: {"volatile": {"corrected": 0, "uncorrected": 0}, "aggregate": {"corrected": 3, "uncorrected": 0}}
    mig:
      description: Multi-Instance GPU state.
      type: dict
      contains:
        current:
          description: C(Enabled) or C(Disabled) now; null on GPUs without MIG.
          type: str
        pending:
          description: The mode after the next GPU reset or reboot; differs from C(current) while a change is pending.
          type: str
        devices:
          description:
            - The MIG devices, each with C(index), C(gpu_instance_id), C(compute_instance_id), C(multiprocessor_count) and
              C(memory_total_mib). Empty when MIG is disabled or no instance was created.
          type: list
          elements: dict
    power_limit_w:
      description:
        - The power limit in force, in watts (C(<gpu_power_readings><current_power_limit>) from XML layout v12,
          C(<power_readings><power_limit>) before); null when N/A (vGPU guests). update_plan compares it with
          RV(gpus[].default_power_limit_w).
      type: float
      returned: when nvidia-smi prints a power section
      sample: 700.0
    default_power_limit_w:
      description: The board's default power limit in watts; null when N/A.
      type: float
      returned: when nvidia-smi prints a power section
    max_power_limit_w:
      description: The highest power limit the board accepts, in watts; null when N/A.
      type: float
      returned: when nvidia-smi prints a power section
    clocks_applications_graphics_mhz:
      description: The graphics application clock in MHz; null when N/A.
      type: int
      returned: when nvidia-smi prints application clocks (not where the driver says they are deprecated, XML layout v13)
    clocks_default_applications_graphics_mhz:
      description: The default graphics application clock in MHz; null when N/A.
      type: int
      returned: when nvidia-smi prints application clocks (not where the driver says they are deprecated)
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
    dtd:
      description: Version of the XML layout nvidia-smi used (V(v12), V(v13) from drivers 580 on ...), null when not printed.
      type: str
      sample: v13
    attached_gpus:
      description: The number of GPUs nvidia-smi says are attached (C(<attached_gpus>)); null when not printed.
      type: int
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
  description:
    - Every process nvidia-smi lists on the GPUs, compute and graphics alike (see RV(processes[].type)); a process that uses
      two GPUs is listed once per GPU.
    - Empty when no nvidia module is loaded (nothing can use a GPU). Null when nvidia-smi cannot tell (unknown, never "none").
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Process id (in the host's PID namespace).
      type: int
    name:
      description: Process name or command line; null when nvidia-smi cannot see it (empty, C([Not Found]), C([Insufficient Permissions])).
      type: str
    type:
      description: C(C) compute, C(G) graphics (Xorg, desktop shells; not listed by C(--query-compute-apps)), C(C+G) both.
      type: str
    used_memory_mib:
      description: GPU memory used by the process; null when nvidia-smi cannot tell (C(N/A) on Windows WDDM, vGPU, MIG).
      type: int
    gpu_uuid:
      description: UUID of the GPU it runs on.
      type: str
    gpu_index:
      description: RV(gpus[].index) of that GPU.
      type: int
    gpu_instance_id:
      description: MIG GPU instance it runs in; null without MIG.
      type: int
    compute_instance_id:
      description: MIG compute instance it runs in; null without MIG.
      type: int
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._gpu_info import gather
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner


def main():
    module = OnpremModule(argument_spec={}, supports_check_mode=True)
    try:
        result = gather(Runner(module))
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        module.fail_json(**failure(exc, name='gpu_info'))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
