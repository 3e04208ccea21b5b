# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/drift.yml with the drift callback (issue 17, configuration drift), run by ansible-playbook on this machine
with a stub role: the file that differs is recorded by name (never its content), the one that does not is not, the
record is 0600 and _housekeeping turns it into the plan's findings; without --check the playbook refuses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as hk

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))


def test_drift_playbook_records_what_differs(tmp_path):
    declared, drifted = tmp_path / 'declared.conf', tmp_path / 'drifted.conf'
    declared.write_text('a = 1\n')
    drifted.write_text('a = 2\nsecret = s3cr3t-value\n')
    tasks = tmp_path / 'roles' / 'stubcfg' / 'tasks'
    tasks.mkdir(parents=True)
    (tasks / 'main.yml').write_text(textwrap.dedent('''\
        ---
        - name: Declared file
          ansible.builtin.copy: {content: "a = 1\\n", dest: "%s", mode: "0644"}
        - name: Drifted file
          ansible.builtin.copy: {content: "a = 1\\n", dest: "%s", mode: "0644"}
        ''' % (declared, drifted)))
    (tmp_path / 'inventory.json').write_text(json.dumps({'gpu_nodes': {'hosts': {'node-a': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    record = tmp_path / 'drift.json'
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'collections'),
               ANSIBLE_ROLES_PATH=str(tmp_path / 'roles'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACKS_ENABLED='onprem_ai.maintenance.drift', ONPREM_AI_DRIFT_FILE=str(record))
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'),
               os.path.join(ROOT, 'playbooks', 'drift.yml'), '-e', '{"maintenance_drift_roles": ["stubcfg"]}']
    proc = subprocess.run(command + ['--check', '--diff'], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    text = record.read_text()
    assert 's3cr3t' not in text
    found = json.loads(text)
    assert [(e['role'], e['task'], e['changed']) for e in found['node-a']] == [('stubcfg', 'Drifted file', True)]
    assert drifted.read_text().startswith('a = 2')  # check mode: nothing changed
    findings = hk.drift(found['node-a'])
    assert [(f['status'], f['finding']) for f in findings] == [
        ('drift', 'stubcfg: Drifted file differs from the declared state (%s)' % drifted)]

    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode != 0 and 'must not change the hosts' in refused.stdout
    assert drifted.read_text().startswith('a = 2')
