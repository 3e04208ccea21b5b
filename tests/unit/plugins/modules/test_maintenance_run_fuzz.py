# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of update_plan's and maintenance_report's argument handling: whatever they are given, they end with
exit_json or fail_json with a message, never a traceback, and maintenance_report writes only under its dest (the
test's directory), never in check mode, and never a value of a secret-named key."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.modules import maintenance_report, update_plan

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

ADVISORIES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'lab', 'advisories')
SECRET = 'sk-report-Secret-77'
CHANGE = {'component': 'gpu_stack', 'name': 'nvidia-driver', 'from': '550.127.08', 'to': '570.133.20', 'reboot': True,
          'security': False, 'risk': 'medium', 'reason': 'x'}
PLAN_KEYS = ['plans', 'advisories', 'known_bad', 'venvs', 'venv_packages', 'advisory_db', 'advisory_records', 'strategy',
             'reboot_seconds', 'restart_seconds', 'postpone', 'critical_severities', 'checks']
REPORT_KEYS = ['kind', 'data', 'dest', 'name', 'keep', 'dtstamp']


@FUZZ_SETTINGS
@given(data=st.data())
def test_update_plan_bad_input_fails_cleanly(tmp_path, data):
    base = {'plans': [CHANGE], 'advisory_db': ADVISORIES,
            'venv_packages': {'/opt/v': [{'name': 'requests', 'version': '2.31.0'}]},
            'checks': {'gateway': {'timeout_s': 10, 'num_retries': 0}, 'engine_p99_ms': 9000}}
    result = run_module(update_plan.main, data.draw(mutated_args(base, PLAN_KEYS)), allowed_root=tmp_path)
    assert not result.get('changed')


@FUZZ_SETTINGS
@given(data=st.data(), check_mode=st.booleans())
def test_maintenance_report_bad_input_fails_cleanly(tmp_path, data, check_mode):
    dest = tmp_path / ('dry' if check_mode else 'reports')
    base = {'kind': 'report', 'dest': str(dest), 'name': 'run-1',
            'data': {'run': {'name': 'r', 'started': 1796763600}, 'hosts': [
                {'host': 'gpu1', 'status': 'updated', 'times': {'drain': 1796763660, 'undrained': 1796763700}},
                {'host': 'gpu2', 'status': 'rolled_back', 'error': 'validation failed', 'token': SECRET}]}}
    run_module(maintenance_report.main, data.draw(mutated_args(base, REPORT_KEYS)), allowed_root=tmp_path,
               secrets=[SECRET], check_mode=check_mode)
    if check_mode:
        assert not dest.exists()
    for root, _dirs, names in os.walk(tmp_path):
        for name in names:
            with open(os.path.join(root, name), encoding='utf-8', errors='replace') as handle:
                assert SECRET not in handle.read()
