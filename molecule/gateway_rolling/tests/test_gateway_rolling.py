# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After the maintenance under load: what the client saw, and the real state of the gateway and the nodes."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
GATEWAY = RUNNER.get_host('molecule-gwr-gateway-1')
NODES = ['molecule-gwr-gpu-1', 'molecule-gwr-gpu-2']
MASTER = 'sk-lab-rolling-master-5a1b2c3d'
PHASES = ['steady-before', 'gpu-rollout', 'gateway-upgrade', 'gateway-downgrade', 'gateway-failed-upgrade', 'steady-after']


@pytest.fixture(scope='module')
def report():
    path = os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'build', 'molecule', 'gateway_rolling', 'gateway-load.json')
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def test_every_phase_had_streamed_and_plain_requests(report):
    assert list(report['phases']) == PHASES
    for phase in PHASES:
        entry = report['phases'][phase]
        assert entry['streamed'] > 0 and entry['requests'] - entry['streamed'] > 0, phase


def test_no_request_failed_or_was_truncated(report):
    assert report['totals']['failed'] == 0, report['samples']
    assert report['totals']['truncated'] == 0, report['samples']
    assert report['totals']['ok'] == report['totals']['requests']


def test_both_nodes_served_before_and_after(report):
    for phase in ('steady-before', 'steady-after', 'gpu-rollout'):
        assert set(report['phases'][phase]['nodes']) == set(NODES), phase


def test_instances_behind_haproxy():
    for port in (4001, 4002):
        unit = GATEWAY.service('litellm@%d.service' % port)
        assert unit.is_running and unit.is_enabled
        assert GATEWAY.socket('tcp://127.0.0.1:%d' % port).is_listening
    assert GATEWAY.service('haproxy.service').is_running
    stat = GATEWAY.run("echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock").stdout
    rows = [line.split(',') for line in stat.splitlines() if line.startswith('litellm,litellm-')]
    assert sorted((row[1], row[17]) for row in rows) == [('litellm-4001', 'UP'), ('litellm-4002', 'UP')]


def test_downgraded_with_the_upgrade_kept_for_a_rollback():
    assert GATEWAY.file('/opt/litellm/current').linked_to == '/opt/litellm/venvs/1.106.12'
    version = GATEWAY.check_output("/opt/litellm/current/bin/python -c \"import importlib.metadata as m; print(m.version('litellm'))\"")
    assert version == '1.106.12'
    assert GATEWAY.file('/opt/litellm/venvs/1.108.7/bin/litellm').exists
    for port in (4001, 4002):  # each running instance was restarted onto the downgrade (the kernel shows real paths)
        pid = GATEWAY.check_output('systemctl show -p MainPID --value litellm@%d.service' % port)
        maps = GATEWAY.check_output('cat /proc/%s/maps' % pid)
        assert '/opt/litellm/venvs/1.106.12/' in maps and '/opt/litellm/venvs/1.108.7/' not in maps


def test_both_backends_back_in_routing():
    config = GATEWAY.file('/etc/litellm/config.yaml').content_string
    for node in NODES:
        assert 'http://%s:8000/v1' % node in config
    drained = GATEWAY.run('cat /var/lib/onprem_ai/litellm_drained.json')
    assert drained.rc != 0 or 'molecule-gwr-gpu' not in drained.stdout


def test_secrets_only_in_the_0600_env_file():
    env = GATEWAY.file('/etc/litellm/litellm.env')
    assert env.mode == 0o600 and env.user == 'root'
    config = GATEWAY.file('/etc/litellm/config.yaml')
    assert config.mode == 0o640 and config.group == 'litellm'
    assert MASTER not in config.content_string and 'os.environ/VLLM_KEY' in config.content_string


def test_request_without_the_master_key_is_refused():
    # LiteLLM without a database answers 500 rather than 401 here; what matters is that nothing is served.
    body = json.dumps({'model': 'llama-3.1-8b-instruct', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 3})
    result = GATEWAY.run("curl -s -w '\\n%%{http_code}' http://127.0.0.1:4000/v1/chat/completions "
                         "-H 'Content-Type: application/json' -d '%s'" % body)
    assert result.stdout.strip().splitlines()[-1] != '200' and 'node=molecule-gwr' not in result.stdout


@pytest.mark.parametrize('node', NODES)
def test_nodes_on_the_new_driver_and_serving(node):
    host = RUNNER.get_host(node)
    assert host.check_output('nvidia-smi --query-gpu=driver_version --format=csv,noheader').splitlines()[0] == '570.133.20'
    assert host.service('lab-inference.service').is_running
