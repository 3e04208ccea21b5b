#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: update_plan
short_description: Assess a host's pending updates - risk, reboot, downtime, known vulnerabilities, emergency path
version_added: 0.2.0
description:
  - Takes what the component roles plan for a host (their C(<role>_plan) facts, the shared contract of
    the C(plan) tasks - lists of C(component), C(name), C(from), C(to), C(reboot), C(security), C(risk), C(reason)) and
    applies the risk rules of the maintenance run (docs/maintenance-run.md) - a reboot is at least medium; a kernel
    package, a driver branch change, a major version change, a known-bad target version, and a version that cannot
    be read are high; a minor version change is medium.
  - Matches the Python packages installed in the given virtualenvs (the gateway's LiteLLM and the engine's; read
    from their C(*.dist-info) metadata, or given as C(pip list --format json) output) against a local advisory
    database in L(OSV format,https://ossf.github.io/osv-schema/) - never the network. A known vulnerability makes the
    update that fixes it critical (one is added when no component plans it).
  - Any critical change (a known vulnerability, an advisory whose severity is in O(critical_severities)) sends the
    run down the emergency path (RV(path=emergency)); the other changes are postponable and are postponed when
    named (by name or component) in O(postpone). A known-bad target version is blocked.
  - The expected downtime per node (a reboot, else a service restart per changed component) and for users (none
    with O(strategy=rolling_gateway), where the node is drained behind the gateway first).
  - Reads only; never changes the host.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.attributes.INFO_MODULE
options:
  plans:
    description:
      - The components' planned changes, one list (concatenate the roles' C(<role>_plan) facts).
      - Each item needs C(component), C(name) and C(to); C(from) (null for a new install), C(reboot), C(security),
        C(risk) (V(low), V(medium), V(high)) and C(reason) as the shared contract has them; further keys are kept.
    type: list
    elements: raw
    default: []
  advisories:
    description:
      - Security notices for planned changes (e.g. Debian DSA / DLA ids of the OS packages), each
        C({id, name, severity, component}); C(component) optional. The named change is marked as a security update.
    type: list
    elements: dict
    default: []
  known_bad:
    description: Versions not to install, each C({name, versions, reason}); a change to one is blocked.
    type: list
    elements: dict
    default: []
  venvs:
    description: Virtualenvs on the host whose installed packages are checked (their C(lib/python*/site-packages/*.dist-info)).
    type: list
    elements: path
    default: []
  venv_packages:
    description: Instead of reading a virtualenv, its C(pip list --format json) output (text or list), by virtualenv path.
    type: dict
    default: {}
  advisory_db:
    description:
      - A directory of OSV JSON records (one record or a list per C(*.json) file) on the host the module runs on.
      - Needed when O(venvs) or O(venv_packages) are given, unless O(advisory_records) are.
    type: path
  advisory_records:
    description: OSV records given directly (e.g. read on the controller with the C(file) lookup), added to O(advisory_db)'s.
    type: list
    elements: raw
    default: []
  strategy:
    description:
      - How nodes are updated - V(rolling_gateway) (one node at a time behind the gateway, drained first - no downtime for
        users), V(rolling) (one at a time, clients reach the node directly), V(all_at_once).
    type: str
    choices: [rolling_gateway, rolling, all_at_once]
    default: rolling_gateway
  reboot_seconds:
    description: Expected downtime of a node that reboots, in seconds.
    type: int
    default: 300
  restart_seconds:
    description: Expected downtime of a restarted service per changed component, in seconds.
    type: int
    default: 60
  postpone:
    description: Names or components of non-critical changes to postpone (listed as postponed); critical ones are never postponed.
    type: list
    elements: str
    default: []
  critical_severities:
    description: Advisory severities that make a change critical (emergency path); a known vulnerability always does.
    type: list
    elements: str
    default: [critical]
  checks:
    description:
      - Proactive maintenance - what was gathered for the housekeeping and tuning checks, each finding with one
        recommendation in RV(recommendations). Keys (each optional; one given as null is reported as unknown)
        C(gpu_info) (the gpu_info module's result - driver reload pending, persistence mode, ECC mode, CUDA
        toolkits besides the default), C(engine_gpu_memory_utilization) (the engine's GPU memory share),
        C(disk) (C(path), C(free_bytes), C(needed_bytes) of the next model pull), C(model_versions) (versions kept
        per model) with C(keep), C(journal_bytes) with C(journal_max_bytes), C(gateway) (C(timeout_s),
        C(num_retries)) with C(engine_p99_ms).
      - Also C(drift) (the roles' tasks run in check mode with diff, registered results with C(role) and C(task) -
        each changed one is configuration drift, corrected in the window by the normal run; a failed one is unknown),
        C(images) (C(images) - C({id, repository, tag, created}) - and C(used), the ids or references containers
        use; unused ones are listed, those older than the previous one per repository go to RV(cleanup)) and
        C(gpu_power) (per GPU C(index), C(power_limit_w), C(default_power_limit_w),
        C(clocks_applications_graphics_mhz), C(clocks_default_applications_graphics_mhz), C(clocks_locked) - against
        the defaults; the same keys in C(gpu_info)'s GPUs are checked too - gpu_info reads them from nvidia-smi, so
        C(gpu_power) is only for what it cannot read, such as C(clocks_locked)).
    type: dict
  housekeeping:
    description:
      - Resource housekeeping read on the host (only C(images) runs a command, C(docker), read only) - C(versions), a list of C({kind, path,
        current, keep}) with C(kind) V(model), V(litellm_venv) or V(engine_venv) (C(path) holds one directory per
        version; C(current) and C(previous) - a name or the path of a link to the version - default to where the
        C(current) link in C(path) points and to the newest other one; C(keep) at least 2, default 3);
        C(journal_path) (default C(/var/log/journal)) with C(journal_max_bytes); C(disk) (C(path), C(needed_bytes)
        of the next model pull); C(images) (V(true) - the container images and the images of the containers,
        running or not, read with the docker CLI where docker is installed; unused ones are listed, those older
        than the previous one per repository go to RV(cleanup); a docker that cannot be read is unknown).
      - Versions beyond keep-N are listed in RV(recommendations) and RV(cleanup) - never the current one nor the
        previous one. A directory that cannot be read fails the module (never "nothing to clean").
    type: dict
seealso:
  - name: Maintenance run
    description: Plan, notice, windows, playbooks and report (docs/maintenance-run.md in the collection).
    link: https://github.com/onprem-ai/maintenance/blob/main/docs/maintenance-run.md
  - name: OSV schema
    description: The advisory format read from O(advisory_db).
    link: https://ossf.github.io/osv-schema/
'''

EXAMPLES = r'''
- name: The host's plan
  onprem_ai.maintenance.update_plan:
    plans: "{{ (gpu_stack_plan | default([])) + (os_update_plan | default([])) }}"
    venvs: [/opt/litellm/venv-1.108.7]
    advisory_db: /srv/osv/PyPI
    strategy: rolling_gateway
  register: plan

- name: Critical security goes to the emergency path
  ansible.builtin.debug:
    msg: "{{ plan.summary }}"
  when: plan.path == 'emergency'
'''

RETURN = r'''
changes:
  description: Every change with the contract's keys and C(risk) (by the rules), C(risk_reasons), C(critical), C(postponable),
    C(postponed), C(blocked) (why, or null), C(advisories) (C({id, severity})), C(warnings) where there are some.
  returned: always
  type: list
  elements: dict
pending:
  description: Whether anything is to be done (a change neither postponed nor blocked).
  returned: always
  type: bool
risk:
  description: The run's risk class, the highest of its changes (V(low), V(medium), V(high)), V(none) when nothing is pending.
  returned: always
  type: str
  sample: high
reboot:
  description: Whether a pending change needs a reboot.
  returned: always
  type: bool
components:
  description: The components with pending changes.
  returned: always
  type: list
  elements: str
downtime:
  description: Expected downtime C(node_seconds) and C(users_seconds) (0 behind the gateway), and the C(strategy).
  returned: always
  type: dict
  sample: {node_seconds: 300, users_seconds: 0, strategy: rolling_gateway}
path:
  description: V(emergency) (a critical change), V(scheduled) (the next window), V(none) (nothing pending).
  returned: always
  type: str
critical:
  description: The critical changes (C(component), C(name), C(to), C(advisories)).
  returned: always
  type: list
  elements: dict
postponed:
  description: The postponed changes (C(component), C(name), C(to)).
  returned: always
  type: list
  elements: dict
blocked:
  description: The blocked changes (C(component), C(name), C(to), C(reason)).
  returned: always
  type: list
  elements: dict
vulnerabilities:
  description: Known vulnerabilities of the installed Python packages (C(package), C(version), C(venv), C(id), C(aliases),
    C(severity), C(fixed) (the lowest fixed version above the installed one, or null), C(summary)).
  returned: always
  type: list
  elements: dict
recommendations:
  description: The proactive checks' findings - C(check), C(category) (V(drift), V(housekeeping), V(tuning)), C(status)
    (V(recommend), V(drift) or V(unknown)), C(finding), C(recommendation).
  returned: always
  type: list
  elements: dict
  sample: [{check: persistence mode, status: recommend, finding: "GPU 0 (00000000:1A:00.0): persistence mode is Disabled",
            recommendation: "enable it (nvidia-persistenced), so that the driver stays loaded between jobs"}]
cleanup:
  description:
    - What the window's run may remove safely (issue 17 housekeeping) - C(kind) (V(model), V(litellm_venv),
      V(engine_venv), V(image)), C(path) or C(image), C(reason). Never the current or the previous version.
  returned: always
  type: list
  elements: dict
  sample: [{kind: model, path: /srv/models/llama/r1, reason: "beyond keep=3 in /srv/models/llama"}]
packages_checked:
  description: How many installed Python packages were matched against the advisory database.
  returned: always
  type: int
summary:
  description: One line for people.
  returned: always
  type: str
  sample: "2 changes (0 postponed, 0 blocked), risk high, reboot, downtime per node ~300s, for users none (rolling behind the gateway)"
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _plan as plan_utils
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as housekeeping

ARGUMENT_SPEC = dict(
    plans=dict(type='list', elements='raw', default=[]),
    advisories=dict(type='list', elements='dict', default=[]),
    known_bad=dict(type='list', elements='dict', default=[]),
    venvs=dict(type='list', elements='path', default=[]),
    venv_packages=dict(type='dict', default={}),
    advisory_db=dict(type='path'),
    advisory_records=dict(type='list', elements='raw', default=[]),
    strategy=dict(type='str', choices=list(plan_utils.STRATEGIES), default='rolling_gateway'),
    reboot_seconds=dict(type='int', default=300),
    restart_seconds=dict(type='int', default=60),
    postpone=dict(type='list', elements='str', default=[]),
    critical_severities=dict(type='list', elements='str', default=['critical']),
    checks=dict(type='dict'),
    housekeeping=dict(type='dict'),
)


def run(params, runner=None):
    """The module's work, without Ansible: the plan dict (runner: the docker CLI for housekeeping.images)."""
    for key in ('reboot_seconds', 'restart_seconds'):
        if params[key] < 0:
            raise plan_utils.PlanError('%s: %d is negative' % (key, params[key]))
    packages = []
    for venv in params['venvs']:
        packages.extend(plan_utils.read_venv(venv))
    for venv, data in sorted(params['venv_packages'].items()):
        packages.extend(plan_utils.pip_list(venv, data))
    records = list(params['advisory_records'])
    if params['advisory_db']:
        records.extend(plan_utils.load_osv_dir(params['advisory_db']))
    if packages and not records:
        raise plan_utils.PlanError('advisory_db: installed Python packages are to be checked but no advisory database '
                                   'was given (advisory_db or advisory_records): "no known vulnerability" cannot be told')
    checks, found, cleanup = dict(params['checks'] or {}), [], []
    if params['housekeeping']:
        gathered, found, cleanup = housekeeping.gather(params['housekeeping'], runner)
        checks.update(gathered)
    result = plan_utils.plan(params['plans'], advisories=params['advisories'], known_bad=params['known_bad'],
                             packages=packages, osv=records, strategy=params['strategy'],
                             reboot_seconds=params['reboot_seconds'], restart_seconds=params['restart_seconds'],
                             postpone=params['postpone'], critical_severities=params['critical_severities'],
                             checks=checks)
    result['recommendations'] = found + result['recommendations']
    result['cleanup'] = cleanup + result['cleanup']
    return result


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module.params, Runner(module))
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        module.fail_json(**failure(exc, name='update_plan'))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
