#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: haproxy_server
short_description: Drain HAProxy servers until their requests in flight are done, or put them back, in one step
version_added: 0.1.0
description:
  - Takes servers of HAProxy backends out of routing (O(state=drained)) or puts them back (O(state=ready)) through HAProxy's
    runtime API (its stats socket), for all the given servers at once.
  - A drain sets every server to C(DRAIN) (no new request reaches it; those in flight finish), reads C(show stat) every
    O(poll_interval) seconds until the servers' current sessions are 0 - the requests in flight through this HAProxy, for
    any engine behind it, with or without a metrics endpoint - then sets them to C(MAINT). A server that HAProxy's health
    checks already see C(DOWN) is not waited for.
  - Unlike M(community.general.haproxy), which polls one server at a time at whole seconds, the wait ends within
    O(poll_interval) of the last request, which is time the node spends out of routing in a rolling update.
  - O(state=ready) sets the servers to C(ready) and waits until HAProxy shows them serving (C(UP) or C(no check)).
  - Fails closed - a socket that cannot be read, a server that is not there, or requests still in flight at the deadline
    fail the task and name what was seen; a server that stayed in flight is left in C(DRAIN), so no new request reaches it.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the servers' states and reports whether they would change; sends no command that changes them.
  diff_mode:
    support: none
options:
  socket:
    description:
      - HAProxy's runtime API - the path of its stats socket (C(stats socket /run/haproxy/admin.sock level admin)), or
        C(host:port) for a TCP stats socket. The level must allow C(set server).
    type: str
    default: /run/haproxy/admin.sock
  servers:
    description:
      - The servers to change, each by its backend and its server name.
    type: list
    elements: dict
    required: true
    suboptions:
      backend:
        description: Name of the backend.
        type: str
        required: true
      server:
        description: Name of the server in that backend.
        type: str
        required: true
  state:
    description:
      - V(drained) - out of routing once the requests in flight are done (C(MAINT)). V(ready) - back into routing.
    type: str
    required: true
    choices: [drained, ready]
  timeout:
    description:
      - Seconds to wait for the requests in flight (O(state=drained)) or for the servers to serve (O(state=ready)).
    type: int
    default: 60
  poll_interval:
    description:
      - Seconds between two readings of C(show stat) while waiting, from 0.05 to 5.
    type: float
    default: 0.2
  keep_serving:
    description:
      - Refuse a drain that would leave a backend of the servers with no other server that serves.
    type: bool
    default: true
notes:
  - Runs on the HAProxy host (delegate to it); the socket is usually readable by root only.
seealso:
  - module: community.general.haproxy
  - name: HAProxy management guide - set server
    description: The runtime API commands used here.
    link: https://docs.haproxy.org/2.6/management.html#9.3-set%20server
'''

EXAMPLES = r'''
- name: Take gpu-1 out of routing once its requests are done
  onprem_ai.maintenance.haproxy_server:
    socket: /run/haproxy/admin.sock
    servers:
      - {backend: model_llama, server: gpu-1}
      - {backend: model_qwen, server: gpu-1}
    state: drained
    timeout: 120
  delegate_to: gateway-1

- name: Back into routing
  onprem_ai.maintenance.haproxy_server:
    servers: [{backend: model_llama, server: gpu-1}]
    state: ready
  delegate_to: gateway-1
'''

RETURN = r'''
before:
  description: The servers as HAProxy showed them before - C(backend), C(server), C(status), C(sessions) (null when not a
    number), C(weight).
  returned: success
  type: list
  elements: dict
after:
  description: The servers as HAProxy showed them at the end, same keys.
  returned: success
  type: list
  elements: dict
waited:
  description: Seconds from the first command to the servers' final state (0 when nothing changed).
  returned: success
  type: float
  sample: 1.62
error_kind:
  description: On failure - C(unreadable) (no answer from the socket), C(not_found) (no such server), C(refused)
    (HAProxy refused a command, or the drain would leave a backend without a serving server), C(busy) (requests still
    in flight, or not serving, at the deadline), C(options).
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._haproxy import RuntimeApi, drain, ready
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule

ARGUMENT_SPEC = dict(
    socket=dict(type='str', default='/run/haproxy/admin.sock'),
    servers=dict(type='list', elements='dict', required=True, options=dict(
        backend=dict(type='str', required=True),
        server=dict(type='str', required=True),
    )),
    state=dict(type='str', required=True, choices=['drained', 'ready']),
    timeout=dict(type='int', default=60),
    poll_interval=dict(type='float', default=0.2),
    keep_serving=dict(type='bool', default=True),
)


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if not params['servers']:
        module.fail_json(msg='servers is empty: name at least one backend/server', error_kind='options')
    if not 1 <= params['timeout'] <= 86400:
        module.fail_json(msg='timeout must be 1 to 86400 seconds, not %s' % params['timeout'], error_kind='options')
    if not 0.05 <= params['poll_interval'] <= 5:
        module.fail_json(msg='poll_interval must be 0.05 to 5 seconds, not %s' % params['poll_interval'], error_kind='options')
    api = RuntimeApi(params['socket'], timeout=10.0)
    try:
        if params['state'] == 'drained':
            result = drain(api, params['servers'], params['timeout'], params['poll_interval'], params['keep_serving'],
                           module.check_mode)
        else:
            result = ready(api, params['servers'], params['timeout'], params['poll_interval'], module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(**failure(exc, None, 'haproxy_server'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
