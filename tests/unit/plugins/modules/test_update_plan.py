# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""update_plan's main(): a virtualenv read from disk against the lab advisory copy, options, failures."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.modules import update_plan

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
ADVISORIES = os.path.join(ROOT, 'tests', 'lab', 'advisories')


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            update_plan.main()
    out = json.loads(capsys.readouterr().out)
    out['rc'] = exit_info.value.code
    return out


def venv(tmp_path, dists):
    site = tmp_path / 'venv' / 'lib' / 'python3.11' / 'site-packages'
    site.mkdir(parents=True)
    for name, version in dists:
        (site / ('%s-%s.dist-info' % (name, version))).mkdir()
        (site / ('%s-%s.dist-info' % (name, version)) / 'METADATA').write_text('Name: %s\nVersion: %s\n' % (name, version))
    return str(tmp_path / 'venv')


DRIVER = {'component': 'gpu_stack', 'name': 'nvidia-driver', 'from': '535.183.01', 'to': '570.133.20', 'reboot': True,
          'security': False, 'risk': 'medium', 'reason': 'gpu_stack_driver_version 570'}


def test_gateway_venv_with_a_vulnerable_jinja2_goes_to_emergency(capsys, tmp_path):
    path = venv(tmp_path, [('Jinja2', '3.1.4'), ('requests', '2.32.3'), ('litellm', '1.108.7')])
    out = run(capsys, plans=[DRIVER], venvs=[path], advisory_db=ADVISORIES)
    assert out['rc'] == 0 and not out['changed']
    assert out['path'] == 'emergency' and out['risk'] == 'high' and out['reboot'] and out['packages_checked'] == 3
    assert [v['id'] for v in out['vulnerabilities']] == ['GHSA-q2x7-8rv6-6q7h']
    assert out['critical'] == [{'component': 'python:%s' % path, 'name': 'Jinja2', 'to': '3.1.5',
                                'advisories': ['GHSA-q2x7-8rv6-6q7h']}]
    assert out['downtime'] == {'node_seconds': 300, 'users_seconds': 0, 'strategy': 'rolling_gateway'}


def test_pip_list_output_and_records_given_directly(capsys):
    with open(os.path.join(ADVISORIES, 'GHSA-9wx4-h78v-vm56.json'), encoding='utf-8') as handle:
        record = json.load(handle)
    out = run(capsys, venv_packages={'/opt/vllm': json.dumps([{'name': 'requests', 'version': '2.31.0'}])},
              advisory_records=[record], strategy='rolling', reboot_seconds=120, restart_seconds=30)
    assert out['rc'] == 0 and out['vulnerabilities'][0]['fixed'] == '2.32.0'
    assert out['downtime'] == {'node_seconds': 30, 'users_seconds': 30, 'strategy': 'rolling'}


def test_packages_without_an_advisory_database_fail(capsys, tmp_path):
    out = run(capsys, venvs=[venv(tmp_path, [('requests', '2.31.0')])])
    assert out['rc'] == 1 and out['failed'] and 'no advisory database' in out['msg'] and out['error_kind'] == 'invalid'


def test_unreadable_venv_fails_naming_it(capsys, tmp_path):
    out = run(capsys, venvs=[str(tmp_path / 'missing')], advisory_db=ADVISORIES)
    assert out['rc'] == 1 and 'missing is not a virtualenv' in out['msg'] and out['error_kind'] == 'unreadable'


def test_bad_plan_item_fails_without_traceback(capsys):
    out = run(capsys, plans=[{'component': 'x', 'name': 'y'}])
    assert out['rc'] == 1 and out['msg'].startswith('plans[0]: to missing')
    out = run(capsys, plans=[], reboot_seconds=-1)
    assert out['rc'] == 1 and 'negative' in out['msg']


def test_check_mode_is_the_same_read(capsys):
    out = run(capsys, plans=[DRIVER], _ansible_check_mode=True)
    assert out['rc'] == 0 and not out['changed'] and out['path'] == 'scheduled'


def test_housekeeping_read_on_the_host(capsys, tmp_path):
    root = tmp_path / 'litellm'
    for index, name in enumerate(['venv-1.60', 'venv-1.70', 'venv-1.80', 'venv-1.90']):
        (root / name).mkdir(parents=True)
        os.utime(root / name, (index, index))
    os.symlink('venv-1.90', root / 'current')
    out = run(capsys, housekeeping={'versions': [{'kind': 'litellm_venv', 'path': str(root), 'keep': 2}]},
              checks={'gpu_power': [{'index': 0, 'power_limit_w': 450, 'default_power_limit_w': 700}]})
    assert out['rc'] == 0 and out['changed'] is False
    assert [c['path'] for c in out['cleanup']] == [str(root / 'venv-1.60'), str(root / 'venv-1.70')]
    assert [(f['check'], f['category']) for f in out['recommendations']] == [
        ('old LiteLLM virtualenvs', 'housekeeping'), ('power limit', 'tuning')]
    (root / 'venv-1.50').write_text('a file where a directory of versions is expected is skipped')
    failed = run(capsys, housekeeping={'versions': [{'kind': 'model', 'path': str(root), 'keep': 1}]})
    assert failed['rc'] == 1 and 'previous version' in failed['msg']
