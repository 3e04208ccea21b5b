#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cuda_toolkit
short_description: Install CUDA toolkits side by side, remove old ones, choose the default C(/usr/local/cuda)
version_added: 0.1.0
description:
  - Installs and removes the CUDA toolkit packages C(cuda-toolkit-X-Y) of NVIDIA's CUDA repository with apt
    (Debian, Ubuntu) or dnf (RHEL family). Each release lives in C(/usr/local/cuda-X.Y), so several
    releases can be installed at the same time.
  - Refuses, before changing anything, to install a toolkit that the installed NVIDIA driver cannot run
    (the toolkit's minimum driver from NVIDIA's CUDA release notes), and says to upgrade the driver first
    (M(onprem_ai.maintenance.nvidia_driver)) or to set O(minor_version_compatibility).
    A CUDA release that this collection does not know yet is installed with a warning instead.
  - On a host without any NVIDIA driver package it refuses too, unless O(allow_no_driver=true)
    (build hosts and image builds that only compile CUDA code).
  - Points C(/usr/local/cuda) at the O(default) toolkit with C(update-alternatives --set cuda) (dpkg hosts)
    or C(alternatives --set cuda) (rpm hosts), the alternative that NVIDIA's packages register.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.common.PACKAGES
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan (what would be installed, removed and made the default) and changes nothing,
        not even the package cache (O(update_cache) is skipped).
  diff_mode:
    support: full
    details:
      - Shows the installed toolkit versions and the default before and after.
options:
  versions:
    description:
      - CUDA toolkit releases, as V(MAJOR.MINOR) (V(12.8)) or V(MAJOR.MINOR.PATCH) (V(12.8.1)). Quote them in YAML
        (V(12.10) unquoted is the number 12.1).
      - V(12.8) is satisfied by any installed CUDA 12.8 and installs the newest available one when it is missing.
        V(12.8.1) installs exactly that release (or changes an installed 12.8 to it); the module fails, listing
        the versions the repositories offer, when it is not available.
      - One entry per V(MAJOR.MINOR).
      - Required unless only O(default) is given.
    type: list
    elements: str
  state:
    description:
      - V(present) installs O(versions) beside the toolkits already there; V(absent) removes them (every package of
        that release, for example C(cuda-nvcc-12-4) and C(libcublas-12-4), not only the C(cuda-toolkit-12-4) meta package).
    type: str
    choices: [present, absent]
    default: present
  default:
    description:
      - The toolkit C(/usr/local/cuda) points to, as V(MAJOR.MINOR) (a patch level is ignored). It must be installed
        already or be listed in O(versions) (and, with O(state=absent), not be listed there).
      - Without it, C(/usr/local/cuda) is left to the packages' alternatives priorities (NVIDIA's packages make the
        newest release the default while the alternative is in auto mode).
    type: str
  remove_others:
    description:
      - With O(state=present), also remove the toolkits that are not in O(versions). The O(default) toolkit is never removed.
      - Toolkits not installed from packages (runfile installs) are left in place with a warning.
    type: bool
    default: false
  minor_version_compatibility:
    description:
      - Accept every driver that CUDA minor version compatibility allows (CUDA 12.x on driver >= 525.60.13) instead
        of the toolkit's own minimum driver. Applications then run with restrictions (no PTX JIT of code newer than
        the driver), see NVIDIA's CUDA compatibility guide.
    type: bool
    default: false
  allow_no_driver:
    description:
      - Install toolkits on a host where no NVIDIA driver package is installed, where the minimum driver cannot be
        checked (build hosts, container image builds, or when the driver is installed afterwards).
      - Without it the module refuses to install a toolkit on such a host.
    type: bool
    default: false
requirements:
  - apt (dpkg) or dnf (rpm) on the target, with NVIDIA's CUDA repository configured.
  - C(update-alternatives) (dpkg) or C(alternatives) (rpm) to set O(default).
