# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LiteLLM proxy config model: validation, secrets policy, declarative deployments, drain/undrain.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
Pure data functions (no I/O) so that they are unit-tested without a host. Messages never quote a value that
could be a secret: they name where it is and what kind of value was found.
"""

from __future__ import annotations

import copy
import math
import re

ENV_REFERENCE = 'os.environ/'
KNOWN_TOP_LEVEL = ('model_list', 'litellm_settings', 'router_settings', 'general_settings', 'environment_variables',
                   'include', 'credential_list', 'guardrails', 'mcp_servers', 'files_settings', 'assistant_settings',
                   'finetune_settings', 'vector_store_registry', 'callback_settings')
SECTIONS = ('litellm_settings', 'router_settings', 'general_settings', 'environment_variables')
ROUTING_STRATEGIES = ('simple-shuffle', 'least-busy', 'usage-based-routing', 'usage-based-routing-v2',
                      'latency-based-routing', 'cost-based-routing')
SECRET_WORDS = ('key', 'secret', 'password', 'token', 'credential', 'database_url', 'webhook')
# Keys whose values are names or settings, not secrets, although their names contain a secret word.
NOT_SECRET = ('max_tokens', 'max_input_tokens', 'max_output_tokens', 'max_completion_tokens', 'tpm', 'key_management_system',
              'key_generation_settings', 'token_counter', 'disable_master_key_return', 'use_client_credentials_pass_through_routes',
              'user_api_key_cache_ttl')
# A number is a secret only under a name that ends like one (api_key: 1234), not under max_tokens or *_ttl.
SECRET_NUMBER_NAME = re.compile(r'(key|secret|password|passwd|token|credential)$')
# Every value of these mappings is a secret (an Authorization header, a cookie, a vendor's key header).
HEADER_SECTIONS = ('extra_headers', 'headers')
MASK = '********'


class ConfigError(Exception):
    """The config is invalid, or a change would break it; the message says where."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (isinstance(value, float) and not math.isfinite(value))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value):
    """A value's kind in YAML words, for messages that never show the value itself."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, (int, float)):
        return 'a number'
    return 'a %s' % type(value).__name__


def _is_secret_name(name):
    name = str(name).lower()
    return name not in NOT_SECRET and any(word in name for word in SECRET_WORDS)


def url_credentials(value):
    """The user:password part of a URL (http://user:pass@host/), '' when there is none."""
    if not isinstance(value, str) or '://' not in value:
        return ''
    netloc = value.split('://', 1)[1]
    for end in '/?#':
        netloc = netloc.split(end, 1)[0]
    return netloc.rpartition('@')[0]


def safe_url(value):
    """The URL without its credentials, for labels and messages."""
    userinfo = url_credentials(value)
    if not userinfo:
        return value
    scheme, rest = value.split('://', 1)
    return '%s://%s@%s' % (scheme, MASK, rest[len(userinfo) + 1:])


def _is_env_reference(value):
    return isinstance(value, str) and value.startswith(ENV_REFERENCE)


def _secret_in_clear(key, value, parent):
    """True when this value is a secret written in clear (not an os.environ/ reference)."""
    if _is_env_reference(value) or value is None or isinstance(value, (bool, dict, list)):
        return False
    if isinstance(value, str):
        if not value:
            return False
        return str(parent) in HEADER_SECTIONS or _is_secret_name(key) or bool(url_credentials(value))
    if isinstance(value, (int, float)):
        name = str(key).lower()
        return str(parent) in HEADER_SECTIONS or (name not in NOT_SECRET and bool(SECRET_NUMBER_NAME.search(name)))
    return False


def _clear_secrets(config, path='', parent=None):
    """(dotted path, value) of every secret written in clear: secret-named values (strings or numbers), every
    header value, URLs with credentials."""
    if isinstance(config, dict):
        for key, value in config.items():
            here = '%s.%s' % (path, key) if path else str(key)
            if _secret_in_clear(key, value, parent):
                yield here, value
            else:
                yield from _clear_secrets(value, here, key)
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _clear_secrets(value, '%s[%d]' % (path, index), parent)


def plaintext_secrets(config):
    """Dotted paths of values that look like secrets written in clear (not os.environ/ references)."""
    return [where for where, dummy in _clear_secrets(config)]


def secret_values(config):
    """Every secret value written in clear, as strings (to hide them from all output); for a URL, its credentials."""
    values = []
    for dummy, value in _clear_secrets(config):
        value = str(value)
        userinfo = url_credentials(value)
        if userinfo:
            values.extend(part for part in (userinfo, userinfo.partition(':')[2]) if part)
        values.append(value)
    return values


def masked(config, parent=None):
    """A copy with every secret written in clear replaced (a URL keeps all but its credentials), for diffs and results."""
    if isinstance(config, dict):
        return dict((k, (safe_url(v) if url_credentials(v) and not _is_secret_name(k) and str(parent) not in HEADER_SECTIONS else MASK)
                     if _secret_in_clear(k, v, parent) else masked(v, k)) for k, v in config.items())
    if isinstance(config, list):
        return [masked(v, parent) for v in config]
    return config


def _mapping(value):
    return value if isinstance(value, dict) else {}


def deployment_label(deployment):
    """model_name@api_base (or @model, or #id) for messages and results; never a secret."""
    deployment = _mapping(deployment)
    params = _mapping(deployment.get('litellm_params'))
    ident = _mapping(deployment.get('model_info')).get('id')
    where = params.get('api_base') or params.get('model') or '?'
    return '%s@%s%s' % (deployment.get('model_name'), safe_url(where), ' (id %s)' % ident if ident else '')


def deployment_key(deployment):
    """Identity of a deployment: model_info.id when set, else (model_name, api_base or model)."""
    deployment = _mapping(deployment)
    ident = _mapping(deployment.get('model_info')).get('id')
    if ident:
        return ('id', str(ident))
    params = _mapping(deployment.get('litellm_params'))
    return ('name', str(deployment.get('model_name')), str(params.get('api_base') or params.get('model')))


def shape_errors(deployments, where):
    """Errors that make a list of deployments unusable (not the values LiteLLM checks, see validate())."""
    if deployments is None:
        return []
    if not isinstance(deployments, list):
        return ['%s must be a list of deployments, found %s' % (where, _kind(deployments))]
    errors = []
    for index, deployment in enumerate(deployments):
        here = '%s[%d]' % (where, index)
        if not isinstance(deployment, dict):
            errors.append('%s must be a mapping (model_name, litellm_params, model_info), found %s' % (here, _kind(deployment)))
            continue
        for name in ('litellm_params', 'model_info'):
            if deployment.get(name) is not None and not isinstance(deployment[name], dict):
                errors.append('%s.%s must be a mapping, found %s' % (here, name, _kind(deployment[name])))
        ident = _mapping(deployment.get('model_info')).get('id')
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
            errors.append('%s.model_info.id must be a string, found %s' % (here, _kind(ident)))
    return errors


def check_existing(config):
    """Raise ConfigError when the existing config cannot be changed safely (its shape is not a LiteLLM config's)."""
    if not isinstance(config, dict):
        raise ConfigError('the existing config is %s at the top level, not a mapping of LiteLLM settings: '
                          'refusing to replace it (fix the file or move it away)' % _kind(config))
    errors = shape_errors(config.get('model_list'), 'model_list')
    for section in SECTIONS:
        if config.get(section) is not None and not isinstance(config[section], dict):
            errors.append('%s must be a mapping, found %s' % (section, _kind(config[section])))
    if errors:
        raise ConfigError('the existing config is malformed: %s' % '; '.join(errors))


def _url_errors(value, where):
    """An http(s) URL with a host and a port in range, or an os.environ/ reference."""
    if _is_env_reference(value):
        return []
    if not (isinstance(value, str) and value.startswith(('http://', 'https://'))):
        return ['%s must be an http(s) URL or an os.environ/VAR reference' % where]
    host = value.split('://', 1)[1]
    for end in '/?#':
        host = host.split(end, 1)[0]
    host = host.rpartition('@')[2]
    port = host.rpartition(']')[2] if host.startswith('[') else host
    port = port.rpartition(':')[2] if ':' in port else ''
    name = host[:len(host) - len(port) - 1] if port else host
    if not name or name in ('[]',):
        return ['%s has no host' % where]
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        return ['%s has a port out of range (1-65535)' % where]
    return []


def _check_number(params, name, where, errors, minimum=0, integer=False, strict=False, maximum=None):
    """A finite number (or an integer) >= minimum (> minimum when strict), <= maximum when given."""
    if name not in params:
        return
    value = params[name]
    ok = (_is_int(value) if integer else _is_number(value)) and (value > minimum if strict else value >= minimum)
    ok = ok and (maximum is None or value <= maximum)
    if not ok:
        kind = 'an integer' if integer else ('a number of seconds' if 'timeout' in name else 'a number')
        bound = ' and <= %s' % maximum if maximum is not None else ''
        errors.append('%s.%s must be %s %s %s%s' % (where, name, kind, '>' if strict else '>=', minimum, bound))


def _check_deployment(index, deployment, errors):
    where = 'model_list[%d]' % index
    if not isinstance(deployment, dict):
        errors.append('%s must be a mapping' % where)
        return
    if not isinstance(deployment.get('model_name'), str) or not deployment.get('model_name'):
        errors.append('%s.model_name must be a non-empty string' % where)
    info = deployment.get('model_info')
    if info is not None and not isinstance(info, dict):
        errors.append('%s.model_info must be a mapping' % where)
    elif isinstance(info, dict):
        ident = info.get('id')
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
            errors.append('%s.model_info.id must be a string' % where)
        _check_number(info, 'health_check_timeout', where + '.model_info', errors, strict=True)
    params = deployment.get('litellm_params')
    if not isinstance(params, dict):
        errors.append('%s.litellm_params must be a mapping' % where)
        return
    if not isinstance(params.get('model'), str) or not params.get('model'):
        errors.append('%s.litellm_params.model must be a non-empty string such as openai/<name> or hosted_vllm/<name>' % where)
    if params.get('api_base') is not None:
        errors.extend(_url_errors(params['api_base'], '%s.litellm_params.api_base' % where))
    where = where + '.litellm_params'
    _check_number(params, 'weight', where, errors)
    _check_number(params, 'order', where, errors, minimum=1, integer=True)
    for name in ('rpm', 'tpm'):
        _check_number(params, name, where, errors, integer=True)
    _check_number(params, 'max_parallel_requests', where, errors, minimum=1, integer=True)
    for name in ('timeout', 'stream_timeout'):
        _check_number(params, name, where, errors, strict=True)
    for name in HEADER_SECTIONS:
        if params.get(name) is not None and not isinstance(params[name], dict):
            errors.append('%s.%s must be a mapping of header names to values' % (where, name))


def validate(config):
    """(errors, warnings) for a LiteLLM proxy config, checked against the keys and types LiteLLM reads.

    A null model_list or settings section is read by LiteLLM as empty, and so it is here.
    """
    errors = []
    warnings = []
    if not isinstance(config, dict):
        return ['the config must be a mapping at the top level, found %s' % _kind(config)], warnings
    for key in config:
        if key not in KNOWN_TOP_LEVEL:
            warnings.append('unknown top-level key %r (LiteLLM ignores it)' % (key,))
    models = config.get('model_list')
    if models is None:
        models = []
    if not isinstance(models, list):
        errors.append('model_list must be a list, found %s' % _kind(models))
        models = []
    seen = {}
    for index, deployment in enumerate(models):
        _check_deployment(index, deployment, errors)
        ident = _mapping(_mapping(deployment).get('model_info')).get('id')
        if isinstance(ident, (str, int)) and not isinstance(ident, bool):
            if ident in seen:
                errors.append('model_list[%d].model_info.id %r repeats model_list[%d]' % (index, ident, seen[ident]))
            seen.setdefault(ident, index)
    for section in SECTIONS:
        if config.get(section) is not None and not isinstance(config[section], dict):
            errors.append('%s must be a mapping, found %s' % (section, _kind(config[section])))
    router = _mapping(config.get('router_settings'))
    if 'routing_strategy' in router and (not isinstance(router['routing_strategy'], str) or router['routing_strategy'] not in ROUTING_STRATEGIES):
        errors.append('router_settings.routing_strategy must be one of %s' % ', '.join(ROUTING_STRATEGIES))
    for name in ('num_retries', 'allowed_fails'):
        _check_number(router, name, 'router_settings', errors, integer=True)
    for name in ('cooldown_time', 'retry_after', 'timeout'):
        _check_number(router, name, 'router_settings', errors)
    if 'fallbacks' in router and not isinstance(router['fallbacks'], list):
        errors.append('router_settings.fallbacks must be a list of {model_name: [fallbacks]} mappings')
    general = _mapping(config.get('general_settings'))
    _check_number(general, 'health_check_interval', 'general_settings', errors, strict=True)
    return errors, warnings


def _index_of(models, key):
    for index, deployment in enumerate(models):
        if isinstance(deployment, dict) and deployment_key(deployment) == key:
            return index
    return None


def _matches(deployment, selector):
    """A drain/undrain selector: an api_base (with or without its credentials), a model_info.id or a
    model_name@api_base label."""
    deployment = _mapping(deployment)
    params = _mapping(deployment.get('litellm_params'))
    ident = _mapping(deployment.get('model_info')).get('id')
    api_base = params.get('api_base')
    bases = [api_base, safe_url(api_base)] if isinstance(api_base, str) else []
    return selector in bases + [ident, deployment_label(deployment)] or \
        any(selector == '%s@%s' % (deployment.get('model_name'), base) for base in bases)


def apply_changes(config, present=(), absent=(), exclusive=False, sections=None, drain=(), undrain=(), drained=None,
                  allow_drain_last=False):
    """New (config, drained) after the requested changes. Inputs are not modified.

    drained holds the deployments taken out of routing earlier ({label: deployment}), so that an undrain
    puts back exactly what was there.
    """
    if config is None:
        config = {}
    check_existing(config)
    errors = shape_errors(list(present), 'deployments') + shape_errors(list(absent), 'absent_deployments')
    if not isinstance(drained or {}, dict) or not all(isinstance(d, dict) for d in (drained or {}).values()):
        errors.append('the record of drained deployments must map labels to deployments')
    else:
        errors.extend(shape_errors(list((drained or {}).values()), 'drained'))
    if errors:
        raise ConfigError('; '.join(errors))
    new = copy.deepcopy(config)
    drained = copy.deepcopy(drained or {})
    if new.get('model_list') is None:
        new['model_list'] = []  # LiteLLM reads a null model_list as none
    models = new['model_list']
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
        if values is not None and not isinstance(values, dict):
            raise ConfigError('%s must be a mapping, found %s' % (name, _kind(values)))
        if values:
            if new.get(name) is None:
                new[name] = {}
            section = new[name]
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
