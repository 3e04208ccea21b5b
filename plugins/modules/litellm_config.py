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
    are kept in a record under O(state_dir) (C(litellm_drained.json), mode C(0600)). Refuses to drain the last
    deployment of a model.
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
  - Refuses a model whose deployments have a C(litellm_params.weight) on some but not all of them - LiteLLM gives
    the others weight 0, so a single weighted deployment (a canary) would take every request. Weights on all of a
    model's deployments, or on none.
  - Writes atomically (a temporary file created C(0600) before anything is written, synced, then renamed), with an
    optional backup copy; the record of drained deployments is C(0600). LiteLLM does not reload its YAML; RV(restart_required) says
    whether the proxy must be restarted to apply the change.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.common.STATE_DIR
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
error_kind:
  description:
    - On failure - usage (an option), busy (another run holds the lock), unreadable (the existing config),
      invalid (the config or the change), plaintext_secret, validate_command, os (writing), state (the drain
      record), missing_library or internal.
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _litellm as litellm
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import STATE_DIR_SPEC


def main():
    module = litellm.ConfigModule(
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
            lock_timeout=dict(type='int', default=300),
            **STATE_DIR_SPEC
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    try:
        result = litellm.run(module)
    except Exception as exc:  # pylint: disable=broad-except  # one failure shape, never a traceback
        module.fail_json(**failure(exc, None, 'litellm_config'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
