#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: inference_check
short_description: Functional, integration and performance checks of an OpenAI-compatible inference endpoint
version_added: 0.1.0
description:
  - The gate of every update strategy (rolling, canary, blue-green) and the source of a report's validation section.
    Talks HTTP to one endpoint - a backend (vLLM, Ollama's OpenAI API, llama.cpp's C(llama-server)) or the LiteLLM
    gateway - and returns one result per check with its figures and the reason it passed or failed.
  - C(functional) - the expected O(models) are listed by C(GET /v1/models); a chat completion answers with a well-formed
    result, plain and streamed (SSE) as O(streaming) says - choices, message or delta content, a C(finish_reason), usage
    where given. A stream that ends without C([DONE]) or without a C(finish_reason), or is cut, is a failed check called
    truncated. Optionally the answer must match O(expected_content) or O(expected_json_schema).
  - C(integration) - every backend of the model group (O(backends), or the deployments of O(model) in the LiteLLM
    O(gateway_config)) answers directly, and each is reached through the gateway at O(url) within O(gateway_attempts)
    requests. Which backend answered is read from LiteLLM's C(x-litellm-model-id) and C(x-litellm-model-api-base)
    response headers; a backend with a deployment id that is not among those answers (a canary at a small weight) is
    then asked for by its id. A backend that answers directly but not through the gateway is named in
    RV(unreachable_through_gateway); the model group's own answers through the gateway are one more check.
  - C(performance) - a bounded run (O(performance.count) requests, O(performance.concurrency) at a time, none started
    after O(performance.time_limit) seconds) measuring time to first token, p50 / p95 / p99 latency, tokens/s and the
    error rate. O(baseline=save) writes the figures to O(baseline_path) (JSON, mode 0600) before an update;
    O(baseline=compare) reads them after it and checks each figure against O(tolerances).
  - Unknown is never none - an answer that cannot be read (not JSON, a field missing, a cut stream, a header that does not
    say which backend answered, a baseline that cannot be read) is a failed check whose reason says what could not be
    read.
  - Secrets - O(api_key), O(backend_api_key), O(backends[].api_key) and credentials inside URLs are masked in every
    output, also when a server echoes them in an error body. Redirects are not followed (they would carry the key).
  - By default the module fails when a check fails (O(fail_on_failed_check)); the result keeps every check's figures.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs the same read-only checks (it sends real requests, which change nothing on the servers); O(baseline=save)
        reports that it would save and writes nothing.
  diff_mode:
    support: none
