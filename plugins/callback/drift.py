# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
name: drift
type: notification
short_description: Record what the roles would change in check mode - configuration drift for the maintenance plan
version_added: 0.2.0
description:
  - Enabled with C(ANSIBLE_CALLBACKS_ENABLED=onprem_ai.maintenance.drift) while C(playbooks/drift.yml) runs the
    roles with C(--check --diff). Every task of a role that would change something (configuration drift - the host
    differs from the declared state), and every one that failed or whose host was unreachable (the state cannot be
    told), is written per host to a JSON file (0600) - per host name a list of C(role), C(task), C(changed), C(failed),
    C(unreachable), C(skipped), C(msg), C(diff) - that C(playbooks/plan.yml) reads (C(maintenance_drift_file)) and hands to
    C(onprem_ai.maintenance.update_plan) as C(checks.drift).
  - Of a diff only the file names (C(before_header), C(after_header)) are kept, never its content - a configuration
    file may hold a secret. Results of tasks with C(no_log) keep no message either.
  - Tasks outside a role are not recorded.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
options:
  file:
    description: Where the JSON file is written (its directory must exist).
    type: path
    required: true
    env:
      - name: ONPREM_AI_DRIFT_FILE
    ini:
      - section: onprem_ai_drift
        key: file
'''

import json
import os

from ansible.plugins.callback import CallbackBase


def _headers(diff):
    out = []
    for item in diff if isinstance(diff, list) else [diff]:
        if isinstance(item, list):
            out.extend(h for h in _headers(item) if h not in out)
        elif isinstance(item, dict):
            for key in ('before_header', 'after_header'):
                if isinstance(item.get(key), str) and item[key] not in out:
                    out.append(item[key])
    return out


class CallbackModule(CallbackBase):
    """Configuration drift per host, from a check-mode run of the roles."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'onprem_ai.maintenance.drift'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = {}

    def _record(self, result, **status):
        task = result._task  # pylint: disable=protected-access
        role = getattr(task, '_role', None)
        if role is None:
            return
        data = result._result  # pylint: disable=protected-access
        hidden = bool(getattr(task, 'no_log', False)) or bool(data.get('_ansible_no_log'))
        entry = {'role': role.get_name(), 'task': task.name or task.action, 'changed': bool(data.get('changed')),
                 'failed': bool(status.get('failed')), 'unreachable': bool(status.get('unreachable')),
                 'skipped': bool(status.get('skipped')),
                 'msg': None if hidden else (str(data.get('msg'))[:300] if data.get('msg') else None),
                 'diff': [{'before_header': h, 'after_header': h} for h in _headers(
                     [data.get('diff')] + [r.get('diff') for r in data.get('results') or [] if isinstance(r, dict)])]}
        if entry['changed'] or entry['failed'] or entry['unreachable']:
            self.records.setdefault(result._host.get_name(), []).append(entry)  # pylint: disable=protected-access

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)  # ignored or not: what the role would do cannot be told

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed):
            self.records.setdefault(host, [])  # checked, nothing differs
        path = self.get_option('file')
        fd = os.open(path + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump(self.records, handle, indent=1, sort_keys=True)
        os.replace(path + '.tmp', path)
