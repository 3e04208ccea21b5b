#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: os_update
short_description: Operating system and security updates, without moving the held NVIDIA stack
version_added: 0.2.0
description:
  - Lists the pending updates of the host, each with its source and a security flag, and installs them
    (O(mode=full)) or only the security ones (O(mode=security)).
  - Debian and Ubuntu (apt) - the updates are those of C(apt-get -s dist-upgrade); the source of each is the
    suite of its origin (C(bookworm-security), C(noble-security), C(stable-security)), and an update is a
    security update when a suite matches O(security_suites). apt resolves the exact transaction of the chosen
    updates before anything is installed.
  - RHEL family (dnf) - the updates are those of C(dnf check-update); the security ones, with their advisory
    ids and severity, those of C(dnf updateinfo list --security).
  - Held packages never move (C(apt-mark hold), C(dnf versionlock); the NVIDIA driver stack that
    M(onprem_ai.maintenance.nvidia_driver) holds). Packages matching O(deny) or O(keep_back) are not installed;
    when the chosen updates need one of them (or a held package, or a removal) the module refuses before
    changing anything.
  - A new kernel among the updates - the NVIDIA kernel module must be built for it (DKMS status, or the module
    file under C(/lib/modules/<kernel>/)) before a reboot. RV(reboot_allowed) is false and RV(reboot_refused)
    says why when it is not; with O(build_kernel_modules) the module runs C(dkms autoinstall -k <kernel>) first.
  - Reports whether a reboot is required (C(/var/run/reboot-required), a new kernel, C(needs-restarting -r))
    and the services that use replaced files (C(needrestart -b), C(needs-restarting -s)). It reboots and
    restarts nothing itself (the role C(onprem_ai.maintenance.os_update) does).
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.common.PACKAGES
attributes:
  check_mode:
    support: full
    details:
      - Returns the exact plan (on apt hosts apt's own resolution of the transaction) and changes nothing,
        not even the package cache (O(update_cache) is skipped).
  diff_mode:
    support: full
    details:
      - Shows the package versions before and after.
options:
  mode:
    description:
      - V(security) installs only the updates that come from a security suite (apt) or carry a security
        advisory (dnf), and what they need; V(full) installs every pending update.
    type: str
    choices: [security, full]
    default: security
  deny:
    description:
      - Shell patterns of package names that are never installed or upgraded by this module (for example
        V(linux-image-*) to take no kernel). The module refuses when the chosen updates need one of them.
    type: list
    elements: str
    default: []
  keep_back:
    description:
      - Shell patterns of package names that stay at their installed version in this run (reported in
        RV(skipped)). The module refuses when the chosen updates need a newer one.
    type: list
    elements: str
    default: []
  security_suites:
    description:
      - apt only - shell patterns of the suites (archives) whose updates are security updates.
    type: list
    elements: str
    default: ['*-security']
  build_kernel_modules:
    description:
      - When a new kernel is installed and the NVIDIA kernel module is not built for it, run
        C(dkms autoinstall -k <kernel>) (the kernel headers must be installed).
      - Without it the module only reports RV(reboot_allowed=false).
    type: bool
    default: false
requirements:
  - apt (dpkg) or dnf (rpm) on the target.
  - C(needrestart) (apt) or C(needs-restarting) of dnf-utils (dnf) to know the services to restart;
    without them RV(services_to_restart) is null (unknown), and on dnf hosts a reboot is assumed.
notes:
  - The running kernel is C(uname -r) of the target.
  - On dnf hosts the plan is the selection of C(dnf check-update); dnf resolves dependencies at install time.
seealso:
  - module: onprem_ai.maintenance.nvidia_driver
  - name: needrestart batch mode
    description: The output format read from C(needrestart -b).
    link: https://github.com/liske/needrestart/blob/master/README.batch.md
'''

EXAMPLES = r'''
- name: What would a security update do (the exact plan)
  onprem_ai.maintenance.os_update:
    mode: security
  check_mode: true
  diff: true
  register: os_plan

- name: Install every pending update but the kernel, refresh the package lists first
  onprem_ai.maintenance.os_update:
    mode: full
    deny: ["linux-image-*", "kernel*"]
    update_cache: true

- name: Security updates; build the NVIDIA module for a new kernel when its hook did not
  onprem_ai.maintenance.os_update:
    mode: security
    keep_back: [docker-ce]
    build_kernel_modules: true
  register: os_update
'''

RETURN = r'''
updates:
  description: The package changes of the run (in check mode, planned), in the package manager's order.
  returned: always
  type: list
  elements: dict
  contains:
    component:
      description: Always V(os_update).
      type: str
    name:
      description: Package name.
      type: str
    action:
      description: V(upgrade), V(install) (a new package, such as a new kernel image) or V(downgrade).
      type: str
    from:
      description: Installed version, null for a new package.
      type: str
    to:
      description: Version after the update.
      type: str
    suite:
      description: Where the version comes from (apt - the suites of its origins, dnf - the repository).
      type: str
      sample: bookworm-security
    origins:
      description: apt - the origins as apt prints them (C(Debian-Security:12/stable-security)).
      type: list
      elements: str
    security:
      description: Whether it is a security update.
      type: bool
    advisories:
      description: dnf - the security advisories (C(RHSA-2024:2394)).
      type: list
      elements: str
    severity:
      description: dnf - the highest severity of its advisories (V(Critical), V(Important), V(Moderate), V(Low)).
      type: str
    kernel:
      description: The kernel release this package installs, null for other packages.
      type: str
    reboot:
      description: Whether this update needs a reboot (a kernel).
      type: bool
    risk:
      description: V(high) (kernel), V(medium) (security update), V(low).
      type: str
    reason:
      description: Why it is in the plan, in words.
      type: str
pending:
  description: Every pending update the package manager offers (before the mode and the lists are applied).
  returned: always
  type: list
  elements: dict
skipped:
  description: Pending updates not installed, each with C(name), C(from), C(to) and C(reason) (held, deny list, keep_back list, not a security update).
  returned: always
  type: list
  elements: dict
held:
  description: Packages held by C(apt-mark hold) or C(dnf versionlock).
  returned: always
  type: list
  elements: str
kernel:
  description: A new kernel among the updates.
  returned: always
  type: dict
  contains:
    installed:
      description: The new kernel release (uname -r spelling), null when no kernel is updated.
      type: str
    running:
      description: The running kernel release.
      type: str
    nvidia_module_needed:
      description: Whether the host uses the NVIDIA kernel module (loaded, or built for some kernel).
      type: bool
    nvidia_module_built:
      description: Whether the NVIDIA module is built for the new kernel; null in check mode while the kernel is not installed yet.
      type: bool
    build_ran:
      description: Whether C(dkms autoinstall) ran in this run.
      type: bool
reboot_required:
  description: Whether the host needs a reboot (after the run; in check mode, after the plan).
  returned: always
  type: bool
reboot_allowed:
  description: False when a new kernel would boot without the NVIDIA module.
  returned: always
  type: bool
reboot_refused:
  description: Why a reboot must not happen now.
  returned: when the NVIDIA module is not built for the new kernel
  type: str
services_to_restart:
  description: Services that use replaced files; null when no tool on the host can tell.
  returned: always
  type: list
  elements: str
mode:
  description: The mode of the run.
  returned: always
  type: str
manager:
  description: V(apt) or V(dnf).
  returned: always
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import PACKAGE_SPEC, OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._os_update import manage
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

ARGUMENT_SPEC = dict(
    mode=dict(type='str', choices=['security', 'full'], default='security'),
    deny=dict(type='list', elements='str', default=[]),
    keep_back=dict(type='list', elements='str', default=[]),
    security_suites=dict(type='list', elements='str', default=['*-security']),
    build_kernel_modules=dict(type='bool', default=False),
    **PACKAGE_SPEC
)


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = manage(module, Runner(module))
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        module.fail_json(**failure(exc, name='os_update'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
