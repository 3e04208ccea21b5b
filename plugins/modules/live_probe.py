#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: live_probe
short_description: A bounded live probe through the gateway during a maintenance run, and its abort verdict
version_added: 0.1.0
description:
  - O(state=started) launches a detached background process that sends real OpenAI-API chat completions (plain and
    streamed, alternating) through the gateway at O(rate) per second, at most O(concurrency) at a time, and records
    each second in O(path) - requests sent, ok, failed, truncated streams and the latencies of the ok ones.
  - The process is bounded - no request starts after O(max_seconds) or O(max_requests) (hard limits 12 hours and
    1000000), and a watchdog ends it O(timeout) + 10 s after its deadline whatever hangs.
  - O(state=status) returns the verdict a rolling update asks before each step - C(abort) when the error rate or the p99
    latency of the last O(window) seconds crosses O(max_error_rate) or O(max_p99_ms), and also whenever the probe data
    cannot be read for sure (unreadable files, the process gone or ended, stale data, too few requests) - unknown is
    never C(ok). The task itself does not fail on C(abort); the caller reads RV(verdict).
  - O(state=mark) records a named mark; O(state=stopped) stops the probe and returns the whole timeline with the
    figures before, during and after the maintenance (between two marks; every C(status) call is a mark too).
  - The API key is kept in the probe's memory only (the probe is a fork of the module); it is never written to disk.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - C(started) and C(stopped) report what they would do; C(status) reads and gives its verdict but records no mark.
  diff_mode:
    support: none
options:
  state:
    description:
      - V(started) launches the probe (unchanged when one already runs in O(path)), V(status) gives the verdict,
        V(mark) records a mark, V(stopped) ends the probe and returns its summary.
    type: str
    choices: [started, status, stopped, mark]
    default: status
  path:
    description:
      - The probe's directory (created 0700; its files 0600). One probe per directory.
    type: path
    required: true
  url:
    description:
      - The gateway's OpenAI-compatible base URL (V(http://gw:4000) or V(http://gw:4000/v1)). Required with
        O(state=started). User info in it is never sent (give O(api_key)).
    type: str
  api_key:
    description:
      - The key the gateway wants (LiteLLM master or virtual key, vLLM C(--api-key)).
    type: str
  api_key_header:
    description:
      - Header of the key; V(Authorization) sends C(Bearer <key>), any other header the bare key.
    type: str
    default: Authorization
  model:
    description:
      - The model name to ask. Required with O(state=started).
    type: str
  prompt:
    description:
      - The user message of every request.
    type: str
    default: 'Answer with one word: ready?'
  max_tokens:
    description:
      - C(max_tokens) of every request (1-4096).
    type: int
    default: 8
  modes:
    description:
      - Plain and/or streamed completions, taken in turn.
    type: list
    elements: str
    choices: [plain, stream]
    default: [plain, stream]
  rate:
    description:
      - Requests started per second (0.01-50).
    type: float
    default: 2.0
  concurrency:
    description:
      - Requests in flight at most (1-32).
    type: int
    default: 4
  max_requests:
    description:
      - The probe sends at most this many requests (1-1000000).
    type: int
    default: 20000
  max_seconds:
    description:
      - No request starts after this many seconds (1-43200).
    type: int
    default: 3600
  timeout:
    description:
      - Seconds one request may take (1-600); a stream not ended by then is truncated.
    type: int
    default: 30
  validate_certs:
    description:
      - Verify the gateway's TLS certificate.
    type: bool
    default: true
  use_proxy:
    description:
      - Use the proxy of the environment (C(https_proxy), ...).
    type: bool
    default: true
  window:
    description:
      - Seconds of the timeline the O(state=status) verdict looks at (1-3600).
    type: int
    default: 30
  max_error_rate:
    description:
      - C(abort) when more than this share (0-1) of the requests completed in the window failed.
    type: float
    default: 0.05
  max_p99_ms:
    description:
      - C(abort) when the p99 latency of the ok requests in the window is above this; V(0) does not check the latency.
    type: float
    default: 5000.0
  min_requests:
    description:
      - C(abort) when fewer requests completed in the window (the figures would say nothing).
    type: int
    default: 5
  wait:
    description:
      - With O(state=status) on a probe younger than O(window), seconds to wait for its window to fill before giving
        C(abort) (default O(window)).
    type: int
  mark:
    description:
      - The name of the mark for O(state=mark).
    type: str
  during:
    description:
      - With O(state=stopped), the maintenance's start and end - two mark names (their last occurrence), Unix seconds or
        RFC 3339 times with a zone. Default - the first and the last mark (C(status) calls included).
    type: list
    elements: str
  stop_timeout:
    description:
      - Seconds O(state=stopped) waits for the probe to end its requests in flight before it kills it (1-600).
    type: int
    default: 30
  timeline:
    description:
      - Return the per-second timeline with O(state=stopped).
    type: bool
    default: true
