# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After the maintenance runs: node 1 on 570, node 2 rolled back to 550.144.03, node 3 never reached by the
quarterly run, all serving; the reports on the controller are 0644 and hold no secret."""

from __future__ import annotations

import os
import re
import stat

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
testinfra_hosts = RUNNER.get_hosts('gpu_nodes')

EXPECTED = {
    'molecule-mr-gpu-1': '570.133.20',
    'molecule-mr-gpu-2': '550.144.03',
    'molecule-mr-gpu-3': '550.144.03',
}
REPORTS = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'maintenance', 'reports')


def test_loaded_driver(host):
    assert host.file('/sys/module/nvidia/version').content_string.strip() == EXPECTED[host.backend.get_hostname()]


def test_every_node_serves(host):
    assert host.service('lab-inference.service').is_running
    out = host.run('curl -fsS --retry 10 --retry-delay 1 --retry-connrefused http://127.0.0.1:8000/v1/models')
    assert out.rc == 0 and 'llama-3.1-8b-instruct' in out.stdout


def test_report_files_are_0644_without_secrets():
    for root, _dirs, names in os.walk(REPORTS):
        for name in names:
            path = os.path.join(root, name)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
            with open(path, encoding='utf-8') as handle:
                text = handle.read()
            assert not re.search(r'\bsk-[A-Za-z0-9-]{8,}', text) and 'BEGIN PRIVATE KEY' not in text, path


def test_plan_listed_the_pending_security_updates_of_the_lab_repository():
    """plan.yml planned the OS updates (os_update in check mode): node 1's OpenSSL from bookworm-security, flagged."""
    notices = [os.path.join(root, 'notice.md') for root, _dirs, names in os.walk(REPORTS) if 'notice.md' in names]
    assert len(notices) == 1, notices
    with open(notices[0], encoding='utf-8') as handle:
        rows = [line for line in handle.read().splitlines() if '| os_update |' in line]
    assert [row.split('|')[1:5] for row in rows if 'molecule-mr-gpu-1' in row] == [
        [' molecule-mr-gpu-1 ', ' os_update ', ' lab-libssl-sim ', ' 3.0.11-1 -> 3.0.15-1 '],
        [' molecule-mr-gpu-1 ', ' os_update ', ' lab-openssl-sim ', ' 3.0.11-1 -> 3.0.15-1 ']]
    assert all(row.split('|')[7].strip() == 'security' for row in rows)
    assert not [row for row in rows if 'molecule-mr-gpu-1' not in row]
    with open(os.path.join(os.path.dirname(REPORTS), 'plan.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'security update: lab-openssl-sim' in log
