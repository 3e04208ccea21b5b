#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: maintenance_report
short_description: Write the change notice or the run report of a maintenance run, with its history
version_added: 0.2.0
description:
  - Run on the controller (C(delegate_to=localhost), C(run_once)) with what the playbooks collected.
  - O(kind=notice) renders the change notice from the plan - Markdown, HTML and an iCalendar event (C(.ics)) of the
    window - into O(dest)/O(name)/C(notice.{md,html,ics}).
  - O(kind=report) renders the run report - Markdown, HTML (with a timeline picture, an inline SVG of which node
    served when, its drains and failures) and JSON - into O(dest)/O(name)/C(report.{md,html,json}); per host the
    versions before and after, the time out of routing, the validation with performance before and after, what
    was rolled back and why, the nodes left for the next window, the failed requests and what was postponed. It
    keeps the history - O(dest)/C(history.json) (the last O(keep) runs), C(latest-report.md),
    C(latest-summary.txt).
  - Files are 0644 (directories 0755); data with a key that names a secret (password, token, api_key, ...) and a
    value is refused, so that none lands in them.
  - Check mode renders and says which files would change, writing nothing.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  kind:
    description: V(notice) (from the plan) or V(report) (after a run).
    type: str
    choices: [notice, report]
    required: true
  data:
    description:
      - For V(notice) - C(hosts) (per host its update_plan result), C(window) (a window of the window_status filter, e.g.
        its C(next)), C(title), C(run), C(contact), C(postpone) (how to postpone), C(sequence) (raise it with each
        revision of the notice), C(organizer), C(url).
      - For V(report) - C(run) (C(name), C(kind), C(started), C(finished), C(strategy), C(window), C(stopped),
        C(emergency), C(emergency_reason), C(check_mode)), C(hosts) (a list of C({host, status, components, times,
        error, validation})), C(failed_requests) (C({count, total, source})), C(postponed), C(probe) (the C(summary) of
        live_probe C(state=stopped) - its phases, per-second timeline and verdicts become the C(Live probe) section).
        docs/maintenance-run.md describes each.
    type: dict
    required: true
  prometheus:
    description:
      - With O(kind=report) - compare performance before and after the run from Prometheus' query API
        (C(/api/v1/query_range)) - each query's mean per series over the O(prometheus.before_seconds) before the run's
        C(started), and from the last node back in routing until now; a table in the report. Unset - no comparison.
      - Prometheus not answering does not fail the report - the section says why nothing was compared.
    type: dict
    suboptions:
      url:
        description: Prometheus' base URL (V(http://prometheus:9090)); user info in it is never sent.
        type: str
        required: true
      queries:
        description:
          - The queries; default - the engines' completed requests/s and generated tokens/s (vLLM's counters),
            requests in flight, vLLM's e2e latency p99, the nodes' CPU busy share, targets up.
        type: list
        elements: dict
        suboptions:
          name:
            description: The row's name in the report.
            type: str
            required: true
          query:
            description: The PromQL expression, asked with C(/api/v1/query_range) over each window.
            type: str
            required: true
      before_seconds:
        description: Seconds before the run's start that are "before".
        type: int
        default: 1800
      bearer_token:
        description: Sent as a bearer token (the C(Authorization) header) when set.
        type: str
      validate_certs:
        description: Verify Prometheus' TLS certificate.
        type: bool
        default: true
      timeout:
        description: Seconds one query may take.
        type: int
        default: 10
  dest:
    description: The history directory (created 0755).
    type: path
    required: true
  name:
    description: The run's directory name under O(dest) (letters, digits, C(.), C(_), C(-)).
    type: str
    required: true
  keep:
    description: How many runs C(history.json) keeps (0 - all).
    type: int
    default: 24
  dtstamp:
    description: The notice's C(DTSTAMP) (ISO 8601 with an offset); default now. Tests pin it.
    type: str
seealso:
  - name: Maintenance run
    description: Plan, notice, windows, playbooks and report (docs/maintenance-run.md in the collection).
    link: https://github.com/onprem-ai/maintenance/blob/main/docs/maintenance-run.md
'''

EXAMPLES = r'''
- name: The change notice
  onprem_ai.maintenance.maintenance_report:
    kind: notice
    dest: /var/lib/onprem_ai/maintenance
    name: "notice-{{ maintenance_window.next.start[:10] }}"
    data:
      window: "{{ maintenance_window.next }}"
      hosts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'maintenance_plan'))) }}"
      contact: ops@example.org
  delegate_to: localhost
  run_once: true