notes:
  - Run it where the gateway is reached as clients reach it - the controller (C(delegate_to=localhost)) or a gateway
    host - and keep O(path) on a local disk of that host.
  - Requests are real completions - size O(rate) and O(max_tokens) for the fleet.
seealso:
  - module: onprem_ai.maintenance.inference_check
  - module: onprem_ai.maintenance.alertmanager_silence
'''

EXAMPLES = r'''
- name: Start the live probe through the gateway
  onprem_ai.maintenance.live_probe:
    state: started
    path: /var/tmp/onprem_ai_probe/{{ maintenance_run_id }}
    url: http://gateway.example:4000
    api_key: "{{ litellm_master_key }}"
    model: llama-3-8b
    rate: 2
    max_seconds: 14400
  delegate_to: localhost
  run_once: true

- name: Before each batch - may the run go on?
  onprem_ai.maintenance.live_probe:
    state: status
    path: /var/tmp/onprem_ai_probe/{{ maintenance_run_id }}
    max_error_rate: 0.02
    max_p99_ms: 3000
  delegate_to: localhost
  run_once: true
  register: probe

- name: Stop starting new steps
  ansible.builtin.fail:
    msg: "live probe: {{ probe.reason }}"
  when: probe.verdict != 'ok'

- name: Stop it and keep the timeline for the report
  onprem_ai.maintenance.live_probe:
    state: stopped
    path: /var/tmp/onprem_ai_probe/{{ maintenance_run_id }}
  delegate_to: localhost
  run_once: true
  register: probe_summary
'''

RETURN = r'''
verdict:
  description: C(ok) or C(abort) (O(state=status); also O(state=stopped) when the data cannot be read).
  returned: state is status
  type: str
  sample: abort
reason:
  description: Why - the figures that decided, or what could not be read.
  returned: state is status
  type: str
  sample: error rate 12.0% in the last 30 s (6 of 50 failed, 2 truncated) is above 5.0%
window:
  description: >-
    Figures of the window - seconds, sent, ok, failed, truncated, completed, error_rate, p50_ms, p99_ms, errors
    (reasons with counts); null when the data cannot be read.
  returned: state is status
  type: dict
totals:
  description: The same figures over the whole probe.
  returned: state is status
  type: dict
thresholds:
  description: The thresholds the verdict used.
  returned: state is status
  type: dict
running:
  description: Whether the probe process runs.
  returned: always
  type: bool
pid:
  description: The probe's process id.
  returned: state is started
  type: int
summary:
  description: >-
    With O(state=stopped) - started, ended, end_reason, url, model, totals, marks, during (start, end), phases
    (before, during, after - each with the figures above) and timeline (per second - t, sent, ok, failed, truncated,
    p50_ms, p99_ms); null when there was no probe.
  returned: state is stopped
  type: dict
error_kind:
  description: On failure - C(options), C(start), C(stop), C(write), C(missing).
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import Redactor, url_secrets
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._probe import ARGUMENT_SPEC, apply


class _Module(OnpremModule):
    def extra_secrets(self, params):
        return url_secrets(params.get('url'))


def main():
    module = _Module(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    redact = Redactor(module.extra_secrets(module.params))
    try:
        result = apply(module.params, check_mode=module.check_mode, redact=redact)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.no_log_values.update(redact.secrets)
        module.fail_json(**failure(exc, redact, 'live_probe'))
    module.no_log_values.update(redact.secrets)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
