#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: alertmanager_silence
short_description: Create, extend and expire Alertmanager silences for the hosts under maintenance
version_added: 0.1.0
description:
  - Silences in Prometheus Alertmanager (API v2, C(/api/v2/silences)) so that planned reboots and restarts of a
    maintenance run page nobody, and their removal at the end of the run - also when it failed.
  - The silences of a run are found again by a tag in their comment, C([onprem_ai.maintenance:<tag>]) (O(tag) - a run
    id). Nothing else is touched.
  - O(state=present) wants one silence per host of O(hosts) (a matcher on O(host_label), plus the extra O(matchers)),
    or one silence of O(matchers) alone when O(hosts) is empty. A tagged silence (active or pending) with the same
    matchers is kept, or extended when it ends more than 60 seconds before the wanted end (never shortened); otherwise
    one is created. A second run with the same options changes nothing. O(exclusive=true) also expires the tagged
    silences that are not wanted (hosts that left the maintenance).
  - O(state=absent) expires the tagged silences, active and pending - all of them, or, when O(hosts) or O(matchers)
    are given, those with exactly the matchers O(state=present) would have made for them. The time options are not
    read, so that an C(always:) task cannot fail on them.
  - Unknown is never none - an answer that cannot be read (not JSON, not a list, a silence without its fields, a time
    that does not parse, a redirect) fails with what could not be read; nothing is changed on a list that could not be
    read. When a change fails half way, the failure says what was already done (RV(created), RV(extended),
    RV(expired)).
  - Credentials (O(password), O(bearer_token), user info in O(url)) never appear in the output; redirects are not
    followed.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the silences and reports what it would create, extend and expire; changes nothing.
  diff_mode:
    support: full
    details:
      - The tagged silences before and after (after - as planned, in check mode).
