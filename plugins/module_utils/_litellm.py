# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""LiteLLM proxy config: the model (validation, secrets policy, declarative deployments, drain/undrain, as
pure data functions unit-tested without a host) and, at the end, the litellm_config module's run over the
file (lock, read, change, validate, write atomically, drain record).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
Messages never quote a value that could be a secret: they name where it is and what kind of value was found.
Errors are ConfigError (an OnpremError with an `error_kind`) or _state.StateError.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import math
import os
import re
import time
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

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


class ConfigError(OnpremError):
    """The config is invalid, or a change would break it; the message says where."""

    error_kind = 'invalid'


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
    errors.extend(_partial_weights(models))
    return errors, warnings


def _partial_weights(models):
    """A model group where only some deployments have a weight: LiteLLM (1.108, simple-shuffle) then gives the
    others weight 0, so one weighted deployment (a canary) would take every request (issue 16)."""
    groups = {}
    for index, deployment in enumerate(models):
        deployment = _mapping(deployment)
        if isinstance(deployment.get('model_name'), str):
            weighted = 'weight' in _mapping(deployment.get('litellm_params'))
            groups.setdefault(deployment['model_name'], []).append((index, weighted))
    errors = []
    for name, members in groups.items():
        weighted = [index for index, has in members if has]
        if weighted and len(weighted) < len(members):
            errors.append('model %r: only model_list[%s] of its %d deployments have a litellm_params.weight; LiteLLM gives '
                          'the others weight 0 (no traffic), so give every deployment of the model a weight, or none'
                          % (name, ', '.join(str(i) for i in weighted), len(members)))
    return errors


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


# -- the config file (the litellm_config module) -------------------------------------------------------------

DRAINED_STATE = 'litellm_drained'
GIVEN = ('deployments', 'absent_deployments') + SECTIONS


def hide(module, values):
    """Hide these secret values from every output of the module (four characters or more: shorter ones are not
    secrets worth masking every occurrence of in the output)."""
    for value in values:
        if len(value) >= 4:
            module.no_log_values.add(value)


def given_secrets(params):
    """Secrets written in clear in the arguments, also inside a JSON or key=value string given for a dict or a list."""
    found = {}
    for name in GIVEN:
        value = params.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                try:
                    value = check_type_dict(value)
                except (TypeError, ValueError):
                    value = None
        found[name] = value
    values = secret_values(found)
    selectors = [params.get('drain'), params.get('undrain')]
    for selector in [item for items in selectors if isinstance(items, list) for item in items]:
        userinfo = url_credentials(selector)
        values.extend(part for part in (userinfo, userinfo.partition(':')[2]) if part)
    return values


class ConfigModule(OnpremModule):
    """Secrets given in clear are hidden as soon as the arguments are read, before they are checked: a refusal of the
    arguments themselves, printed with their invocation, shows none."""

    def _load_params(self):
        super(ConfigModule, self)._load_params()
        try:
            hide(self, given_secrets(self.params if isinstance(self.params, dict) else {}))
        except Exception:  # pylint: disable=broad-except  # junk arguments are refused later, with a message
            pass


def dump(config):
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def yaml_problem(exc):
    """Where and what, never the offending line (it may hold a key): PyYAML's own message quotes it."""
    def at(mark):
        return 'line %d, column %d' % (mark.line + 1, mark.column + 1)

    mark, context_mark = getattr(exc, 'problem_mark', None), getattr(exc, 'context_mark', None)
    where = at(mark) if mark is not None else (at(context_mark) if context_mark is not None else 'unknown position')
    problem = getattr(exc, 'problem', None) or type(exc).__name__
    if getattr(exc, 'context', None):
        problem = '%s%s: %s' % (exc.context, ' at %s' % at(context_mark) if context_mark is not None and mark is not None else '', problem)
    # Quoted text in a problem (a tag, an alias, a token) is content: keep one- or two-character tokens only.
    problem = re.sub(r"'([^']{3,})'|\"([^\"]{3,})\"", "'...'", problem)
    return 'YAML error at %s: %s' % (where, problem)


def lock(paths, timeout):
    """Hold an exclusive lock on each existing directory (config, drain record) for the whole run, so two runs on
    one config never lose each other's change. Bounded by timeout; the locks go with the process."""
    handles = []
    deadline = time.monotonic() + timeout
    for path in sorted(set(p for p in paths if os.path.isdir(p))):
        fd = os.open(path, os.O_RDONLY)
        handles.append(fd)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return handles


def numeric_mode(mode):
    """The file mode when given as octal digits (int or string); None for symbolic modes (set after the rename)."""
    if isinstance(mode, int):
        return mode & 0o7777
    if isinstance(mode, str) and re.match(r'^0?[0-7]{3,4}$', mode):
        return int(mode, 8)
    return None


