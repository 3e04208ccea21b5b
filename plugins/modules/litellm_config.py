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
  - Validates the new config before it replaces the old one (the keys and types LiteLLM reads, and optionally
    O(validate_command), for example LiteLLM's own loader in its virtualenv). An invalid config is never written,
    so the running proxy keeps its old one.
  - Writes atomically, with an optional backup copy. LiteLLM does not reload its YAML; RV(restart_required) says
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
    description: The proxy's config file (mode C(0640) unless O(mode) says otherwise).
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
    description: Where the record of drained deployments is kept.
    type: path
    default: /var/lib/onprem_ai
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

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

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


def dump(config):
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def main():
    module = AnsibleModule(
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
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML (python3-yaml)'), exception=YAML_IMPORT_ERROR)
    params = module.params
    path = params['path']
    # Secrets given in clear anywhere in the arguments are hidden from every output, -vvv invocation included.
    given = ('deployments', 'absent_deployments', 'router_settings', 'litellm_settings', 'general_settings', 'environment_variables')
    for value in litellm.secret_values(dict((k, params[k]) for k in given)):
        module.no_log_values.add(value)

    try:
        with open(path) as handle:
            before_text = handle.read()
        current = yaml.safe_load(before_text) or {}
    except FileNotFoundError:
        before_text, current = '', {}
    except (OSError, yaml.YAMLError) as exc:
        module.fail_json(msg='Cannot read %s: %s' % (path, exc))

    try:
        records = state.load(params['state_dir'], DRAINED_STATE)
    except state.StateError as exc:
        module.fail_json(msg=str(exc))
    drained_before = records.get(path, {})

    sections = dict((name, params[name]) for name in ('router_settings', 'litellm_settings', 'general_settings', 'environment_variables'))
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
        module.fail_json(msg='Secrets written in clear at %s; use os.environ/VAR references (the value comes from the proxy\'s '
                             'environment file) or set allow_plaintext_secrets. %s was not changed.' % (', '.join(secrets), path))

    after_text = dump(new)
    content_changed = after_text != before_text
    drained_changed = drained != drained_before
    result = dict(changed=content_changed or drained_changed, restart_required=content_changed,
                  deployments=[litellm.deployment_label(d) for d in new.get('model_list', [])],
                  drained=sorted(drained))
    if module._diff:
        result['diff'] = dict(before=dump(litellm.masked(current)) if before_text else '', after=dump(litellm.masked(new)),
                              before_header=path, after_header=path)

    if content_changed and not module.check_mode:
        directory = os.path.dirname(path) or '.'
        if not os.path.isdir(directory):
            module.fail_json(msg='Directory %s does not exist' % directory)
        tmp = os.path.join(directory, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
        try:
            with open(tmp, 'w') as handle:
                handle.write(after_text)
            os.chmod(tmp, 0o640)
            if params['validate_command']:
                command = [tmp if part == '%s' else part for part in params['validate_command']]
                rc, out, err = module.run_command(command)
                if rc != 0:
                    module.fail_json(msg='validate_command refused the new config (rc=%s): %s. %s was not changed.'
                                     % (rc, (err or out).strip()[-2000:], path))
            if params['backup'] and before_text:
                result['backup_file'] = module.backup_local(path)
            module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if not module.check_mode:
        file_args = module.load_file_common_arguments(params)
        if file_args.get('mode') is None and content_changed:
            file_args['mode'] = '0640'  # the proxy's config is not for every local user
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
        if drained_changed:
            records[path] = drained
            records['updated'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
            try:
                state.save(params['state_dir'], DRAINED_STATE, records)
            except state.StateError as exc:
                module.fail_json(msg='The config was written but the drain record was not: %s' % exc, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
