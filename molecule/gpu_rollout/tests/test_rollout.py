# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After a rollout that failed on node 2: node 1 upgraded, node 2 rolled back, node 3 untouched, all serving."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
testinfra_hosts = RUNNER.get_hosts('gpu_nodes')

EXPECTED = {
    'molecule-rollout-gpu-1': '570.133.20',
    'molecule-rollout-gpu-2': '550.127.08',
    'molecule-rollout-gpu-3': '550.127.08',
}


def name_of(host):
    return host.backend.get_hostname()


def test_loaded_driver(host):
    assert host.file('/sys/module/nvidia/version').content_string.strip() == EXPECTED[name_of(host)]
    assert host.run('nvidia-smi -L').rc == 0


def test_history(host):
    record = host.file('/var/lib/onprem_ai/nvidia_driver.json')
    node = name_of(host)
    if node == 'molecule-rollout-gpu-3':
        assert not record.exists  # the rollout stopped before this node
        return
    steps = [(h['from'], h['to']) for h in json.loads(record.content_string)['history']]
    if node == 'molecule-rollout-gpu-1':
        assert steps == [('550.127.08', '570.133.20')]
    else:
        assert steps == [('550.127.08', '570.133.20'), ('570.133.20', '550.127.08')]


def test_every_node_serves(host):
    assert host.service('lab-inference.service').is_running
    out = host.run('curl -fsS --retry 10 --retry-delay 1 --retry-connrefused http://127.0.0.1:8000/v1/models')
    assert out.rc == 0 and 'llama-3.1-8b-instruct' in out.stdout
