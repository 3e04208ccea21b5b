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


# Regression tests, issue 11: secrets in clear, malformed configs, range checks.

def with_params(**params):
    config = copy.deepcopy(CONFIG)
    config['model_list'][0]['litellm_params'].update(params)
    return config


@pytest.mark.parametrize('params,where,secret', [
    ({'extra_headers': {'Authorization': 'Bearer hdr-secret-123'}}, 'model_list[0].litellm_params.extra_headers.Authorization',
     'hdr-secret-123'),
    ({'extra_headers': {'X-Anything': 'other-header-value'}}, 'model_list[0].litellm_params.extra_headers.X-Anything',
     'other-header-value'),
    ({'api_base': 'http://lab:url-pass-456@gpu-1:8000/v1'}, 'model_list[0].litellm_params.api_base', 'url-pass-456'),
    ({'api_key': 918273645546}, 'model_list[0].litellm_params.api_key', '918273645546'),
    ({'api_key': 3.14159265}, 'model_list[0].litellm_params.api_key', '3.14159265'),
])
def test_more_secrets_found_masked_and_hidden(params, where, secret):
    config = with_params(**params)
    assert where in litellm.plaintext_secrets(config)
    assert any(secret in value for value in litellm.secret_values(config))
    assert secret not in repr(litellm.masked(config))
    labels = [litellm.deployment_label(d) for d in config['model_list']]
    assert secret not in repr(labels)


def test_url_credentials_masked_but_url_kept():
    config = with_params(api_base='http://lab:url-pass-456@gpu-1:8000/v1')
    assert litellm.masked(config)['model_list'][0]['litellm_params']['api_base'] == 'http://********@gpu-1:8000/v1'
    assert litellm.deployment_label(config['model_list'][0]) == 'llama@http://********@gpu-1:8000/v1 (id gpu-1)'


def test_references_and_settings_are_not_secrets():
    config = with_params(extra_headers={'Authorization': 'os.environ/BACKEND_AUTH'}, api_base='os.environ/GPU_1_BASE', max_tokens=512,
                         max_completion_tokens=256)
    config['general_settings']['user_api_key_cache_ttl'] = 60
    config['litellm_settings'] = {'redact_user_api_key_info': True}
    assert litellm.plaintext_secrets(config) == []
    assert litellm.validate(config) == ([], [])


@pytest.mark.parametrize('config,message', [
    ([{'model_name': 'a'}], 'the existing config is a list at the top level'),
    ('just text', 'the existing config is a string at the top level'),
    ({'model_list': {'a': 1}}, 'model_list must be a list of deployments, found a mapping'),
    ({'model_list': ['x', 'y']}, 'model_list[0] must be a mapping'),
    ({'model_list': [{'model_name': 'a', 'model_info': 'x'}]}, 'model_list[0].model_info must be a mapping, found a string'),
    ({'model_list': [{'model_name': 'a', 'litellm_params': 'x'}]}, 'model_list[0].litellm_params must be a mapping'),
    ({'model_list': [{'model_name': 'a', 'model_info': {'id': [1]}}]}, 'model_list[0].model_info.id must be a string'),
    ({'router_settings': ['a']}, 'router_settings must be a mapping, found a list'),
])
def test_malformed_existing_configs_are_refused(config, message):
    with pytest.raises(litellm.ConfigError) as info:
        litellm.apply_changes(config, present=[backend('gpu-3', 'gpu-3')], drain=[], exclusive=True)
    assert message in str(info.value)


def test_null_model_list_and_sections_read_as_empty():
    new, dummy = litellm.apply_changes({'model_list': None, 'router_settings': None}, present=[backend('gpu-1', 'gpu-1')],
                                       sections={'router_settings': {'num_retries': 1}})
    assert new['model_list'] == [backend('gpu-1', 'gpu-1')] and new['router_settings'] == {'num_retries': 1}
    assert litellm.validate({'model_list': None, 'litellm_settings': None}) == ([], [])


@pytest.mark.parametrize('present,message', [
    ([{'model_name': 'a', 'model_info': 'x'}], 'deployments[0].model_info must be a mapping'),
    ([{'model_name': 'a', 'litellm_params': ['x']}], 'deployments[0].litellm_params must be a mapping'),
])
def test_malformed_deployments_are_refused(present, message):
    with pytest.raises(litellm.ConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
        litellm.apply_changes(CONFIG, present=present)


@pytest.mark.parametrize('params,message', [
    ({'weight': float('inf')}, 'weight must be a number >= 0'),
    ({'weight': float('nan')}, 'weight must be a number >= 0'),
    ({'timeout': float('inf')}, 'timeout must be a number of seconds > 0'),
    ({'stream_timeout': -5}, 'stream_timeout must be a number of seconds > 0'),
    ({'max_parallel_requests': 0}, 'max_parallel_requests must be an integer >= 1'),
    ({'api_base': 'http://gpu-1:70000/v1'}, 'api_base has a port out of range'),
    ({'api_base': 'http://:8000/v1'}, 'api_base has no host'),
    ({'api_base': 'ftp://gpu-1/v1'}, 'api_base must be an http(s) URL'),
    ({'extra_headers': 'Authorization: x'}, 'extra_headers must be a mapping'),
])
def test_range_checks(params, message):
    errors, dummy = litellm.validate(with_params(**params))
    assert any(message in error for error in errors), errors


def test_router_and_general_range_checks():
    config = copy.deepcopy(CONFIG)
    config['router_settings'].update(cooldown_time=-1, retry_after=float('inf'), routing_strategy=['x'])
    config['general_settings']['health_check_interval'] = 0
    errors, dummy = litellm.validate(config)
    assert len(errors) == 4, errors


def test_weights_on_some_deployments_of_a_model_are_an_error_and_on_all_or_none_are_not():
    def deployment(name, base, weight=None):
        params = {'model': 'openai/%s' % name, 'api_base': 'http://%s:8000/v1' % base}
        if weight is not None:
            params['weight'] = weight
        return {'model_name': name, 'litellm_params': params}

    partial = {'model_list': [deployment('a', 'n1', 3), deployment('a', 'n2'), deployment('b', 'n1'), deployment('b', 'n2')]}
    errors, dummy = litellm.validate(partial)
    assert len(errors) == 1 and "model 'a': only model_list[0] of its 2 deployments" in errors[0]
    for config in ({'model_list': [deployment('a', 'n1', 3), deployment('a', 'n2', 1)]},
                   {'model_list': [deployment('a', 'n1'), deployment('a', 'n2')]},
                   {'model_list': [deployment('a', 'n1', 0.5), deployment('b', 'n2')]}):
        assert litellm.validate(config)[0] == []
