# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""container_runtime reads the containers that run before the engine's restart: when the engine is installed
but the Docker API cannot be read, it refuses instead of taking "no containers" (roles/container_runtime/tasks/
containers_before.yml), run by ansible-playbook on this machine against a Docker socket that does not exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
TASKS = os.path.join(ROOT, 'roles', 'container_runtime', 'tasks', 'containers_before.yml')


def _play(tmp_path, packages):
    play = [{
        'hosts': 'localhost', 'gather_facts': False,
        'environment': {'DOCKER_HOST': 'unix://%s' % (tmp_path / 'no-docker.sock')},
        'vars': {'container_runtime_docker_packages': ['docker-ce', 'docker-ce-cli'],
                 'container_runtime_expected_containers': ['vllm']},
        'tasks': [
            {'name': 'Packages as package_facts reports them', 'ansible.builtin.set_fact': {'ansible_facts': {'packages': packages}}},
            {'name': 'Containers before', 'ansible.builtin.include_tasks': TASKS},
            {'name': 'Result', 'ansible.builtin.copy': {
                'dest': str(tmp_path / 'out.json'), 'mode': '0600', 'content': '{{ __container_runtime_must_run | to_json }}'}},
        ],
    }]
    (tmp_path / 'play.json').write_text(json.dumps(play))
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    return subprocess.run([os.path.join(bin_dir, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                           '-e', 'ansible_python_interpreter=%s' % sys.executable, str(tmp_path / 'play.json')],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize('installed', [False, True])
def test_unreadable_docker_api(tmp_path, installed):
    packages = {'bash': [{'version': '5.2'}]}
    if installed:
        packages['docker-ce'] = [{'version': '28.5.1', 'release': '1~debian.12~bookworm', 'epoch': '5'}]
    proc = _play(tmp_path, packages)
    out = proc.stdout + proc.stderr
    if installed:
        assert proc.returncode != 0, out
        assert 'its running containers cannot be read' in out, out
        assert not (tmp_path / 'out.json').exists()
    else:
        # No engine yet: nothing runs, only the expected containers must run afterwards.
        assert proc.returncode == 0, out
        assert json.loads((tmp_path / 'out.json').read_text()) == ['vllm']
