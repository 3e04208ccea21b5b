#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: service_health
short_description: Wait for a just started service's health endpoint, giving up at once when its systemd unit crashes
version_added: 0.1.0
description:
  - Asks O(url) every O(delay) seconds until it answers HTTP 200 or O(timeout) seconds are over - the health wait of an
    inference engine after an update (the model_server role).
  - With O(unit), systemd's view of the service is read every second in between (C(systemctl show) - LoadState,
    ActiveState, SubState, Result, NRestarts, the main process' last exit), and the wait gives up at once when the
    unit failed, is not running any more, or its main process exited more than O(max_restarts) times since the wait
    began (NRestarts grown, or SubState C(auto-restart)) - a release that exits at once is given up on within seconds
    instead of after the whole O(timeout) (which covers a model that takes minutes to load).
  - Unknown is never running - a unit whose state cannot be read (no C(systemctl), a property missing or not a number)
    fails the module with C(error_kind=unreadable) and a message naming what could not be read.
  - An unhealthy service does not fail the module - RV(healthy) and RV(verdict) say what was seen, so that the caller
    can roll back and report. Read-only - it changes nothing.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.attributes.INFO_MODULE
options:
  url:
    description:
      - The health endpoint (for example C(http://127.0.0.1:8000/health)). Redirects are not followed.
    type: str
    required: true
  unit:
    description:
      - The systemd unit of the service (C(model-server.service)). Without it only O(url) is asked (a container).
    type: str
  timeout:
    description:
      - Seconds the endpoint has to answer 200, 1 to 86400.
    type: int
    default: 600
  delay:
    description:
      - Seconds between two requests to O(url), 1 to 3600.
    type: int
    default: 5
  request_timeout:
    description:
      - Seconds one request may take, 1 to 600.
    type: int
    default: 5
  max_restarts:
    description:
      - How many times the unit's main process may exit (and be restarted by systemd) during the wait before it is
        given up on. 0 - the first exit gives up.
    type: int
    default: 0
  validate_certs:
    description:
      - Verify the TLS certificate of an https O(url).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: The engine is healthy, or crashed and given up on within seconds
  onprem_ai.maintenance.service_health:
    url: http://127.0.0.1:8000/health
    unit: model-server.service
    timeout: 600
    delay: 5
  register: engine_health

- name: Fail with what was seen
  ansible.builtin.assert:
    that: engine_health.healthy
    fail_msg: "{{ engine_health.msg }}"
'''

RETURN = r'''
healthy:
  description: Whether O(url) answered 200.
  returned: success
  type: bool
verdict:
  description: C(healthy), C(crashed) (the unit, given up on before the timeout) or C(timeout).
  returned: success
  type: str
  sample: crashed
msg:
  description: What was seen - the time waited, and for C(crashed) the unit's state that made the wait give up.
  returned: always
  type: str
  sample: >-
    gave up after 1.2 s, before the 600 s health timeout: model-server.service is crash-looping: its main process
    exited 1 time since the start (ActiveState activating, SubState auto-restart, Result exit-code, NRestarts 0,
    last exit status 1)
status:
  description: The HTTP status of the last request, null when none answered.
  returned: success
  type: int
elapsed:
  description: Seconds waited.
  returned: success
  type: float
tries:
  description: Requests sent to O(url).
  returned: success
  type: int
unit_state:
  description: The unit's properties at the last read (empty without O(unit)).
  returned: success
  type: dict
  sample: {LoadState: loaded, ActiveState: activating, SubState: auto-restart, Result: exit-code, NRestarts: "0",
           ExecMainCode: "1", ExecMainStatus: "1"}
error_kind:
  description: On failure - C(options), C(unreadable) (the unit's state).
  returned: failure
  type: str
'''

import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._service_health import (
    PROPERTIES, HealthError, parse_show, wait)

ARGUMENT_SPEC = dict(
    url=dict(type='str', required=True),
    unit=dict(type='str'),
    timeout=dict(type='int', default=600),
    delay=dict(type='int', default=5),
    request_timeout=dict(type='int', default=5),
    max_restarts=dict(type='int', default=0),
    validate_certs=dict(type='bool', default=True),
)
LIMITS = dict(timeout=(1, 86400), delay=(1, 3600), request_timeout=(1, 600), max_restarts=(0, 100))


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        for name, (low, high) in LIMITS.items():
            if not low <= params[name] <= high:
                raise OnpremError('%s must be %d to %d, not %d' % (name, low, high, params[name]), 'options')
        if not params['url'].startswith(('http://', 'https://')):
            raise OnpremError('url must be an http:// or https:// URL', 'options')
        unit = params['unit']
        runner = Runner(module)
        systemctl = runner.which('systemctl') if unit else None
        if unit and not systemctl:
            raise HealthError('Cannot read the state of %s: systemctl is not on this host' % unit)

        def probe():
            try:
                response = open_url(params['url'], timeout=params['request_timeout'], follow_redirects='none',
                                    validate_certs=params['validate_certs'], use_proxy=False)
                return response.getcode(), 'HTTP %d' % response.getcode()
            except HTTPError as exc:
                return exc.code, 'HTTP %d' % exc.code
            except (URLError, OSError, ValueError) as exc:
                return None, str(getattr(exc, 'reason', exc))

        def read_unit():
            rc, out, err = runner.execute([systemctl, 'show', unit, '--property', ','.join(PROPERTIES)], env={'LC_ALL': 'C'})
            if rc != 0:
                raise HealthError('Cannot read the state of %s: systemctl show exited %d (%s)' % (unit, rc, err.strip()))
            return parse_show(out, unit)

        result = wait(probe, read_unit, params['timeout'], params['delay'], params['max_restarts'], unit,
                      clock=time.monotonic, sleep=time.sleep)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(**failure(exc, None, 'service_health'))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
