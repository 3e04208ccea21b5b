# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LiteLLM proxy config model: validation, secrets policy, declarative deployments, drain/undrain.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
Pure data functions (no I/O) so that they are unit-tested without a host.
"""

from __future__ import annotations

import copy

ENV_REFERENCE = 'os.environ/'
KNOWN_TOP_LEVEL = ('model_list', 'litellm_settings', 'router_settings', 'general_settings', 'environment_variables',
                   'include', 'credential_list', 'guardrails', 'mcp_servers', 'files_settings', 'assistant_settings',
                   'finetune_settings', 'vector_store_registry', 'callback_settings')
ROUTING_STRATEGIES = ('simple-shuffle', 'least-busy', 'usage-based-routing', 'usage-based-routing-v2',
                      'latency-based-routing', 'cost-based-routing')
SECRET_WORDS = ('key', 'secret', 'password', 'token', 'credential', 'database_url', 'webhook')
# Keys whose values are names or settings, not secrets, although their names contain a secret word.
NOT_SECRET = ('max_tokens', 'max_input_tokens', 'max_output_tokens', 'tpm', 'key_management_system', 'key_generation_settings',
              'token_counter', 'disable_master_key_return', 'use_client_credentials_pass_through_routes')
MASK = '********'


class ConfigError(Exception):
    """The config is invalid, or a change would break it; the message says where."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_secret_name(name):
    name = str(name).lower()
    return name not in NOT_SECRET and any(word in name for word in SECRET_WORDS)


def _clear_secrets(config, path=''):
    """(dotted path, value) of every secret-named string value that is not an os.environ/ reference."""
    if isinstance(config, dict):
        for key, value in config.items():
            here = '%s.%s' % (path, key) if path else str(key)
            if isinstance(value, str) and _is_secret_name(key) and value and not value.startswith(ENV_REFERENCE):
                yield here, value
            else:
                yield from _clear_secrets(value, here)
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _clear_secrets(value, '%s[%d]' % (path, index))


def plaintext_secrets(config):
    """Dotted paths of values that look like secrets written in clear (not os.environ/ references)."""
    return [where for where, dummy in _clear_secrets(config)]


def secret_values(config):
    """Every secret value written in clear (to hide them from all output)."""
    return [value for dummy, value in _clear_secrets(config)]


def masked(config):
    """A copy with every secret-named string value replaced, for diffs and results."""
    if isinstance(config, dict):
        return dict((k, MASK if isinstance(v, str) and _is_secret_name(k) and not v.startswith(ENV_REFERENCE) else masked(v))
                    for k, v in config.items())
    if isinstance(config, list):
        return [masked(v) for v in config]
    return config


def deployment_label(deployment):
    """model_name@api_base (or @model, or #id) for messages and results; never a secret."""
    params = deployment.get('litellm_params') or {}
    ident = (deployment.get('model_info') or {}).get('id')
    where = params.get('api_base') or params.get('model') or '?'
    return '%s@%s%s' % (deployment.get('model_name'), where, ' (id %s)' % ident if ident else '')


def deployment_key(deployment):
    """Identity of a deployment: model_info.id when set, else (model_name, api_base or model)."""
    ident = (deployment.get('model_info') or {}).get('id')
    if ident:
        return ('id', str(ident))
    params = deployment.get('litellm_params') or {}
    return ('name', str(deployment.get('model_name')), str(params.get('api_base') or params.get('model')))


def _check_deployment(index, deployment, errors):
    where = 'model_list[%d]' % index
    if not isinstance(deployment, dict):
        errors.append('%s must be a mapping' % where)
        return
    if not isinstance(deployment.get('model_name'), str) or not deployment.get('model_name'):
        errors.append('%s.model_name must be a non-empty string' % where)
    params = deployment.get('litellm_params')
    if not isinstance(params, dict):
        errors.append('%s.litellm_params must be a mapping' % where)
        return
    if not isinstance(params.get('model'), str) or not params.get('model'):
        errors.append('%s.litellm_params.model must be a non-empty string such as openai/<name> or hosted_vllm/<name>' % where)
    api_base = params.get('api_base')
    if api_base is not None and not (isinstance(api_base, str) and api_base.startswith(('http://', 'https://', ENV_REFERENCE))):
        errors.append('%s.litellm_params.api_base must be an http(s) URL' % where)
    for name in ('weight',):
        if name in params and not (_is_number(params[name]) and params[name] >= 0):
            errors.append('%s.litellm_params.%s must be a number >= 0' % (where, name))
    for name in ('order',):
        if name in params and not (isinstance(params[name], int) and not isinstance(params[name], bool) and params[name] >= 1):
            errors.append('%s.litellm_params.%s must be an integer >= 1' % (where, name))
    for name in ('rpm', 'tpm', 'max_parallel_requests'):
        if name in params and not (isinstance(params[name], int) and not isinstance(params[name], bool) and params[name] >= 0):
            errors.append('%s.litellm_params.%s must be an integer >= 0' % (where, name))
    for name in ('timeout', 'stream_timeout'):
        if name in params and not (_is_number(params[name]) and params[name] > 0):
            errors.append('%s.litellm_params.%s must be a number of seconds > 0' % (where, name))
    info = deployment.get('model_info')
    if info is not None and not isinstance(info, dict):
        errors.append('%s.model_info must be a mapping' % where)


