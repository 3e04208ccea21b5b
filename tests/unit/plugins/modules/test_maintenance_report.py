# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""maintenance_report's main(): notice and report files, history, check mode, stats for AWX, refusals."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.modules import maintenance_report

HERE = os.path.dirname(__file__)
with open(os.path.join(HERE, '..', 'module_utils', 'test_report.yaml'), encoding='utf-8') as _handle:
    DATA = yaml.safe_load(_handle)
WINDOW = {'name': 'monthly', 'timezone': 'Europe/Berlin', 'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z',
          'start_local': '2026-12-08T22:00:00+01:00', 'end_local': '2026-12-09T02:00:00+01:00'}
PLAN = {'changes': [{'component': 'gpu_stack', 'name': 'nvidia-driver', 'from': '570.124.06', 'to': '570.133.20',
                     'reboot': True, 'risk': 'medium', 'security': False}],
        'risk': 'medium', 'reboot': True, 'pending': True, 'path': 'scheduled',
        'downtime': {'node_seconds': 300, 'users_seconds': 0}}


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            maintenance_report.main()
    out = json.loads(capsys.readouterr().out)
    out['rc'] = exit_info.value.code
    return out


def test_notice_files(capsys, tmp_path):
    out = run(capsys, kind='notice', dest=str(tmp_path), name='notice-2026-12-08', dtstamp='2026-11-24T09:00:00Z',
              data={'window': WINDOW, 'hosts': {'gpu1': PLAN}, 'contact': 'ops@example.org'})
    assert out['rc'] == 0 and out['changed'] and out['outcome'] is None
    assert sorted(os.listdir(tmp_path / 'notice-2026-12-08')) == ['notice.html', 'notice.ics', 'notice.md']
    assert out['summary'] == ['notice: risk medium, reboot, downtime for users 0s, 1 host(s) with pending changes']
    again = run(capsys, kind='notice', dest=str(tmp_path), name='notice-2026-12-08', dtstamp='2026-11-24T09:00:00Z',
                data={'window': WINDOW, 'hosts': {'gpu1': PLAN}, 'contact': 'ops@example.org'})
    assert again['rc'] == 0 and not again['changed'] and again['written'] == []


def test_report_files_history_and_stats(capsys, tmp_path):
    out = run(capsys, kind='report', dest=str(tmp_path), name='2026-12-08-monthly', data=DATA['window_closed'])
    assert out['rc'] == 0 and out['changed'] and out['outcome'] == 'stopped'
    assert out['stats']['left_for_next_window'] == ['gpu2', 'gpu3'] and out['stats']['outcome'] == 'stopped'
    names = sorted(os.listdir(tmp_path))
    assert names == ['2026-12-08-monthly', 'history.json', 'latest-report.md', 'latest-summary.txt']
    for name in os.listdir(tmp_path / '2026-12-08-monthly'):
        assert stat.S_IMODE(os.stat(tmp_path / '2026-12-08-monthly' / name).st_mode) == 0o644


def test_check_mode_writes_nothing(capsys, tmp_path):
    out = run(capsys, kind='report', dest=str(tmp_path / 'r'), name='x', data=DATA['rolled_back'], _ansible_check_mode=True)
    assert out['rc'] == 0 and out['changed'] and out['outcome'] == 'failed' and not (tmp_path / 'r').exists()


def test_secrets_are_refused_and_not_printed(capsys, tmp_path):
    data = dict(DATA['rolled_back'], run={'name': 'x', 'api_key': 'sk-Secret-4711'})
    out = run(capsys, kind='report', dest=str(tmp_path), name='x', data=data)
    assert out['rc'] == 1 and 'must not hold secrets' in out['msg'] and 'sk-Secret-4711' not in out['msg']
    assert not os.listdir(tmp_path)


def test_bad_options(capsys, tmp_path):
    out = run(capsys, kind='report', dest=str(tmp_path), name='x', data=DATA['rolled_back'], keep=-1)
    assert out['rc'] == 1 and 'negative' in out['msg']
    out = run(capsys, kind='notice', dest=str(tmp_path), name='x', data={'window': WINDOW})
    assert out['rc'] == 1 and out['msg'].startswith('hosts:')