options:
  url:
    description:
      - Base URL of the endpoint under test, with or without C(/v1) (C(http://gpu-1:8000), C(http://gateway:4000/v1)).
      - For the integration check, the gateway.
      - Credentials in the URL are masked in the output but not sent - give O(api_key).
    type: str
    required: true
  api_key:
    description:
      - Key for O(url) - vLLM's C(--api-key), llama.cpp's C(--api-key), a LiteLLM master or virtual key. Ollama ignores it.
    type: str
  api_key_header:
    description:
      - Header that carries the keys. C(Authorization) sends C(Bearer <key>); any other name (C(x-litellm-api-key),
        C(X-Api-Key)) sends the key as it is.
    type: str
    default: Authorization
  model:
    description:
      - Model (for the gateway, the model group) that the completions ask for. Default the first of O(models).
    type: str
  models:
    description:
      - Model names that C(GET /v1/models) must list (Ollama names carry a tag, for example C(llama3:8b)).
    type: list
    elements: str
    default: []
  checks:
    description:
      - Which checks to run.
    type: list
    elements: str
    choices: [functional, integration, performance]
    default: [functional]
  prompt:
    description:
      - The user message of every completion.
    type: str
    default: Say OK.
  max_tokens:
    description:
      - C(max_tokens) of every completion, 1 to 4096.
    type: int
    default: 16
  streaming:
    description:
      - Which completions the functional check sends - C(both) a plain and a streamed one, or only one kind.
    type: str
    choices: [both, plain, stream]
    default: both
  stream_include_usage:
    description:
      - Ask for usage in streams (C(stream_options.include_usage)); vLLM sends usage in a stream only when asked.
    type: bool
    default: true
  expected_content:
    description:
      - A regular expression (Python C(re.search), dot matches newlines) the answer's content must match.
    type: str
  expected_json_schema:
    description:
      - A JSON schema the answer's content, parsed as JSON (a C(```json) fence is allowed), must match.
      - Validated with C(jsonschema) where it is installed on the host that runs the check; otherwise with a subset -
        C(type), C(required), C(properties), C(items), C(enum) and C(additionalProperties=false).
    type: dict
  timeout:
    description:
      - Seconds one request may take, 1 to 3600 (a stream - until its end).
    type: int
    default: 30
  validate_certs:
    description:
      - Verify TLS certificates of https URLs.
    type: bool
    default: true
  use_proxy:
    description:
      - Use the proxy of the environment (C(https_proxy), C(no_proxy)).
    type: bool
    default: true
  backends:
    description:
      - The backends of the model group, for the integration check. Without it, O(gateway_config) is read.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name in the results. Default O(backends[].id), else the URL.
        type: str
      id:
        description:
          - The deployment's C(model_info.id) in the gateway config. The gateway's answers are attributed to this backend
            by it (C(x-litellm-model-id)) or by the URL (C(x-litellm-model-api-base)); a backend not seen among the
            model group's answers is asked for by this id (LiteLLM routes a request for a deployment id to that
            deployment).
        type: str
      url:
        description:
          - The backend's base URL (its C(api_base) in the gateway config).
        type: str
        required: true
      model:
        description:
          - The model name the backend itself serves (LiteLLM's C(litellm_params.model) without the provider prefix).
            Default O(model).
        type: str
      api_key:
        description:
          - Key for this backend. Default O(backend_api_key).
        type: str
  backend_api_key:
    description:
      - Key for the backends (the value behind the gateway config's C(os.environ/...) reference).
    type: str
  gateway_config:
    description:
      - A LiteLLM C(config.yaml) on the host that runs the check (the gateway, with C(delegate_to)); the deployments whose
        C(model_name) is O(model) are the backends (C(model_info.id) the name, C(api_base) the URL, C(litellm_params.model)
        without its provider prefix the model). Keys in it are never read. Needs PyYAML.
    type: path
  gateway_attempts:
    description:
      - At most this many requests through the gateway to see every backend answer, 1 to 1000.
    type: int
    default: 20
  performance:
    description:
      - The bounded run of the performance check.
    type: dict
    suboptions:
      count:
        description: Requests in all, 1 to 10000.
        type: int
        default: 20
      concurrency:
        description: Requests at a time, 1 to 64.
        type: int
        default: 4
      time_limit:
        description: No request starts after this many seconds, 1 to 3600; requests not started are counted in RV(figures).
        type: int
        default: 60
      stream:
        description: Streamed requests (measures the time to first token) or plain ones.
        type: bool
        default: true
  baseline:
    description:
      - C(save) writes the performance figures to O(baseline_path) (mode 0600), only from a run without errors;
        C(compare) reads them and compares. A missing or unreadable baseline fails the comparison.
    type: str
    choices: [none, save, compare]
    default: none
  baseline_path:
    description:
      - The baseline file on the host that runs the check (the controller with C(delegate_to=localhost), or the node).
    type: path
  tolerances:
    description:
      - Limits of O(baseline=compare). A latency passes when it is at most the baseline times its ratio, or the baseline
        plus O(tolerances.latency_slack_ms), whichever is larger (small baselines are noisy).
    type: dict
    suboptions:
      p50_ratio:
        description: p50 latency at most this times the baseline's, 1 to 100.
        type: float
        default: 1.5
      p99_ratio:
        description: p99 latency at most this times the baseline's, 1 to 100.
        type: float
        default: 1.5
      ttft_ratio:
        description: p95 time to first token at most this times the baseline's, 1 to 100.
        type: float
        default: 1.5
      min_tokens_per_s_ratio:
        description:
          - Tokens/s at least this times the baseline's, 0 to 1 - or, when lower, the baseline's tokens/s had each of its
            requests been O(tolerances.latency_slack_ms) slower (the same noise allowance as the latencies).
        type: float
        default: 0.5
      max_error_rate:
        description: The run's error rate at most this, 0 to 1 (also checked without a baseline).
        type: float
        default: 0.0
      latency_slack_ms:
        description: Milliseconds a latency may exceed the baseline in any case, 0 to 60000.
        type: int
        default: 50
  fail_on_failed_check:
    description:
      - Fail the task when a check fails (the failure carries the same RV(checks)). With C(false), read RV(passed).
    type: bool
    default: true
notes:
  - Runs where the endpoint is reachable - on the controller, or on a node with C(delegate_to).
  - Uses only the Python standard library (and PyYAML for O(gateway_config), C(jsonschema) when installed).
seealso:
  - module: onprem_ai.maintenance.litellm_config
'''

EXAMPLES = r'''
- name: Before the update - the backend works and its figures are kept
  onprem_ai.maintenance.inference_check:
    url: "http://{{ inventory_hostname }}:8000"
    api_key: "{{ vault_vllm_key }}"
    models: [llama-3.1-8b-instruct]
    checks: [functional, performance]
    performance: {count: 40, concurrency: 4, time_limit: 60}
    baseline: save
    baseline_path: "/var/lib/onprem_ai/baseline-{{ inventory_hostname }}.json"
  delegate_to: localhost

- name: After the update - same checks, compared with the baseline
  onprem_ai.maintenance.inference_check:
    url: "http://{{ inventory_hostname }}:8000"
    api_key: "{{ vault_vllm_key }}"
    models: [llama-3.1-8b-instruct]
    checks: [functional, performance]
    performance: {count: 40, concurrency: 4, time_limit: 60}
    baseline: compare
    baseline_path: "/var/lib/onprem_ai/baseline-{{ inventory_hostname }}.json"
    tolerances: {p99_ratio: 1.5, max_error_rate: 0.0}
  delegate_to: localhost

- name: Through the gateway to every backend of the model group (read from the gateway's config)
  onprem_ai.maintenance.inference_check:
    url: http://127.0.0.1:4000
    api_key: "{{ vault_litellm_master_key }}"
    model: llama-3.1-8b-instruct
    checks: [functional, integration]
    gateway_config: /etc/litellm/config.yaml
    backend_api_key: "{{ vault_vllm_key }}"
    expected_content: "\\S"
  delegate_to: "{{ groups['gateways'][0] }}"
  register: gateway_check
'''

RETURN = r'''
passed:
  description: Every check passed.
  returned: always
  type: bool
checks:
  description: One entry per check - C(name), C(kind) (functional, integration, performance), C(target), C(passed),
    C(reason) (why, with the figures that decided it) and C(figures) where there are some.
  returned: always
  type: list
  elements: dict
  sample: [{name: chat completion (streamed), kind: functional, target: http://gpu-1:8000/v1, passed: false,
            reason: "streamed chat completion: truncated, the stream ended without [DONE] after 5 chunks"}]
failed_checks:
  description: Names of the failed checks.
  returned: always
  type: list
  elements: str
unreachable_through_gateway:
  description: Backends not reached through the gateway (the integration check), by name.
  returned: always
  type: list
  elements: str
url:
  description: The endpoint checked (its C(/v1) base, without credentials).
  returned: always
  type: str
model:
  description: The model the completions asked for.
  returned: always
  type: str
figures:
  description: The performance run - C(requests), C(ok), C(errors), C(truncated), C(not_started), C(wall_s),
    C(error_rate), C(latency_p50_ms) / C(latency_p95_ms) / C(latency_p99_ms), C(ttft_p50_ms) / C(ttft_p95_ms) /
    C(ttft_p99_ms), C(completion_tokens), C(tokens_per_s), C(token_source) (C(usage), or C(chunks) when a stream gave no
    usage) and C(settings).
  returned: when the performance check ran
  type: dict
baseline:
  description: C(mode), C(path), and C(saved), or the baseline's C(captured) time and C(figures).
  returned: when the performance check ran
  type: dict
error_kind:
  description: On failure - C(check_failed) (a check failed; the result holds every check), C(options), C(unreadable)
    (the gateway config), C(write) (the baseline), C(missing_library).
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import ARGUMENT_SPEC, Redactor, run_checks, url_secrets
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule


class _Module(OnpremModule):
    """URL credentials masked besides the no_log options."""

    def extra_secrets(self, params):
        backends = params.get('backends') if isinstance(params.get('backends'), list) else []
        urls = [params.get('url')] + [b.get('url') for b in backends if isinstance(b, dict)]
        return [s for u in urls if isinstance(u, str) for s in url_secrets(u)]


def main():
    module = _Module(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    redact = Redactor(module.extra_secrets(module.params))
    try:
        result = run_checks(module.params, check_mode=module.check_mode, redact=redact)
        module.no_log_values.update(redact.secrets)
        if not result['passed'] and module.params['fail_on_failed_check']:
            failed = [c for c in result['checks'] if not c['passed']]
            reasons = '; '.join('%s: %s' % (c['name'], c['reason']) for c in failed)
            details = dict((k, v) for k, v in result.items() if k != 'changed')
            raise OnpremError('%d of %d checks failed: %s' % (len(failed), len(result['checks']), reasons),
                              error_kind='check_failed', changed=result['changed'], **details)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.no_log_values.update(redact.secrets)
        module.fail_json(**failure(exc, redact, 'inference_check'))
    module.exit_json(msg='%d checks passed' % len(result['checks']) if result['passed'] else
                     '%d of %d checks failed' % (len(result['failed_checks']), len(result['checks'])), **result)


if __name__ == '__main__':
    main()