- name: The report, handed to AWX
  onprem_ai.maintenance.maintenance_report:
    kind: report
    dest: /var/lib/onprem_ai/maintenance
    name: "{{ maintenance_run_id }}"
    data: "{{ maintenance_report_data }}"
  delegate_to: localhost
  run_once: true
  register: report
- name: Artifacts for AWX
  ansible.builtin.set_stats:
    data: {maintenance_report: "{{ report.stats }}"}
'''

RETURN = r'''
files:
  description: Every file the run writes (or would write in check mode), changed or not.
  returned: always
  type: list
  elements: str
written:
  description: The files that were (check mode - would be) written because they were missing or differed.
  returned: always
  type: list
  elements: str
summary:
  description: The report's summary lines (for a notice - one line with the risk and downtime).
  returned: always
  type: list
  elements: str
  sample: ["Maintenance run 2026-12-08 (monthly): STOPPED - 1 of 3 nodes done, 2 left for the next window (gpu2, gpu3)"]
outcome:
  description: The run's outcome (V(completed), V(stopped), V(failed), V(check_mode)); null for a notice.
  returned: always
  type: str
stats:
  description: What to hand to AWX with C(ansible.builtin.set_stats) - C(outcome), C(summary), C(files), C(left_for_next_window), C(counts).
  returned: always
  type: dict
'''

import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _report as report_utils
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _prometheus as prometheus_utils

ARGUMENT_SPEC = dict(
    kind=dict(type='str', choices=['notice', 'report'], required=True),
    data=dict(type='dict', required=True),
    dest=dict(type='path', required=True),
    name=dict(type='str', required=True),
    keep=dict(type='int', default=24),
    dtstamp=dict(type='str'),
    prometheus=dict(type='dict', options=prometheus_utils.ARGUMENT_SPEC),
)


def performance(params, data, now=None):
    """data with `prometheus`: the before / after comparison, or why there is none (never fails the report)."""
    options = params.get('prometheus')
    if not options:
        return data
    try:
        before, after = prometheus_utils.windows(data, time.time() if now is None else now, options['before_seconds'])
        compared = prometheus_utils.compare(options, before, after)
    except prometheus_utils.PrometheusError as exc:
        compared = dict(url=prometheus_utils.safe_url(options.get('url')), rows=[], error=exc.msg)
    return dict(data, prometheus=compared)


def run(params, check_mode):
    """The module's work, without Ansible."""
    if params['keep'] < 0:
        raise report_utils.ReportError('keep: %d is negative' % params['keep'])
    if params['kind'] == 'notice':
        files = report_utils.notice(params['data'], dtstamp=params['dtstamp'])
        info = report_utils.notice_summary(params['data'])
        summary = ['notice: risk %s, %s, downtime for users %ss, %d host(s) with pending changes%s' % (
            info['risk'], 'reboot' if info['reboot'] else 'no reboot', info['users_seconds'], len(info['hosts_pending']),
            ', CRITICAL security on the emergency path' if info['emergency'] else '')]
        entry, outcome, extra = None, None, {}
    else:
        files, norm = report_utils.report(performance(params, params['data']))
        entry = report_utils.history_entry(params['name'], norm)
        summary, outcome = norm['summary'], norm['run']['outcome']
        extra = {'left_for_next_window': norm['left_for_next_window'], 'counts': norm['counts']}
    written, paths = report_utils.write(params['dest'], params['name'], files, entry=entry, keep=params['keep'],
                                        check_mode=check_mode)
    stats = dict(outcome=outcome, summary=summary, files=paths, **extra)
    return dict(changed=bool(written), files=paths, written=written, summary=summary, outcome=outcome, stats=stats)


class ReportModule(OnpremModule):
    """Masks, on any failure, the values of secret-named keys in the data (which the module refuses to write)."""

    def extra_secrets(self, params):
        return report_utils.secret_values(params.get('data') if isinstance(params, dict) else None)


def main():
    module = ReportModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except Exception as exc:  # pylint: disable=broad-except  # the one failure of the module, never a traceback
        module.fail_json(**failure(exc, name='maintenance_report'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
