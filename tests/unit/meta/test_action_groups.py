# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/runtime.yml's action groups are usable with module_defaults: every member of a group accepts every option
the group promises (README, "Module groups"). ansible-playbook runs each member on localhost in check mode with
module_defaults set through the group, and no member may refuse an option it was given that way (while a module
given an option it lacks the same way does refuse it: the control)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

import ansible_collections.onprem_ai.maintenance as collection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# What each group promises its members accept (one module's group: all of its options).
PROMISES = {'gpu': ['update_cache'], 'state': ['state_dir'], 'models': [], 'backup': [], 'gateway': [], 'validation': [],
            'monitoring': []}
# The least each member needs to run on this host in check mode (the modules read; none is expected to succeed).
ARGS = {
    'cuda_toolkit': {'versions': ['12.8']},
    'nvidia_driver': {'version': '570.133.20'},
    'backup_snapshot': {'action': 'snapshots', 'repository': '{{ work }}/repo', 'password': 'not-a-secret'},
    'litellm_config': {'path': '{{ work }}/config.yaml'},
}


def groups():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        return yaml.safe_load(handle)['action_groups']


def test_every_group_says_what_it_promises_in_the_readme():
    with open(os.path.join(ROOT, 'README.md')) as handle:
        readme = handle.read()
    assert set(groups()) == set(PROMISES)
    for name, options in PROMISES.items():
        line = [row for row in readme.splitlines() if row.startswith('| `group/onprem_ai.maintenance.%s`' % name)]
        assert line, 'README has no row for group %s' % name
        assert all('`%s`' % option in line[0] for option in options), line[0]


def test_module_defaults_through_each_group_reach_every_member(tmp_path):
    values = {'update_cache': True, 'state_dir': str(tmp_path / 'state')}
    defaults = dict(('group/onprem_ai.maintenance.%s' % name, dict((o, values[o]) for o in options))
                    for name, options in PROMISES.items() if options)
    members = sorted(set(m for name, options in PROMISES.items() if options for m in groups()[name]))
    tasks = [{'name': member, 'onprem_ai.maintenance.%s' % member: ARGS[member], 'check_mode': True,
              'ignore_errors': True, 'register': 'result_%s' % member} for member in members]
    # The control: the same option given by module_defaults to a module that lacks it is refused (gpu_info reads).
    tasks.append({'name': 'control', 'onprem_ai.maintenance.gpu_info': {}, 'check_mode': True, 'ignore_errors': True,
                  'module_defaults': {'onprem_ai.maintenance.gpu_info': {'update_cache': True}}, 'register': 'result_control'})
    tasks.append({'name': 'results', 'ansible.builtin.copy': {
        'dest': '{{ work }}/results.json', 'mode': '0600',
        'content': '{{ %s | to_json }}' % ('{%s}' % ', '.join('"%s": result_%s' % (m, m) for m in members + ['control']))}})
    playbook = tmp_path / 'groups.yml'
    playbook.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False, 'module_defaults': defaults,
                                         'vars': {'work': str(tmp_path)}, 'tasks': tasks}]))
    collections = os.path.dirname(os.path.dirname(os.path.dirname(list(collection.__path__)[0])))
    (tmp_path / 'ansible.cfg').write_text('[defaults]\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_REMOTE_TEMP=str(tmp_path / 'tmp'))
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
               '-e', 'ansible_python_interpreter=%s' % sys.executable, str(playbook)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert 'Unsupported parameters' in results['control']['msg'] and 'update_cache' in results['control']['msg']
    for member in members:
        assert 'Unsupported parameters' not in str(results[member].get('msg')), (member, results[member].get('msg'))
