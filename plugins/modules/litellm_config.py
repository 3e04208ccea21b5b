#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: litellm_config
short_description: Manage a LiteLLM proxy config.yaml declaratively, validated before it is written
version_added: 0.1.0
description:
  - Adds, updates or removes deployments of the proxy's C(model_list), identified by C(model_info.id) or by
    C(model_name) plus C(litellm_params.api_base); merges C(router_settings), C(litellm_settings),
    C(general_settings) and C(environment_variables).
  - Takes one backend out of routing (O(drain)) and puts it back (O(undrain)) exactly as it was; drained deployments
    are kept in a record under O(state_dir). Refuses to drain the last deployment of a model.
  - Refuses secrets written in clear; keys must be C(os.environ/VAR) references, read by LiteLLM from its
    environment at start (see the litellm_gateway role's environment file), unless O(allow_plaintext_secrets=true).
    Secrets are values under a secret-like name (C(api_key), C(master_key), C(database_url), ...; strings and numbers),
    every value of C(extra_headers) and C(headers) (an C(Authorization) header), and URLs with C(user:password@).
    They are masked in the diff, left out of the results and hidden from every message, even with O(allow_plaintext_secrets).
  - Refuses to change an existing file that is not a LiteLLM config (a list or a scalar at the top level, a
    C(model_list) that is not a list of mappings, a C(model_info) that is not a mapping), and says where; YAML errors
    are reported by line and column, without the content of the line.
  - One run at a time per config, the config's directory and O(state_dir) are locked for the whole run.
  - Validates the new config before it replaces the old one (the keys and types LiteLLM reads, and optionally
    O(validate_command), for example LiteLLM's own loader in its virtualenv). An invalid config is never written,
    so the running proxy keeps its old one.
  - Writes atomically (a temporary file created C(0600) before anything is written, synced, then renamed), with an
    optional backup copy; the record of drained deployments is C(0600). LiteLLM does not reload its YAML; RV(restart_required) says
    whether the proxy must be restarted to apply the change.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the YAML before and after with secret values masked.
options:
  path:
    description: The proxy's config file, an absolute path (mode C(0640) unless O(mode) says otherwise).
    type: path
    default: /etc/litellm/config.yaml
  deployments:
    description:
      - Deployments that must be present, in LiteLLM's own shape (C(model_name), C(litellm_params), C(model_info)).
        A listed deployment replaces the one with the same identity.
    type: list
    elements: dict
    default: []
  absent_deployments:
    description: Deployments to remove (only their identity matters).
    type: list
    elements: dict
    default: []
  exclusive:
    description: Remove every deployment not listed in O(deployments).
    type: bool
    default: false
  router_settings:
    description: Keys merged into C(router_settings).
    type: dict
  litellm_settings:
    description: Keys merged into C(litellm_settings).
    type: dict
  general_settings:
    description: Keys merged into C(general_settings).
    type: dict
  environment_variables:
    description: Keys merged into C(environment_variables).
    type: dict
  drain:
    description: Backends to take out of routing, by C(api_base), C(model_info.id) or C(model_name@api_base).
    type: list
    elements: str
    default: []
  undrain:
    description: Drained backends to put back, with the same selectors as O(drain).
    type: list
    elements: str
    default: []
  allow_drain_last:
    description: Allow draining the last deployment of a model (every request for it then fails).
    type: bool
    default: false
  allow_plaintext_secrets:
    description: Accept secret values written in clear in the config.
    type: bool
    default: false
  validate_command:
    description:
      - Command run on the candidate file before it is installed; an element V(%s) is replaced by its path.
        Non-zero exit refuses the change.
    type: list
    elements: str
  backup:
    description: Keep a timestamped copy of the old file next to it.
    type: bool
    default: true
  state_dir:
    description: Where the record of drained deployments is kept (C(litellm_drained.json), mode C(0600)); an absolute path.
    type: path
    default: /var/lib/onprem_ai
  lock_timeout:
    description: Seconds to wait for another run that works on the same config directory or O(state_dir) (1 to 86400).
    type: int
    default: 300
requirements:
  - PyYAML on the target (C(python3-yaml)).
seealso:
  - name: LiteLLM proxy configuration
    description: The keys this module manages.
    link: https://docs.litellm.ai/docs/proxy/configs
'''

EXAMPLES = r'''
- name: Two vLLM backends behind one model name
  onprem_ai.maintenance.litellm_config:
    path: /etc/litellm/config.yaml
    deployments:
      - model_name: llama-3.1-8b-instruct
        litellm_params: {model: hosted_vllm/llama-3.1-8b-instruct, api_base: "http://gpu-a01:8000/v1", api_key: os.environ/VLLM_KEY}
        model_info: {id: gpu-a01}
      - model_name: llama-3.1-8b-instruct
        litellm_params: {model: hosted_vllm/llama-3.1-8b-instruct, api_base: "http://gpu-a02:8000/v1", api_key: os.environ/VLLM_KEY}
        model_info: {id: gpu-a02}
    router_settings:
      routing_strategy: simple-shuffle
      num_retries: 2
  register: gateway_config

- name: Take gpu-a01 out of routing before its maintenance
  onprem_ai.maintenance.litellm_config:
    drain: [gpu-a01]

- name: Put it back
  onprem_ai.maintenance.litellm_config:
    undrain: [gpu-a01]
'''

RETURN = r'''
restart_required:
  description: Whether the file changed, so the proxy must be restarted to use it.
  returned: always
  type: bool
backup_file:
  description: The copy of the old file.
  returned: when a backup was made
  type: str
deployments:
  description: The deployments in the resulting config (labels C(model_name@api_base), no secrets).
  returned: always
  type: list
  elements: str
drained:
  description: The deployments out of routing after this run.
  returned: always
  type: list
  elements: str
'''

import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _litellm as litellm
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

DRAINED_STATE = 'litellm_drained'
SECTIONS = ('router_settings', 'litellm_settings', 'general_settings', 'environment_variables')
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
    values = litellm.secret_values(found)
    selectors = [params.get('drain'), params.get('undrain')]
    for selector in [item for items in selectors if isinstance(items, list) for item in items]:
        userinfo = litellm.url_credentials(selector)
        values.extend(part for part in (userinfo, userinfo.partition(':')[2]) if part)
    return values


class ConfigModule(AnsibleModule):
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


def write_private(directory, name, text):
    """A temporary file in directory, created 0600 before anything is written, flushed to disk. Returns its path."""
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def install(tmp, path, mode=None):
    """Rename tmp over path, with path's owner and mode (or mode) set first; the directory is synced."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    if old is not None:
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except PermissionError:
            pass
    if mode is not None:
        os.chmod(tmp, mode)
    elif old is not None:
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(path) or '.', os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def numeric_mode(mode):
    """The file mode when given as octal digits (int or string); None for symbolic modes (set after the rename)."""
    if isinstance(mode, int):
        return mode & 0o7777
    if isinstance(mode, str) and re.match(r'^0?[0-7]{3,4}$', mode):
        return int(mode, 8)
    return None


def read_config(module, path):
    """(text, parsed) of the existing config; ('', {}) when there is none. Fails with line and column, not content."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return '', {}
    except (OSError, ValueError) as exc:
        module.fail_json(msg='Cannot read %s: %s' % (path, getattr(exc, 'strerror', None) or type(exc).__name__))
    try:
        current = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        module.fail_json(msg='Cannot read %s: %s. It was not changed.' % (path, yaml_problem(exc)))
    except (ValueError, TypeError, RecursionError) as exc:
        module.fail_json(msg='Cannot read %s: the YAML cannot be loaded (%s). It was not changed.' % (path, type(exc).__name__))
    return text, ({} if current is None else current)


def main():
    module = ConfigModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/litellm/config.yaml'),
            deployments=dict(type='list', elements='dict', default=[]),
            absent_deployments=dict(type='list', elements='dict', default=[]),
            exclusive=dict(type='bool', default=False),
            router_settings=dict(type='dict'),
            litellm_settings=dict(type='dict'),
            general_settings=dict(type='dict', no_log=False),
            environment_variables=dict(type='dict', no_log=False),
            drain=dict(type='list', elements='str', default=[]),
            undrain=dict(type='list', elements='str', default=[]),
            allow_drain_last=dict(type='bool', default=False),
            allow_plaintext_secrets=dict(type='bool', default=False),
            validate_command=dict(type='list', elements='str'),
            backup=dict(type='bool', default=True),
            state_dir=dict(type='path', default='/var/lib/onprem_ai'),
            lock_timeout=dict(type='int', default=300),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML (python3-yaml)'), exception=YAML_IMPORT_ERROR)
    params = module.params
    path = params['path']
    # Secrets given in clear anywhere in the arguments are hidden from every output, -vvv invocation included
    # (again after the arguments were converted to their types).
    hide(module, given_secrets(params))
    if not path or not os.path.isabs(path) or not os.path.basename(path) or os.path.isdir(path):
        module.fail_json(msg='path must be the absolute path of the config file (not a directory)')
    if not params['state_dir'] or not os.path.isabs(params['state_dir']):
        module.fail_json(msg='state_dir must be an absolute path')
    if not 1 <= params['lock_timeout'] <= 86400:
        module.fail_json(msg='lock_timeout must be between 1 and 86400 seconds')
    if params['validate_command'] is not None and not [part for part in params['validate_command'] if part]:
        module.fail_json(msg='validate_command must name a command')

    directory = os.path.dirname(path) or '.'
    try:
        locks = lock([directory, params['state_dir']], params['lock_timeout'])
    except OSError as exc:
        module.fail_json(msg='Cannot lock %s for this run (another run still working on it after %ss?): %s'
                         % (directory, params['lock_timeout'], exc.strerror or exc))
    try:
        run(module, directory)
    finally:  # fail_json and exit_json end the run with SystemExit
        for fd in locks:
            os.close(fd)


def run(module, directory):
    """Read, change, validate and write the config, under the locks."""
    params = module.params
    path = params['path']

    before_text, current = read_config(module, path)
    # Secrets already in the file (written with allow_plaintext_secrets) are hidden too, from validate_command's output on.
    hide(module, litellm.secret_values(current))

    try:
        records = state.load(params['state_dir'], DRAINED_STATE)
    except state.StateError as exc:
        module.fail_json(msg=str(exc))
    drained_before = records.get(path, {})
    if not isinstance(drained_before, dict):
        module.fail_json(msg='The drain record %s is malformed for %s (move it away to start a fresh one)'
                         % (state.state_path(params['state_dir'], DRAINED_STATE), path))

    sections = dict((name, params[name]) for name in SECTIONS)
    try:
        new, drained = litellm.apply_changes(current, params['deployments'], params['absent_deployments'], params['exclusive'], sections,
                                             params['drain'], params['undrain'], drained_before, params['allow_drain_last'])
    except litellm.ConfigError as exc:
        module.fail_json(msg='%s. %s was not changed.' % (exc, path))

    errors, warnings = litellm.validate(new)
    for warning in warnings:
        module.warn(warning)
    if errors:
        module.fail_json(msg='The resulting LiteLLM config is invalid, %s was not changed: %s' % (path, '; '.join(errors)))
    secrets = litellm.plaintext_secrets(new)
    if secrets and not params['allow_plaintext_secrets']:
        module.fail_json(msg='Secrets written in clear at %s (secret-named values, header values, URLs with user:password@); '
                             'use os.environ/VAR references (the value comes from the proxy\'s environment file) or set '
                             'allow_plaintext_secrets. %s was not changed.' % (', '.join(secrets), path))

    after_text = dump(new)
    content_changed = after_text != before_text
    drained_changed = drained != drained_before
    record_path = state.state_path(params['state_dir'], DRAINED_STATE)
    try:
        record_open = bool(os.stat(record_path).st_mode & 0o077)  # an older record, readable by others
    except OSError:
        record_open = False
    result = dict(changed=content_changed or drained_changed or record_open, restart_required=content_changed,
                  deployments=[litellm.deployment_label(d) for d in new.get('model_list', [])],
                  drained=sorted(litellm.safe_url(label) for label in drained))
    if module._diff:
        result['diff'] = dict(before=dump(litellm.masked(current)) if before_text else '', after=dump(litellm.masked(new)),
                              before_header=path, after_header=path)

    if content_changed and not module.check_mode:
        if not os.path.isdir(directory):
            module.fail_json(msg='Directory %s does not exist' % directory)
        tmp = None
        try:
            tmp = write_private(directory, os.path.basename(path), after_text)
            if params['validate_command']:
                command = [tmp if part == '%s' else part for part in params['validate_command']]
                rc, out, err = module.run_command(command)
                if rc != 0:
                    module.fail_json(msg='validate_command refused the new config (rc=%s): %s. %s was not changed.'
                                     % (rc, (err or out).strip()[-2000:], path))
            if params['backup'] and before_text:
                result['backup_file'] = module.backup_local(path)
            install(tmp, path, numeric_mode(params['mode']))
        except OSError as exc:
            module.fail_json(msg='Cannot write %s: %s. It was not changed.' % (path, exc.strerror or exc))
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
    if not module.check_mode:
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
                install(write_private(params['state_dir'], DRAINED_STATE,
                                      json.dumps(records, indent=2, sort_keys=True) + '\n'), record_path, 0o600)
            except OSError as exc:
                module.fail_json(msg='The config was written but the drain record %s was not: %s' % (record_path, exc.strerror or exc),
                                 **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
