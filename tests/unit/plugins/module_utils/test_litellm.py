# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _litellm as litellm


def backend(node, ident=None, **params):
    deployment = {'model_name': 'llama', 'litellm_params': dict({'model': 'hosted_vllm/llama', 'api_base': 'http://%s:8000/v1' % node,
                                                                'api_key': 'os.environ/VLLM_KEY'}, **params)}
    if ident:
        deployment['model_info'] = {'id': ident}
    return deployment


CONFIG = {'model_list': [backend('gpu-1', 'gpu-1'), backend('gpu-2', 'gpu-2')],
          'router_settings': {'routing_strategy': 'simple-shuffle', 'num_retries': 2},
          'general_settings': {'master_key': 'os.environ/LITELLM_MASTER_KEY'}}


def test_valid_config():
    assert litellm.validate(CONFIG) == ([], [])


@pytest.mark.parametrize('change,message', [
    (lambda c: c['model_list'][0].pop('model_name'), 'model_list[0].model_name must be a non-empty string'),
    (lambda c: c['model_list'][0]['litellm_params'].pop('model'), 'model_list[0].litellm_params.model must be'),
    (lambda c: c['model_list'][1]['litellm_params'].update(api_base='gpu-2:8000'), 'model_list[1].litellm_params.api_base must be an http'),
    (lambda c: c['model_list'][0]['litellm_params'].update(weight=-1), 'weight must be a number >= 0'),
    (lambda c: c['model_list'][0]['litellm_params'].update(order=0), 'order must be an integer >= 1'),
    (lambda c: c['model_list'][0]['litellm_params'].update(rpm='10'), 'rpm must be an integer >= 0'),
    (lambda c: c['model_list'][0]['litellm_params'].update(timeout=0), 'timeout must be a number of seconds > 0'),
    (lambda c: c['model_list'][1]['model_info'].update(id='gpu-1'), "model_info.id 'gpu-1' repeats model_list[0]"),
    (lambda c: c['router_settings'].update(routing_strategy='fastest'), 'routing_strategy must be one of'),
    (lambda c: c['router_settings'].update(num_retries=-1), 'num_retries must be an integer >= 0'),
    (lambda c: c.update(general_settings=[]), 'general_settings must be a mapping'),
    (lambda c: c.update(model_list={}), 'model_list must be a list'),
])
def test_invalid_configs_are_explained(change, message):
    config = copy.deepcopy(CONFIG)
    change(config)
    errors, dummy = litellm.validate(config)
    assert any(message in error for error in errors), errors


def test_unknown_top_level_key_is_a_warning():
    config = dict(CONFIG, modle_list=[])
    assert litellm.validate(config) == ([], ["unknown top-level key 'modle_list' (LiteLLM ignores it)"])


def test_plaintext_secrets_found_and_masked():
    config = copy.deepcopy(CONFIG)
    config['model_list'][0]['litellm_params']['api_key'] = 'sk-live-123'
    config['general_settings']['database_url'] = 'postgresql://u:p@db/litellm'
    config['litellm_settings'] = {'max_tokens': 100}
    assert litellm.plaintext_secrets(config) == ['model_list[0].litellm_params.api_key', 'general_settings.database_url']
    shown = repr(litellm.masked(config))
    assert 'sk-live-123' not in shown and 'u:p@db' not in shown and 'os.environ/VLLM_KEY' in shown


def test_add_update_and_remove_deployments():
    new, dummy = litellm.apply_changes(CONFIG, present=[backend('gpu-3', 'gpu-3'), backend('gpu-1', 'gpu-1', weight=2)],
                                       absent=[{'model_info': {'id': 'gpu-2'}}])
    assert [litellm.deployment_label(d) for d in new['model_list']] == [
        'llama@http://gpu-1:8000/v1 (id gpu-1)', 'llama@http://gpu-3:8000/v1 (id gpu-3)']
    assert new['model_list'][0]['litellm_params']['weight'] == 2
    assert CONFIG['model_list'][0]['litellm_params'].get('weight') is None  # input untouched


def test_identity_without_id_is_name_and_api_base():
    config = {'model_list': [backend('gpu-1')]}
    new, dummy = litellm.apply_changes(config, present=[backend('gpu-1', timeout=30)])
    assert len(new['model_list']) == 1 and new['model_list'][0]['litellm_params']['timeout'] == 30


def test_exclusive_and_sections():
    new, dummy = litellm.apply_changes(CONFIG, present=[backend('gpu-2', 'gpu-2')], exclusive=True,
                                       sections={'router_settings': {'num_retries': 3}, 'litellm_settings': {'drop_params': True}})
    assert [d['model_info']['id'] for d in new['model_list']] == ['gpu-2']
    assert new['router_settings'] == {'routing_strategy': 'simple-shuffle', 'num_retries': 3}
    assert new['litellm_settings'] == {'drop_params': True}


def test_drain_and_undrain_restore_exactly():
    config = copy.deepcopy(CONFIG)
    config['model_list'][0]['litellm_params']['rpm'] = 600
    drained_config, drained = litellm.apply_changes(config, drain=['http://gpu-1:8000/v1'])
    assert [d['model_info']['id'] for d in drained_config['model_list']] == ['gpu-2']
    assert list(drained) == ['llama@http://gpu-1:8000/v1 (id gpu-1)']
    again, drained_again = litellm.apply_changes(drained_config, drain=['gpu-1'], drained=drained)  # idempotent
    assert again == drained_config and drained_again == drained
    back, left = litellm.apply_changes(drained_config, undrain=['gpu-1'], drained=drained)
    assert left == {}
    assert back['model_list'][1] == config['model_list'][0]


def test_refuses_to_drain_the_last_backend():
    drained_config, drained = litellm.apply_changes(CONFIG, drain=['gpu-1'])
    with pytest.raises(litellm.ConfigError, match="would leave model 'llama' with no deployment"):
        litellm.apply_changes(drained_config, drain=['gpu-2'], drained=drained)
    with pytest.raises(litellm.ConfigError, match="would leave model 'llama' with no deployment"):
        litellm.apply_changes(CONFIG, drain=['gpu-1', 'gpu-2'])
    emptied, dummy = litellm.apply_changes(drained_config, drain=['gpu-2'], drained=drained, allow_drain_last=True)
    assert emptied['model_list'] == []


def test_drain_unknown_backend():
    with pytest.raises(litellm.ConfigError, match="no deployment matches 'http://gpu-9:8000/v1'"):
        litellm.apply_changes(CONFIG, drain=['http://gpu-9:8000/v1'])


def test_updating_a_drained_deployment_keeps_it_drained():
    drained_config, drained = litellm.apply_changes(CONFIG, drain=['gpu-1'])
    new, still = litellm.apply_changes(drained_config, present=[backend('gpu-1', 'gpu-1', weight=5)], drained=drained)
    assert [d['model_info']['id'] for d in new['model_list']] == ['gpu-2']
    back, dummy = litellm.apply_changes(new, undrain=['gpu-1'], drained=still)
    assert back['model_list'][-1]['litellm_params']['weight'] == 5
