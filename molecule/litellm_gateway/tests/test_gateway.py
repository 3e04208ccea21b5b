# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The gateway node itself: the service, the files' modes, the config, and a request through LiteLLM."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gateways')


def test_service_and_version(host):
    assert host.service('litellm.service').is_running
    assert host.service('litellm.service').is_enabled
    version = host.check_output("/opt/litellm/venv/bin/python -c \"import importlib.metadata as m; print(m.version('litellm'))\"")
    assert version == '1.108.7'


def test_secrets_only_in_the_0600_env_file(host):
    env = host.file('/etc/litellm/litellm.env')
    assert env.mode == 0o600 and env.user == 'root'
    config = host.file('/etc/litellm/config.yaml')
    assert config.mode == 0o640 and config.group == 'litellm'
    assert 'sk-lab-master' not in config.content_string and 'os.environ/VLLM_KEY' in config.content_string


def test_request_through_the_gateway(host):
    body = json.dumps({'model': 'llama-3.1-8b-instruct', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 3})
    out = host.check_output("curl -fsS http://127.0.0.1:4000/v1/chat/completions -H 'Authorization: Bearer sk-lab-master-0123456789' "
                            "-H 'Content-Type: application/json' -d '%s'" % body)
    answer = json.loads(out)
    assert answer['choices'][0]['message']['content'].startswith('[node=molecule-gw-gpu-1 model=llama-3.1-8b-instruct')


def test_request_without_the_master_key_is_refused(host):
    # LiteLLM 1.108.7 without a database answers 500 rather than 401 here; what matters is that nothing is served.
    body = json.dumps({'model': 'llama-3.1-8b-instruct', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 3})
    result = host.run("curl -s -w '\\n%%{http_code}' http://127.0.0.1:4000/v1/chat/completions "
                      "-H 'Content-Type: application/json' -d '%s'" % body)
    status = result.stdout.strip().splitlines()[-1]
    assert status != '200' and 'node=molecule-gw-gpu-1' not in result.stdout
