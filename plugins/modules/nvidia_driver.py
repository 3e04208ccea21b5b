#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nvidia_driver
short_description: Install, upgrade, hold and roll back the NVIDIA driver of a GPU server
version_added: 0.1.0
description:
  - Ensures a driver branch (V(570)) or an exact driver version (V(570.133.20)) from the configured package
    repositories, with apt on Debian and Ubuntu and dnf (module streams) on the RHEL family.
  - Holds the whole NVIDIA stack (driver, C(libnvidia-*), fabric manager, container toolkit) with C(apt-mark hold)
    or C(dnf versionlock) so that unattended or OS upgrades cannot move it, and keeps the fabric manager at the
    driver's exact version.
  - Before touching anything it checks that every target package exists in the repositories at the same version,
    that kernel headers for the running kernel are installed or available (DKMS needs them), that the target
    driver can run every installed CUDA toolkit (minimum-driver table) and that it supports the GPUs present.
  - Refuses to proceed while GPU compute processes run, unless O(stop_services) names the services that run them;
    those are stopped first and started again once the new driver is loaded.
  - Refuses as well when it cannot tell for sure whether GPU processes run (nvidia-smi fails, or prints a process list
    that cannot be read), unless O(stop_services) names what to stop; the message says what could not be read.
    A process list is read with the free-text process name last, so names with commas and spaces are read whole.
  - After the package change it unloads and reloads the kernel modules when nothing holds them; otherwise it
    reports RV(reboot_required=true).
  - Records the previous version and its exact packages under O(state_dir), so that O(state=previous) rolls back
    in one call.
  - Keeps the MIG layout of MIG-enabled GPUs across the change (see RV(mig)); after a reboot, run the module again
    with the same arguments to re-create it (the onprem_ai.maintenance.gpu_stack role does).
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.common.STATE_DIR
  - onprem_ai.maintenance.common.PACKAGES
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan (current and target version, packages, apt's simulated actions, preflight results) and changes nothing.
  diff_mode:
    support: full
    details:
      - Shows the driver version, the loaded module, the packages and the holds before and after.
options:
  version:
    description:
      - Driver branch (V(570)) for the newest version of that branch, or exact upstream version (V(570.133.20)).
      - Required with O(state=present).
    type: str
  state:
    description:
      - V(present) ensures O(version).
      - V(previous) goes back to the version recorded before the last change by this module (its exact packages).
    type: str
    choices: [present, previous]
    default: present
  kernel_module:
    description:
      - V(proprietary) or V(open) (the open GPU kernel modules, Turing or newer).
    type: str
    choices: [proprietary, open]
    default: proprietary
  package_layout:
    description:
      - How the repository names the driver packages.
      - V(branch) C(nvidia-driver-570), C(libnvidia-compute-570) and so on (NVIDIA's CUDA repository for Ubuntu before 590).
      - V(server) C(nvidia-driver-570-server) and so on (Ubuntu's own archive).
      - V(unversioned) C(nvidia-driver), C(libnvidia-compute) and so on, the version selecting the branch (Ubuntu from 590 on).
      - V(dnf) the C(nvidia-driver) dnf module stream of the RHEL family.
      - V(auto) tries the distribution's usual layout first, then the others, and uses the first that offers the version.
    type: str
    choices: [auto, branch, server, unversioned, dnf]
    default: auto
  fabricmanager:
    description:
      - V(auto) upgrades the NVIDIA Fabric Manager with the driver when one is installed.
      - V(install) installs it (NVSwitch systems such as HGX); V(skip) leaves it out.
    type: str
    choices: [auto, install, skip]
    default: auto
  hold:
    description:
      - Hold every installed NVIDIA stack package after the change.
    type: bool
    default: true
  stop_services:
    description:
      - Services that run GPU compute processes (inference servers, exporters). When GPU processes run, these are
        stopped before the change and started again after it; without them the module refuses to proceed.
    type: list
    elements: str
    default: []
  stop_timeout:
    description:
      - Seconds to wait for the GPU processes to end after stopping O(stop_services), 0 to 86400.
    type: float
    default: 120
  reload:
    description:
      - Unload and reload the kernel modules after the change when nothing holds them. With V(false) a reboot is
        always required to load the new driver.
    type: bool
    default: true
  check_kernel_headers:
    description:
      - Check that headers for the running kernel are installed or available before changing anything.
    type: bool
    default: true
  minor_version_compatibility:
    description:
      - Accept a driver that runs the installed CUDA toolkits only through CUDA minor-version compatibility.
    type: bool
    default: false
  allow_unknown_gpu:
    description:
      - The preflight refuses a GPU whose architecture is not known (drivers up to 470 do not print it and its PCI device id
        is not in the collection's table), or GPUs that cannot be listed at all, because it cannot tell whether the target
        branch supports them. With V(true) it goes ahead with a warning.
      - Not needed with O(state=previous), which goes back to a driver that ran on these GPUs.
    type: bool
    default: false
notes:
  - O(update_cache) is not done in check mode.
  - Run it inside a drained maintenance window; the onprem_ai.maintenance.gpu_stack role and the gpu.yml playbook do so.
seealso:
  - module: onprem_ai.maintenance.gpu_info
requirements:
  - apt (Debian, Ubuntu) or dnf with the versionlock plugin (RHEL family) on the target.
'''

EXAMPLES = r'''
- name: Newest 570 driver, stopping the inference server around the change
  onprem_ai.maintenance.nvidia_driver:
    version: "570"
    stop_services: [vllm.service]
    update_cache: true
  register: driver

- name: Reboot when the modules could not be reloaded
  ansible.builtin.reboot:
  when: driver.reboot_required

- name: Exact version, open kernel modules, fabric manager kept in step
  onprem_ai.maintenance.nvidia_driver:
    version: 570.133.20
    kernel_module: open
    fabricmanager: install

- name: Roll back to the version before the last change
  onprem_ai.maintenance.nvidia_driver:
    state: previous
'''

RETURN = r'''
version:
  description: Installed driver before and after, and the version of the loaded kernel module at the end.
  returned: always
  type: dict
  sample: {"before": "550.127.08", "after": "570.133.20", "loaded": "570.133.20"}
previous_version:
  description: The version recorded as previous (what O(state=previous) goes back to).
  returned: always
  type: str
  sample: 550.127.08
reboot_required:
  description: Whether a reboot is needed to load the installed driver.
  returned: always
  type: bool
reload:
  description: Whether the kernel modules were reloaded.
  returned: always
  type: dict
  contains:
    attempted:
      description: A reload was tried.
      type: bool
    succeeded:
      description: The new driver is loaded.
      type: bool
    message:
      description: What happened, or why a reboot is required.
      type: str
services:
  description: Services stopped for the change and started again.
  returned: always
  type: dict
  sample: {"stopped": ["vllm.service"], "started": ["vllm.service"]}
mig:
  description:
    - MIG layouts kept across the change. Before changing anything the module records the MIG mode and the GPU and compute
      instances (profile and placement) of every MIG-enabled GPU, keeps the record in O(state_dir), re-creates them once the
      new driver is loaded (after the reload, or by the next run after the reboot) and verifies that they are equal.
    - It refuses to change anything when the MIG state cannot be read (unless O(allow_unknown_gpu)), and fails (the record
      kept for the next run) when the layout cannot be re-created.
  returned: always
  type: dict
  contains:
    recorded:
      description: The recorded layout per GPU index, e.g. C(3g.40gb@0 [3g.40gb], 1g.10gb@4 [1g.10gb]); empty without MIG.
      type: dict
    restored:
      description: The layout was re-created and verified in this run.
      type: bool
    restore_pending:
      description: The layout is recorded and waits for the new driver to be loaded (run the module again after the reboot).
      type: bool
    message:
      description: What was done per GPU, or what differs.
      type: str
held:
  description: NVIDIA stack packages on hold at the end.
  returned: always
  type: list
  elements: str
plan:
  description: The resolved target and the checks made; in check mode, what would be done.
  returned: always
  type: dict
  contains:
    target_version:
      description: Exact target driver version.
      type: str
    branch:
      description: Target branch.
      type: str
    layout:
      description: Package layout used.
      type: str
    packages:
      description: Target packages and their exact package versions.
      type: dict
    actions:
      description: Package actions (install, upgrade, downgrade, remove) as the package manager simulated them.
      type: list
      elements: dict
    preflight:
      description: Each preflight check with C(ok) (true, false, or null when it could not be checked) and a detail.
      type: list
      elements: dict
    module_stream:
      description: The dnf module stream enabled (RHEL family).
      type: str
'''

from ansible.module_utils.common.sys_info import get_distribution, get_distribution_version

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import PACKAGE_SPEC, STATE_DIR_SPEC, OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._nvidia_driver import DriverError, DriverManager, Host
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner


ARGUMENT_SPEC = dict(
    version=dict(type='str'),
    state=dict(type='str', default='present', choices=['present', 'previous']),
    kernel_module=dict(type='str', default='proprietary', choices=['proprietary', 'open']),
    package_layout=dict(type='str', default='auto', choices=['auto', 'branch', 'server', 'unversioned', 'dnf']),
    fabricmanager=dict(type='str', default='auto', choices=['auto', 'install', 'skip']),
    hold=dict(type='bool', default=True),
    stop_services=dict(type='list', elements='str', default=[]),
    stop_timeout=dict(type='float', default=120),
    reload=dict(type='bool', default=True),
    check_kernel_headers=dict(type='bool', default=True),
    minor_version_compatibility=dict(type='bool', default=False),
    allow_unknown_gpu=dict(type='bool', default=False),
    **dict(STATE_DIR_SPEC, **PACKAGE_SPEC)
)


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, required_if=[('state', 'present', ['version'])], supports_check_mode=True)
    params = dict(module.params, fabricmanager={'install': 'present', 'skip': 'absent'}.get(module.params['fabricmanager'], 'auto'))
    manager = None
    try:
        if not 0 <= params['stop_timeout'] <= 86400:  # also false for NaN
            raise DriverError('stop_timeout must be a number of seconds from 0 to 86400, got %r' % (params['stop_timeout'],),
                              error_kind='usage')
        runner = Runner(module)
        manager = DriverManager(module, Host(runner, pkg.backend(runner)), params,
                                {'distribution': get_distribution(), 'distribution_version': get_distribution_version()})
        result = manager.run()
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        for warning in manager.warnings if manager else []:
            module.warn(warning)
        module.fail_json(**failure(exc, name='nvidia_driver'))
    diff = result.pop('diff')
    for warning in result.pop('warnings'):
        module.warn(warning)
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