def validate(config):
    """(errors, warnings) for a LiteLLM proxy config, checked against the keys and types LiteLLM reads."""
    errors = []
    warnings = []
    if not isinstance(config, dict):
        return ['the config must be a mapping at the top level'], warnings
    for key in config:
        if key not in KNOWN_TOP_LEVEL:
            warnings.append('unknown top-level key %r (LiteLLM ignores it)' % key)
    models = config.get('model_list', [])
    if not isinstance(models, list):
        errors.append('model_list must be a list')
        models = []
    seen = {}
    for index, deployment in enumerate(models):
        _check_deployment(index, deployment, errors)
        if isinstance(deployment, dict):
            ident = (deployment.get('model_info') or {}).get('id') if isinstance(deployment.get('model_info'), dict) else None
            if ident is not None:
                if ident in seen:
                    errors.append('model_list[%d].model_info.id %r repeats model_list[%d]' % (index, ident, seen[ident]))
                seen.setdefault(ident, index)
    for section in ('litellm_settings', 'router_settings', 'general_settings', 'environment_variables'):
        if section in config and not isinstance(config[section], dict):
            errors.append('%s must be a mapping' % section)
    router = config.get('router_settings') if isinstance(config.get('router_settings'), dict) else {}
    if 'routing_strategy' in router and router['routing_strategy'] not in ROUTING_STRATEGIES:
        errors.append('router_settings.routing_strategy must be one of %s' % ', '.join(ROUTING_STRATEGIES))
    for name in ('num_retries', 'allowed_fails'):
        if name in router and not (isinstance(router[name], int) and not isinstance(router[name], bool) and router[name] >= 0):
            errors.append('router_settings.%s must be an integer >= 0' % name)
    for name in ('cooldown_time', 'retry_after', 'timeout'):
        if name in router and not (_is_number(router[name]) and router[name] >= 0):
            errors.append('router_settings.%s must be a number >= 0' % name)
    if 'fallbacks' in router and not isinstance(router['fallbacks'], list):
        errors.append('router_settings.fallbacks must be a list of {model_name: [fallbacks]} mappings')
    return errors, warnings


def _index_of(models, key):
    for index, deployment in enumerate(models):
        if isinstance(deployment, dict) and deployment_key(deployment) == key:
            return index
    return None


def _matches(deployment, selector):
    """A drain/undrain selector: an api_base, a model_info.id or a model_name@api_base label."""
    params = deployment.get('litellm_params') or {}
    ident = (deployment.get('model_info') or {}).get('id')
    return selector in (params.get('api_base'), ident, deployment_label(deployment)) or \
        selector == '%s@%s' % (deployment.get('model_name'), params.get('api_base'))


def apply_changes(config, present=(), absent=(), exclusive=False, sections=None, drain=(), undrain=(), drained=None,
                  allow_drain_last=False):
    """New (config, drained) after the requested changes. Inputs are not modified.

    drained holds the deployments taken out of routing earlier ({label: deployment}), so that an undrain
    puts back exactly what was there.
    """
    new = copy.deepcopy(config) if isinstance(config, dict) else {}
    drained = copy.deepcopy(drained or {})
    models = new.setdefault('model_list', [])
    if exclusive:
        keep = set(deployment_key(d) for d in present)
        models[:] = [d for d in models if deployment_key(d) in keep]
    for deployment in present:
        key = deployment_key(deployment)
        if any(deployment_key(d) == key for d in drained.values()):
            drained = dict((label, d) for label, d in drained.items() if deployment_key(d) != key)
            drained[deployment_label(deployment)] = copy.deepcopy(deployment)  # stays drained, with the new settings
            continue
        index = _index_of(models, key)
        if index is None:
            models.append(copy.deepcopy(deployment))
        else:
            models[index] = copy.deepcopy(deployment)
    for deployment in absent:
        key = deployment_key(deployment)
        models[:] = [d for d in models if deployment_key(d) != key]
        drained = dict((label, d) for label, d in drained.items() if deployment_key(d) != key)
    for name, values in (sections or {}).items():
        if values:
            section = new.setdefault(name, {})
            if not isinstance(section, dict):
                raise ConfigError('%s must be a mapping in the existing config' % name)
            section.update(copy.deepcopy(values))
    for selector in drain:
        hits = [d for d in models if _matches(d, selector)]
        if not hits:
            if any(_matches(d, selector) for d in drained.values()):
                continue  # already drained
            raise ConfigError('nothing to drain: no deployment matches %r' % selector)
        for deployment in hits:
            others = [d for d in models if d is not deployment and d.get('model_name') == deployment.get('model_name')
                      and not any(d is h for h in hits)]
            if not others and not allow_drain_last:
                label, name = deployment_label(deployment), deployment.get('model_name')
                raise ConfigError('draining %s would leave model %r with no deployment: every request for it would fail. '
                                  'Add another deployment first, or set allow_drain_last.' % (label, name))
            drained[deployment_label(deployment)] = deployment
        models[:] = [d for d in models if not any(d is h for h in hits)]
    for selector in undrain:
        back = [(label, d) for label, d in drained.items() if _matches(d, selector)]
        for label, deployment in back:
            del drained[label]
            if _index_of(models, deployment_key(deployment)) is None:
                models.append(deployment)
    return new, drained