notes:
  - The driver checked is the installed one (its packages). When the loaded kernel module is older and cannot run
    a requested toolkit, the module warns that a driver reload or reboot is still needed.
  - O(update_cache) is not done in check mode; a cache refresh alone does not report a change.
  - The C(cuda-MAJOR) alternative (C(/usr/local/cuda-12)) is left to the packages.
  - Removing a release removes every installed package of it; apt also removes packages that depend on them.
seealso:
  - module: onprem_ai.maintenance.gpu_info
  - name: CUDA Toolkit release notes (minimum driver versions)
    description: The table of the toolkit's minimum driver that this module checks.
    link: https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html
  - name: CUDA compatibility
    description: Minor version compatibility and its restrictions.
    link: https://docs.nvidia.com/deploy/cuda-compatibility/index.html
'''

EXAMPLES = r'''
- name: Install CUDA 12.8 beside 12.4 and make it the default
  onprem_ai.maintenance.cuda_toolkit:
    versions: ["12.4", "12.8"]
    default: "12.8"

- name: Pin an exact release and remove every other toolkit
  onprem_ai.maintenance.cuda_toolkit:
    versions: ["12.8.1"]
    default: "12.8"
    remove_others: true
    update_cache: true

- name: Only switch /usr/local/cuda back to an installed toolkit
  onprem_ai.maintenance.cuda_toolkit:
    default: "12.4"

- name: Remove CUDA 12.4
  onprem_ai.maintenance.cuda_toolkit:
    versions: ["12.4"]
    state: absent

- name: See what a change would do
  onprem_ai.maintenance.cuda_toolkit:
    versions: ["12.8"]
    default: "12.8"
  check_mode: true
  diff: true
  register: cuda_plan
'''

RETURN = r'''
toolkits:
  description: The CUDA toolkits after the run (in check mode, as they would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    release:
      description: V(MAJOR.MINOR).
      type: str
      sample: "12.8"
    version:
      description: Toolkit version.
      type: str
      sample: 12.8.1
    package:
      description: The C(cuda-toolkit-X-Y) package, null for a toolkit not installed from packages.
      type: str
      sample: cuda-toolkit-12-8
    package_version:
      description: Full package version, null for a toolkit not installed from packages.
      type: str
      sample: 12.8.1-1
    path:
      description: Installation directory.
      type: str
      sample: /usr/local/cuda-12.8
    default:
      description: Whether C(/usr/local/cuda) points at it.
      type: bool
installed:
  description: Toolkit versions installed (or changed to) by this run.
  returned: always
  type: list
  elements: str
  sample: ["12.8.1"]
removed:
  description: Toolkit versions removed by this run.
  returned: always
  type: list
  elements: str
  sample: ["12.4.1"]
default:
  description:
    - Release that C(/usr/local/cuda) points to after the run, null when it does not exist; the resolved path when
      it points somewhere other than a C(cuda-X.Y) directory.
  returned: always
  type: str
  sample: "12.8"
driver_version:
  description: Installed NVIDIA driver (from its packages) that the toolkits were checked against, null when none is installed.
  returned: always
  type: str
  sample: 570.133.20
package_actions:
  description: Package changes of the run (in check mode, planned); apt's own resolution on dpkg hosts.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(install), V(upgrade), V(downgrade) or V(remove).
      type: str
    name:
      description: Package name.
      type: str
    from:
      description: Version before, null when it was not installed.
      type: str
    to:
      description: Version after, null when removed.
      type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._cuda import manage
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import PACKAGE_SPEC, OnpremModule


ARGUMENT_SPEC = dict(
    versions=dict(type='list', elements='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    default=dict(type='str'),
    remove_others=dict(type='bool', default=False),
    minor_version_compatibility=dict(type='bool', default=False),
    allow_no_driver=dict(type='bool', default=False),
    **PACKAGE_SPEC
)


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, required_one_of=[('versions', 'default')], supports_check_mode=True)
    try:
        result = manage(module)
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        module.fail_json(**failure(exc, name='cuda_toolkit'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
