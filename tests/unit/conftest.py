# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixture of the tests that run ansible-playbook on this machine against local "nodes"
(tests/unit/roles/test_rollout_sequence.py, tests/unit/playbooks/test_maintenance_playbooks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

# A component role `stub` for the shared rolling sequence: its plan is the host's stub_changes, its update
# fails where stub_fail_update is set, its rollback sets stub_rolled_back.
STUB_COMPONENT = {
    'plan.yml': '''
        - name: Plan of the test component
          ansible.builtin.set_fact:
            stub_plan_changed: "{{ stub_changes | default([]) | length > 0 }}"
            stub_plan: "{{ stub_changes | default([]) }}"
    ''',
    'main.yml': '''
        - name: The test component's update
          ansible.builtin.fail:
            msg: "stub update failed on {{ inventory_hostname }}"
          when: stub_fail_update | default(false)
    ''',
    'rollback.yml': '''
        - name: The test component's rollback
          ansible.builtin.set_fact:
            stub_rolled_back: true
    ''',
}


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b'{"status": "ok"}'
        self.send_response(200 if self.path == '/health' else 404)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class StubNodes:
    """tmp: the run's folder (roles/stub in it); url: the loopback health server that stands in for every
    node's inference engine (/health answers 200, any other path 404)."""

    def __init__(self, tmp, url):
        self.tmp = tmp
        self.url = url

    def host_vars(self, **extra):
        """Variables of a local node of the rolling sequence (no gateway, fixed in-flight wait, no backup)."""
        return dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'rollout_gateways': [],
                     'rollout_inference_url': self.url, 'rollout_inflight_source': 'fixed',
                     'rollout_inflight_fixed_wait': 0, 'rollout_backup': False}, **extra)

    def playbook(self, args, collections=(), **env):
        """ansible-playbook ARGS with this project's ansible.cfg and collection (after the collections
        folders given), the stub role on the roles path and env added; the finished process."""
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                   ANSIBLE_COLLECTIONS_PATH=':'.join([str(c) for c in collections] + [os.path.join(ROOT, 'build', 'collections')]),
                   ANSIBLE_ROLES_PATH=str(self.tmp / 'roles'), **env)
        return subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')] + list(args),
                              env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope='module')
def stub_nodes(tmp_path_factory):
    """A StubNodes for one test module: the stub component role written, the health server running."""
    tmp = tmp_path_factory.mktemp('stub-nodes')
    server = ThreadingHTTPServer(('127.0.0.1', 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tasks = tmp / 'roles' / 'stub' / 'tasks'
    tasks.mkdir(parents=True)
    for name, text in STUB_COMPONENT.items():
        (tasks / name).write_text('---\n' + textwrap.dedent(text))
    yield StubNodes(tmp, 'http://127.0.0.1:%d' % server.server_address[1])
    server.shutdown()
