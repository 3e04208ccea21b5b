# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of litellm_config's argument handling: whatever it is given, it ends with exit_json or fail_json
with a message, never a traceback, writes only under its config and state directories, and never prints a key
written in clear in a deployment or the credentials of a drain selector."""

from __future__ import annotations

from hypothesis import given

from ansible_collections.onprem_ai.maintenance.plugins.modules import litellm_config

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

KEY = 'sk-FUZZ-clear-Key-5521'
URL_PASSWORD = 'url-FUZZ-pass-7734'
SECRETS = [KEY, URL_PASSWORD]
BASE = 'http://admin:%s@gpu-1:8000/v1' % URL_PASSWORD
DEPLOYMENTS = [
    {'model_name': 'llama', 'litellm_params': {'model': 'hosted_vllm/llama', 'api_base': base, 'api_key': KEY},
     'model_info': {'id': ident}}
    for ident, base in (('gpu-1', BASE), ('gpu-2', 'http://gpu-2:8000/v1'))]
VALID = {
    'deployments': DEPLOYMENTS,
    'absent_deployments': [],
    'exclusive': False,
    'router_settings': {'routing_strategy': 'simple-shuffle', 'num_retries': 2},
    'litellm_settings': {'drop_params': True},
    'general_settings': {'master_key': 'os.environ/LITELLM_MASTER_KEY'},
    'environment_variables': {},
    'drain': [BASE],
    'undrain': [],
    'allow_drain_last': False,
    'allow_plaintext_secrets': True,
    'backup': True,
    'lock_timeout': 5,
    'mode': '0640',
}
KEYS = sorted(set(VALID) | {'validate_command'})


def directories(tmp_path, args):
    return dict(args, path=str(tmp_path / 'etc' / 'config.yaml'), state_dir=str(tmp_path / 'state'))


@FUZZ_SETTINGS
@given(args=mutated_args(VALID, KEYS, infinity=True))
def test_bad_input_fails_cleanly_and_keeps_the_secrets(tmp_path, args):
    (tmp_path / 'etc').mkdir(exist_ok=True)
    run_module(litellm_config.main, directories(tmp_path, args), allowed_root=tmp_path, secrets=SECRETS)


def test_the_valid_arguments_write_the_config(tmp_path):
    (tmp_path / 'etc').mkdir()
    result = run_module(litellm_config.main, directories(tmp_path, VALID), allowed_root=tmp_path, secrets=SECRETS)
    assert result.get('changed') and not result.get('failed'), result
    assert len(result['drained']) == 1 and 'gpu-1' in result['drained'][0], result


def test_an_infinite_lock_timeout_fails_with_a_message(tmp_path):
    (tmp_path / 'etc').mkdir()
    args = directories(tmp_path, dict(VALID, lock_timeout=float('inf')))
    result = run_module(litellm_config.main, args, allowed_root=tmp_path, secrets=SECRETS)
    assert result.get('failed') and 'infinite' in result['msg'], result