options:
  url:
    description:
      - Base URL of Alertmanager, with its route prefix if it has one (C(http://mon-1:9093),
        C(https://mon.example.com/alertmanager)). User info in it is masked and not sent - give O(username).
    type: str
    required: true
  state:
    description:
      - C(present) creates or extends the silences, C(absent) expires them.
    type: str
    choices: [present, absent]
    default: present
  tag:
    description:
      - Identifies the silences of one run (put in their comment as C([onprem_ai.maintenance:<tag>])); 1 to 128
        letters, digits and the characters C(._:@/-). Use the run id, the same in the task that creates and the one that expires.
    type: str
    required: true
  hosts:
    description:
      - Hosts under maintenance; one silence each.
    type: list
    elements: str
    default: []
  host_label:
    description:
      - The label that names a host in the alerts (C(instance) for the node exporter's scrape targets, or a C(host)
        label set by relabelling).
    type: str
    default: instance
  host_match:
    description:
      - How a host matches the label. C(exact) - label = host. C(with_port) - label =~ C(<host>(:[0-9]+)?), so
        C(gpu-1) silences both C(gpu-1) and C(gpu-1:9100). C(regex) - the host is a regular expression (Go RE2,
        anchored by Alertmanager).
    type: str
    choices: [exact, with_port, regex]
    default: with_port
  matchers:
    description:
      - Extra matchers, added to each host's silence, or the whole silence when O(hosts) is empty. At least one matcher
        of a silence must require a value (a silence matching every alert is refused).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Label name.
        type: str
        required: true
      value:
        description: Value, or regular expression for C(=~) and C(!~).
        type: str
        required: true
      op:
        description: C(=) equal, C(!=) not equal, C(=~) matches, C(!~) does not match (what the v2 API allows).
        type: str
        choices: ['=', '!=', '=~', '!~']
        default: '='
  duration:
    description:
      - How long the silences last from now (or from O(starts_at)) - C(90m), C(2h), C(1h30m), C(1d), C(45s), or a number
        of seconds. Ignored when O(ends_at) is given. A silence lasts 60 seconds to 7 days.
    type: str
    default: 2h
  starts_at:
    description:
      - Start of the silences, RFC 3339 with a zone (C(2026-12-05T22:00:00Z)); a later start makes them pending. Default
        now; a past time means now.
    type: str
  ends_at:
    description:
      - End of the silences, RFC 3339 with a zone; instead of O(duration).
    type: str
  exclusive:
    description:
      - With O(state=present), expire the tagged silences that are not wanted (their matchers are none of the wanted
        ones).
    type: bool
    default: false
  comment:
    description:
      - Text of the silences' comment; the tag is appended.
    type: str
    default: planned maintenance
  created_by:
    description:
      - The silences' C(createdBy).
    type: str
    default: onprem_ai.maintenance
  username:
    description:
      - User for HTTP basic auth (Alertmanager's C(--web.config.file) C(basic_auth_users), or a reverse proxy).
    type: str
  password:
    description:
      - Password for HTTP basic auth.
    type: str
  bearer_token:
    description:
      - Token sent as C(Authorization) C(Bearer <token>) (a reverse proxy in front of Alertmanager); instead of O(username).
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of an https O(url).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA(s) that signed Alertmanager's certificate, on the host that runs the module.
    type: path
  use_proxy:
    description:
      - Use the proxy of the environment (C(https_proxy), C(no_proxy)).
    type: bool
    default: true
  timeout:
    description:
      - Seconds one request may take, 1 to 300.
    type: int
    default: 10
notes:
  - Runs where Alertmanager is reachable - usually the controller (C(delegate_to=localhost), C(run_once=true)).
  - Now is Alertmanager's clock (the C(Date) header of its answer), so that a controller whose clock is off makes
    neither pending nor short silences; O(starts_at) and O(ends_at) are absolute times.
  - Alertmanager instances in a cluster share silences (gossip); one instance is enough.
  - Uses only the Python standard library. Tested against Alertmanager 0.25 (Debian 12).
seealso:
  - name: Alertmanager silences
    description: Alertmanager's documentation of silences.
    link: https://prometheus.io/docs/alerting/latest/alertmanager/#silences
'''

EXAMPLES = r'''
# A run silences the nodes it works on and ends the silences at the end, also when the run fails:
- name: Maintenance with silenced alerts
  block:
    - name: Silence the nodes of this run for three hours
      onprem_ai.maintenance.alertmanager_silence:
        url: http://mon-1:9093
        tag: "{{ maintenance_run_id }}"
        hosts: "{{ ansible_play_hosts_all }}"
        duration: 3h
        comment: "monthly maintenance by {{ lookup('env', 'USER') }}"
      delegate_to: localhost
      run_once: true

    - name: The work
      ansible.builtin.include_role:
        name: onprem_ai.maintenance.nvidia_driver
  always:
    - name: End the silences of this run (also after a failure)
      onprem_ai.maintenance.alertmanager_silence:
        url: http://mon-1:9093
        tag: "{{ maintenance_run_id }}"
        state: absent
      delegate_to: localhost
      run_once: true

- name: Silence one node's GPU alerts only, behind a proxy with a token
  onprem_ai.maintenance.alertmanager_silence:
    url: https://mon.example.com/alertmanager
    bearer_token: "{{ vault_alertmanager_token }}"
    ca_path: /etc/ssl/certs/internal-ca.pem
    tag: "{{ maintenance_run_id }}"
    hosts: [gpu-3]
    host_label: host
    host_match: exact
    matchers:
      - {name: alertname, value: "GPU.*|NodeDown", op: "=~"}
    ends_at: "2026-12-05T23:30:00Z"
  delegate_to: localhost

- name: Rolling update - this node is done, its silence ends, the others stay
  onprem_ai.maintenance.alertmanager_silence:
    url: http://mon-1:9093
    tag: "{{ maintenance_run_id }}"
    hosts: ["{{ inventory_hostname }}"]
    state: absent
  delegate_to: localhost
'''

RETURN = r'''
silences:
  description: The tagged silences that are not expired, after the change (planned, in check mode - a new one has
    C(id) null) - C(id), C(state) (active, pending), C(matchers) (as C(instance=~"gpu-1(:[0-9]+)?")), C(starts_at),
    C(ends_at), C(comment), C(created_by).
  returned: success
  type: list
  elements: dict
  sample: [{id: 0a71cb82-01fc-46af-b5be-183dabcb69c2, state: active, matchers: ['instance=~"gpu-1(:[0-9]+)?"'],
            starts_at: "2026-12-02T08:23:58.250Z", ends_at: "2026-12-02T11:23:58.000Z",
            comment: "planned maintenance [onprem_ai.maintenance:run-42]", created_by: onprem_ai.maintenance}]
created:
  description: Ids of the silences created (null for each in check mode).
  returned: success, and a failure while changing (what was done before it)
  type: list
  elements: str
extended:
  description: Ids of the silences whose end was moved later.
  returned: success, and a failure while changing
  type: list
  elements: str
expired:
  description: Ids of the silences expired.
  returned: success, and a failure while changing
  type: list
  elements: str
kept:
  description: Ids of wanted silences that were already there and long enough.
  returned: success
  type: list
  elements: str
tag:
  description: The tag as it is written in the comments.
  returned: success
  type: str
  sample: "[onprem_ai.maintenance:run-42]"
alertmanager:
  description: C(url) (without credentials), C(version) and C(cluster_status) of the Alertmanager that answered.
  returned: success
  type: dict
  sample: {url: http://mon-1:9093, version: 0.25.0, cluster_status: disabled}
error_kind:
  description: On failure - C(options), C(unreachable) (no answer), C(refused) (an HTTP error or a redirect),
    C(unreadable) (an answer that cannot be read).
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._alertmanager import ARGUMENT_SPEC, apply
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import Redactor, url_secrets
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule


class _Module(OnpremModule):
    def extra_secrets(self, params):
        return url_secrets(params.get('url')) if isinstance(params.get('url'), str) else []


def main():
    module = _Module(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    redact = Redactor(module.extra_secrets(module.params))
    try:
        result = apply(module.params, check_mode=module.check_mode, redact=redact)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.no_log_values.update(redact.secrets)
        module.fail_json(**failure(exc, redact, 'alertmanager_silence'))
    module.no_log_values.update(redact.secrets)
    if not module._diff:
        result.pop('diff')
    counts = ', '.join('%d %s' % (len(result[k]), k) for k in ('created', 'extended', 'expired') if result[k])
    module.exit_json(msg='silences %s: %s' % (result['tag'], counts or 'unchanged'), **result)


if __name__ == '__main__':
    main()
