# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared rolling sequence (roles/rollout/tasks/sequence.yml) run by ansible-playbook on this machine.

Nodes are local connections; the components are small test roles whose plan, update and rollback are set per
node; the node's inference server is a loopback HTTP server. kubernetes.core.k8s_drain is replaced by a test
module (first on the collections path) that records each call, since no Kubernetes cluster can run here: this
checks the task logic of the Kubernetes step (cordon and drain before the update, uncordon after the
validation, left cordoned when the update failed, untouched when there is nothing to do).
"""

from __future__ import annotations

import json

import pytest

K8S_STUB = '''#!/usr/bin/python
# Test stand-in for kubernetes.core.k8s_drain: records each call in $ROLLOUT_TEST_K8S_LOG.
import json, os
from ansible.module_utils.basic import AnsibleModule
module = AnsibleModule(argument_spec=dict(name=dict(type='str', required=True), state=dict(type='str'),
                                          kubeconfig=dict(type='raw'), context=dict(type='str'),
                                          delete_options=dict(type='dict')))
with open(os.environ['ROLLOUT_TEST_K8S_LOG'], 'a') as log:
    log.write(json.dumps([module.params['name'], module.params['state']]) + '\\n')
module.exit_json(changed=True)
'''

PLAYBOOK = '''
- name: Rolling run of the test component
  hosts: nodes
  serial: 1
  gather_facts: false
  ignore_unreachable: true
  tasks:
    - name: The shared sequence
      ansible.builtin.include_role:
        name: onprem_ai.maintenance.rollout
        tasks_from: sequence
      vars:
        rollout_components: [stub]
        rollout_max_fail_percentage: 100

- name: Summary
  hosts: nodes
  gather_facts: false
  ignore_unreachable: true
  tasks:
    - name: Summary
      ansible.builtin.include_role:
        name: onprem_ai.maintenance.rollout
        tasks_from: summary

    - name: Keep what the test reads
      ansible.builtin.copy:
        content: "{{ {'summary': ansible_play_hosts_all | onprem_ai.maintenance.rollout_summary(hostvars),
                      'record': ansible_play_hosts_all | onprem_ai.maintenance.rollout_record(hostvars),
                      'rolled_back': ansible_play_hosts_all | map('extract', hostvars)
                                     | selectattr('stub_rolled_back', 'defined') | list | length} | to_json }}"
        dest: "{{ lookup('ansible.builtin.env', 'ROLLOUT_TEST_OUT') }}"
        mode: "0600"
      delegate_to: localhost
      run_once: true
'''

CHANGE = {'component': 'stub', 'name': 'pkg', 'from': '1', 'to': '2', 'reboot': False, 'security': True,
          'risk': 'low', 'reason': 'test'}
NEVER_OPEN = {'timezone': 'UTC', 'windows': [{'name': 'w', 'frequency': 'weekly', 'weekday': 'sunday',
                                             'start': '01:00', 'end': '02:00'}],
              'freezes': [{'name': 'always', 'start': '2000-01-01', 'end': '2099-12-31'}]}


@pytest.fixture(scope='module')
def run(stub_nodes):  # stub_nodes: tests/unit/conftest.py
    tmp, url = stub_nodes.tmp, stub_nodes.url
    stub_dir = tmp / 'collections' / 'ansible_collections' / 'kubernetes' / 'core'
    (stub_dir / 'plugins' / 'modules').mkdir(parents=True)
    (stub_dir / 'plugins' / 'modules' / 'k8s_drain.py').write_text(K8S_STUB)
    (stub_dir / 'galaxy.yml').write_text('namespace: kubernetes\nname: core\nversion: 9.9.9\n')
    hosts = {
        'updated': {'stub_changes': [CHANGE]},
        'failed': {'stub_changes': [CHANGE], 'stub_fail_update': True},
        'noop': {},
        'postponed': {'stub_changes': [CHANGE], 'rollout_window': NEVER_OPEN},
        'unhealthy': {'stub_changes': [CHANGE], 'rollout_inference_url': url + '/nowhere',
                      'rollout_ready_timeout': 1, 'rollout_validate_checks': []},
    }
    inventory = {'nodes': {'hosts': dict((name, stub_nodes.host_vars(rollout_kubernetes=True, **extra))
                                         for name, extra in hosts.items())}}
    (tmp / 'inventory.json').write_text(json.dumps(inventory))
    (tmp / 'play.yml').write_text(PLAYBOOK)
    proc = stub_nodes.playbook(['-i', str(tmp / 'inventory.json'), str(tmp / 'play.yml')], collections=[tmp / 'collections'],
                               ROLLOUT_TEST_K8S_LOG=str(tmp / 'k8s.log'), ROLLOUT_TEST_OUT=str(tmp / 'out.json'))
    calls = [json.loads(line) for line in (tmp / 'k8s.log').read_text().splitlines()] \
        if (tmp / 'k8s.log').exists() else []
    assert (tmp / 'out.json').exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, json.loads((tmp / 'out.json').read_text()), calls


def test_failed_nodes_fail_the_run(run):
    proc = run[0]
    assert proc.returncode == 2, proc.stdout[-3000:]


def test_summary_lines(run):
    summary = run[1]['summary']
    assert summary[0].startswith('updated: stub (1 change (1 security): pkg 1 -> 2), verified, drained')
    assert summary[1] == 'failed: FAILED - stub update failed on failed'
    assert summary[2] == 'noop: nothing to do, not drained'
    assert summary[3].startswith('postponed: POSTPONED - ')
    assert summary[4].startswith('unhealthy: FAILED - kept out of the gateways\' routing') or \
        summary[4].startswith('unhealthy: FAILED - validation:')


def test_record(run):
    record = dict((entry['host'], entry) for entry in run[1]['record'])
    assert record['updated']['status'] == 'updated'
    assert set(record['updated']['times']) == {'drain', 'work', 'upgraded', 'warm', 'undrained'}
    assert record['failed']['status'] == 'failed'
    assert record['noop']['status'] == 'unchanged'
    assert record['postponed']['status'] == 'postponed'
    # The node that does not serve after its update is rolled back by its component.
    assert record['unhealthy']['status'] == 'rolled_back'
    assert run[1]['rolled_back'] == 1


def test_kubernetes_steps(run):
    calls = run[2]
    assert ['updated', 'drain'] in calls and ['updated', 'uncordon'] in calls
    assert calls.index(['updated', 'drain']) < calls.index(['updated', 'uncordon'])
    # Cordoned before the failed update, and left cordoned.
    assert ['failed', 'drain'] in calls and ['failed', 'uncordon'] not in calls
    assert ['unhealthy', 'drain'] in calls and ['unhealthy', 'uncordon'] not in calls
    assert not [call for call in calls if call[0] in ('noop', 'postponed')]