def read_config(path):
    """(text, parsed) of the existing config; ('', {}) when there is none. Errors say line and column, not content."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return '', {}
    except (OSError, ValueError) as exc:
        raise ConfigError('Cannot read %s: %s' % (path, getattr(exc, 'strerror', None) or type(exc).__name__), error_kind='unreadable')
    try:
        current = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError('Cannot read %s: %s. It was not changed.' % (path, yaml_problem(exc)), error_kind='unreadable')
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError('Cannot read %s: the YAML cannot be loaded (%s). It was not changed.' % (path, type(exc).__name__),
                          error_kind='unreadable')
    return text, ({} if current is None else current)


def check_params(params):
    """The options with a shape or a range (usage)."""
    path = params['path']
    if not path or not os.path.isabs(path) or not os.path.basename(path) or os.path.isdir(path):
        raise ConfigError('path must be the absolute path of the config file (not a directory)', error_kind='usage')
    if not params['state_dir'] or not os.path.isabs(params['state_dir']):
        raise ConfigError('state_dir must be an absolute path', error_kind='usage')
    if not 1 <= params['lock_timeout'] <= 86400:
        raise ConfigError('lock_timeout must be between 1 and 86400 seconds', error_kind='usage')
    if params['validate_command'] is not None and not [part for part in params['validate_command'] if part]:
        raise ConfigError('validate_command must name a command', error_kind='usage')


def run(module):
    """The litellm_config module's result: check, lock, change, validate and write the config. Raises ConfigError
    or StateError."""
    if not HAS_YAML:
        raise ConfigError(missing_required_lib('PyYAML (python3-yaml)'), error_kind='missing_library', exception=YAML_IMPORT_ERROR)
    params = module.params
    # Secrets given in clear anywhere in the arguments are hidden from every output, -vvv invocation included
    # (again after the arguments were converted to their types).
    hide(module, given_secrets(params))
    check_params(params)
    directory = os.path.dirname(params['path']) or '.'
    try:
        locks = lock([directory, params['state_dir']], params['lock_timeout'])
    except OSError as exc:
        raise ConfigError('Cannot lock %s for this run (another run still working on it after %ss?): %s'
                          % (directory, params['lock_timeout'], exc.strerror or exc), error_kind='busy')
    try:
        return _change(module, params, directory)
    finally:
        for fd in locks:
            os.close(fd)


def _load_drained(params):
    records = state.load(params['state_dir'], DRAINED_STATE)
    drained = records.get(params['path'], {})
    if not isinstance(drained, dict):
        raise state.StateError('The drain record %s is malformed for %s (move it away to start a fresh one)'
                               % (state.state_path(params['state_dir'], DRAINED_STATE), params['path']))
    return records, drained


def _new_config(module, params, current, drained_before):
    """(new config, drained) after the requested changes, validated; the file is not touched."""
    path = params['path']
    try:
        new, drained = apply_changes(current, params['deployments'], params['absent_deployments'], params['exclusive'],
                                     dict((name, params[name]) for name in SECTIONS), params['drain'], params['undrain'],
                                     drained_before, params['allow_drain_last'])
    except ConfigError as exc:
        raise ConfigError('%s. %s was not changed.' % (exc, path), error_kind=exc.error_kind) from exc
    errors, warnings = validate(new)
    for warning in warnings:
        module.warn(warning)
    if errors:
        raise ConfigError('The resulting LiteLLM config is invalid, %s was not changed: %s' % (path, '; '.join(errors)))
    secrets = plaintext_secrets(new)
    if secrets and not params['allow_plaintext_secrets']:
        raise ConfigError('Secrets written in clear at %s (secret-named values, header values, URLs with user:password@); '
                          'use os.environ/VAR references (the value comes from the proxy\'s environment file) or set '
                          'allow_plaintext_secrets. %s was not changed.' % (', '.join(secrets), path), error_kind='plaintext_secret')
    return new, drained


def _write_config(module, params, directory, text, before_text, result):
    """Validate the candidate file with validate_command, keep a backup copy, install it atomically."""
    path = params['path']
    if not os.path.isdir(directory):
        raise ConfigError('Directory %s does not exist' % directory, error_kind='usage')
    tmp = None
    try:
        tmp = state.write_private(directory, os.path.basename(path), text)
        if params['validate_command']:
            command = [tmp if part == '%s' else part for part in params['validate_command']]
            rc, out, err = Runner(module).execute(command)
            if rc != 0:
                raise ConfigError('validate_command refused the new config (rc=%s): %s. %s was not changed.'
                                  % (rc, (err or out).strip()[-2000:], path), error_kind='validate_command')
        if params['backup'] and before_text:
            result['backup_file'] = module.backup_local(path)
        state.install(tmp, path, numeric_mode(params['mode']))
    except OSError as exc:
        raise ConfigError('Cannot write %s: %s. It was not changed.' % (path, exc.strerror or exc), error_kind='os')
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _change(module, params, directory):
    """Read, change, validate and write the config and the drain record, under the locks."""
    path = params['path']
    before_text, current = read_config(path)
    # Secrets already in the file (written with allow_plaintext_secrets) are hidden too, from validate_command's output on.
    hide(module, secret_values(current))
    records, drained_before = _load_drained(params)
    new, drained = _new_config(module, params, current, drained_before)
    after_text = dump(new)
    content_changed = after_text != before_text
    drained_changed = drained != drained_before
    record_path = state.state_path(params['state_dir'], DRAINED_STATE)
    try:
        record_open = bool(os.stat(record_path).st_mode & 0o077)  # an older record, readable by others
    except OSError:
        record_open = False
    result = dict(changed=content_changed or drained_changed or record_open, restart_required=content_changed,
                  deployments=[deployment_label(d) for d in new.get('model_list', [])],
                  drained=sorted(safe_url(label) for label in drained))
    if module._diff:
        result['diff'] = dict(before=dump(masked(current)) if before_text else '', after=dump(masked(new)),
                              before_header=path, after_header=path)
    if module.check_mode:
        return result
    if content_changed:
        _write_config(module, params, directory, after_text, before_text, result)
    file_args = module.load_file_common_arguments(params)
    if file_args.get('mode') is None and content_changed:
        file_args['mode'] = '0640'  # the proxy's config is not for every local user
    if os.path.exists(path):
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    if drained_changed or record_open:
        records[path] = drained
        records['updated'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        try:
            os.makedirs(params['state_dir'], mode=0o755, exist_ok=True)
            state.write_json(record_path, records)
        except OSError as exc:
            raise state.StateError('The config was written but the drain record %s was not: %s' % (record_path, exc.strerror or exc),
                                   **result)
    return result
