# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After install, failed upgrade, rolling upgrade and rollback on request: the real state of the node."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
HOST = RUNNER.get_host('molecule-ms-gpu-1')
BASE = '/opt/onprem_ai/model_server'


def test_service_runs_enabled():
    svc = HOST.service('model-server')
    assert svc.is_running
    assert svc.is_enabled
    assert not HOST.service('lab-inference').is_running


def test_current_and_previous_links():
    """The rollback on request swapped them: 1.0.0 in use, 1.1.0 kept."""
    assert HOST.file(f'{BASE}/current').linked_to == f'{BASE}/venvs/1.0.0'
    assert HOST.file(f'{BASE}/previous').linked_to == f'{BASE}/venvs/1.1.0'


def test_broken_release_not_kept():
    """model_server_keep 2: the failed 1.2.0 virtualenv went with the next successful update."""
    venvs = HOST.check_output(f'ls {BASE}/venvs').split()
    assert sorted(venvs) == ['1.0.0', '1.1.0']


def test_venv_pip_version():
    out = HOST.check_output(f'{BASE}/current/bin/python -m pip show lab-inference-server')
    assert 'Version: 1.0.0' in out


def test_engine_serves_installed_version():
    version = json.loads(HOST.check_output('curl -sf http://127.0.0.1:8000/version'))
    assert version == {'version': '1.0.0'}
    models = json.loads(HOST.check_output('curl -sf http://127.0.0.1:8000/v1/models'))
    assert models['data'][0]['id'] == 'llama-3.1-8b-instruct'
    assert models['data'][0]['max_model_len'] == 4096


def test_unit_model_flags():
    unit = HOST.file('/etc/systemd/system/model-server.service').content_string
    assert f'ExecStart={BASE}/current/bin/vllm serve /var/lib/onprem_ai/models/llama-3.1-8b-instruct/current' in unit
    for flag in ('--served-model-name llama-3.1-8b-instruct', '--max-model-len 4096',
                 '--gpu-memory-utilization 0.85', '--tensor-parallel-size 1', '--port 8000'):
        assert flag in unit
    assert 'User=model-server' in unit


def test_runs_as_its_user():
    pid = HOST.check_output('systemctl show -p MainPID --value model-server')
    assert HOST.check_output(f'ps -o user= -p {pid}').strip() == 'model-server'


def test_env_file_private():
    env = HOST.file('/etc/default/model-server')
    assert env.mode == 0o600
    assert env.user == 'root'
