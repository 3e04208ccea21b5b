# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.modules import litellm_config

BACKENDS = [
    {'model_name': 'llama', 'litellm_params': {'model': 'hosted_vllm/llama', 'api_base': 'http://gpu-%d:8000/v1' % n,
                                               'api_key': 'os.environ/VLLM_KEY'}, 'model_info': {'id': 'gpu-%d' % n}}
    for n in (1, 2)]


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            litellm_config.main()
    out = json.loads(capsys.readouterr().out)
    out['rc'] = exit_info.value.code
    return out


@pytest.fixture(name='paths')
def fixture_paths(tmp_path):
    return {'path': str(tmp_path / 'config.yaml'), 'state_dir': str(tmp_path / 'state')}


def test_create_then_idempotent(capsys, paths):
    first = run(capsys, deployments=BACKENDS, router_settings={'num_retries': 2}, **paths)
    assert first['changed'] is True and first['restart_required'] is True
    assert yaml.safe_load(open(paths['path']))['model_list'] == BACKENDS
    assert oct(os.stat(paths['path']).st_mode & 0o777) == '0o640'
    second = run(capsys, deployments=BACKENDS, router_settings={'num_retries': 2}, **paths)
    assert second['changed'] is False and second['restart_required'] is False


def test_check_mode_and_diff_change_nothing(capsys, paths):
    run(capsys, deployments=BACKENDS[:1], **paths)
    before = open(paths['path']).read()
    out = run(capsys, deployments=BACKENDS, _ansible_check_mode=True, _ansible_diff=True, **paths)
    assert out['changed'] is True and 'gpu-2' in out['diff']['after'] and 'gpu-2' not in out['diff']['before']
    assert open(paths['path']).read() == before


def test_plaintext_key_refused_and_never_echoed(capsys, paths):
    bad = [dict(BACKENDS[0], litellm_params=dict(BACKENDS[0]['litellm_params'], api_key='sk-live-SECRET'))]
    out = run(capsys, deployments=bad, **paths)
    assert out['failed'] is True
    assert 'model_list[0].litellm_params.api_key' in out['msg']
    assert 'sk-live-SECRET' not in json.dumps(out)
    assert not os.path.exists(paths['path'])


def test_invalid_config_keeps_the_old_file(capsys, paths):
    run(capsys, deployments=BACKENDS, **paths)
    before = open(paths['path']).read()
    out = run(capsys, router_settings={'routing_strategy': 'fastest'}, **paths)
    assert out['failed'] is True and 'routing_strategy must be one of' in out['msg'] and 'was not changed' in out['msg']
    assert open(paths['path']).read() == before


def test_validate_command_refusal(capsys, paths, tmp_path):
    run(capsys, deployments=BACKENDS, **paths)
    before = open(paths['path']).read()
    out = run(capsys, router_settings={'num_retries': 5}, validate_command=['false', '%s'], **paths)
    assert out['failed'] is True and 'validate_command refused' in out['msg']
    assert open(paths['path']).read() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_drain_undrain_with_backup_and_record(capsys, paths):
    run(capsys, deployments=BACKENDS, **paths)
    out = run(capsys, drain=['gpu-1'], **paths)
    assert out['changed'] is True and out['drained'] == ['llama@http://gpu-1:8000/v1 (id gpu-1)']
    assert out['backup_file'] and os.path.exists(out['backup_file'])
    assert [d['model_info']['id'] for d in yaml.safe_load(open(paths['path']))['model_list']] == ['gpu-2']
    assert run(capsys, drain=['gpu-1'], **paths)['changed'] is False
    out = run(capsys, undrain=['gpu-1'], **paths)
    assert out['drained'] == [] and len(yaml.safe_load(open(paths['path']))['model_list']) == 2


def test_draining_the_last_backend_is_refused(capsys, paths):
    run(capsys, deployments=BACKENDS[:1], **paths)
    out = run(capsys, drain=['gpu-1'], **paths)
    assert out['failed'] is True and 'no deployment' in out['msg']
