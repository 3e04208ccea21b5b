# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_inference against loopback peers: the lab inference server (in a thread, tests/lab/inference_server/inproc.py)
and small hostile fakes (malformed JSON, streams cut or unfinished, a 500 that echoes the key, a slow first token,
a gateway that never routes to one backend)."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _inference as inf

ROOT = Path(__file__).resolve().parents[4]
_SPEC = importlib.util.spec_from_file_location('lab_inproc', str(ROOT / 'tests' / 'lab' / 'inference_server' / 'inproc.py'))
inproc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(inproc)

KEY = 'sk-unit-Secret-7f3a9c'
FAST = ('--first-token-latency-ms', '1', '--token-interval-ms', '1', '--tokens', '4')


def params(url=None, **over):
    """The module's defaults (one source: _inference.ARGUMENT_SPEC), a short timeout, no proxy."""
    return inf.with_defaults(**dict({'url': url, 'model': 'llama-3-8b', 'timeout': 5, 'use_proxy': False}, **over))


def by_name(result):
    return {c['name']: c for c in result['checks']}


# ----- hostile fakes ---------------------------------------------------------------------------------------------
class Fake(http.server.BaseHTTPRequestHandler):
    """Answers as `self.server.mode` says; `self.server.seen` records the Authorization headers."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def _send(self, status, body, ctype='application/json', headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name
        mode = self.server.mode
        if mode == 'models_not_json':
            self._send(200, b'<html>gateway error</html>', 'text/html')
        elif mode == 'models_no_data':
            self._send(200, {'object': 'list'})
        else:
            self._send(200, {'object': 'list', 'data': [{'id': 'other-model'}]})

    def do_POST(self):  # pylint: disable=invalid-name
        body = json.loads(self.rfile.read(int(self.headers.get('Content-Length') or 0)) or b'{}')
        self.server.seen.append(self.headers.get('Authorization'))
        self.server.api_keys.append(self.headers.get('X-Api-Key'))
        mode = self.server.mode
        if mode == 'malformed_json':
            self._send(200, b'{"choices": [{"message": {"content": "hi"', 'application/json')
        elif mode == 'echo_500':
            self._send(500, {'error': {'message': 'upstream rejected key %s' % self.headers.get('Authorization')}})
        elif mode == 'no_choices':
            self._send(200, {'id': 'x', 'object': 'chat.completion', 'choices': []})
        elif mode == 'redirect':
            self._send(307, b'', headers={'Location': 'http://127.0.0.2:9/v1/chat/completions'})
        elif mode == 'gateway':
            # a LiteLLM-like gateway that only ever routes to gpu-1
            answer = {'choices': [{'message': {'role': 'assistant', 'content': 'OK'}, 'finish_reason': 'stop'}]}
            self._send(200, answer, headers={'x-litellm-model-id': 'gpu-1', 'x-litellm-model-api-base': self.server.gpu1})
        elif mode == 'gateway_by_id':
            # the model group always lands on gpu-1; a request for a deployment id lands on that deployment
            target = body.get('model') if body.get('model') in ('gpu-1', 'gpu-2') else 'gpu-1'
            answer = {'choices': [{'message': {'role': 'assistant', 'content': 'OK'}, 'finish_reason': 'stop'}]}
            self._send(200, answer, headers={'x-litellm-model-id': target})
        elif mode == 'reasoning_only' and not body.get('stream'):
            self._send(200, {'choices': [{'message': {'role': 'assistant', 'content': None, 'reasoning_content': 'Hmm'},
                                          'finish_reason': 'length'}]})
        elif mode == 'gateway_silent':
            self._send(200, {'choices': [{'message': {'role': 'assistant', 'content': 'OK'}, 'finish_reason': 'stop'}]})
        elif body.get('stream'):
            self._stream(mode)
        else:
            self._send(200, {'choices': [{'message': {'role': 'assistant', 'content': 'OK'}, 'finish_reason': 'stop'}],
                             'usage': {'prompt_tokens': 3, 'completion_tokens': 1, 'total_tokens': 4}})

    def _stream(self, mode):
        def chunk(obj):
            return ('data: %s\n\n' % json.dumps(obj)).encode()

        delta = chunk({'choices': [{'index': 0, 'delta': {'content': ' tok'}, 'finish_reason': None}]})
        finish = chunk({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})
        if mode == 'cut_chunked':
            self.send_response(200)
            self.send_header('Content-Type', 'text/event-stream')
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            for _index in range(2):
                self.wfile.write(b'%x\r\n%s\r\n' % (len(delta), delta))
            self.wfile.write(b'40\r\ndata: {"choi')  # announced 64 bytes, sent 15, then gone
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True
        if mode == 'slow_first_token':
            time.sleep(0.3)
        thinking = chunk({'choices': [{'index': 0, 'delta': {'reasoning_content': 'Hmm'}, 'finish_reason': None}]})
        cut = chunk({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'length'}]})
        parts = {'reasoning_only': [thinking, cut, b'data: [DONE]\n\n'],
                 'cut_eof': [delta, delta],
                 'no_finish': [delta, b'data: [DONE]\n\n'],
                 'bad_chunk': [delta, b'data: {not json\n\n'],
                 'error_chunk': [delta, chunk({'error': {'message': 'engine died, key %s' % self.headers.get('Authorization')}})],
                 }.get(mode, [delta, delta, finish, b'data: [DONE]\n\n'])
        for part in parts:
            self.wfile.write(part)
            self.wfile.flush()


@contextlib.contextmanager
def fake(mode, **extra):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Fake)
    server.daemon_threads = True
    server.mode, server.seen, server.api_keys = mode, [], []
    for key, value in extra.items():
        setattr(server, key, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1], server
    finally:
        server.shutdown()
        server.server_close()


# ----- functional ------------------------------------------------------------------------------------------------
def test_lab_server_passes_every_functional_check_with_the_key_sent():
    with inproc.lab_server('--api-key', KEY, *FAST) as (url, _lab):
        result = inf.run_checks(params(url, api_key=KEY, models=['llama-3-8b'], expected_content=r'tok'))
    assert result['passed'], result
    checks = by_name(result)
    assert set(checks) == {'models listed', 'chat completion', 'chat completion (streamed)'}
    stream = checks['chat completion (streamed)']['figures']
    assert stream['usage']['completion_tokens'] == 4 and stream['ttft_ms'] >= 0
    assert result['changed'] is False and result['figures'] is None


def test_wrong_key_is_a_failed_check_that_does_not_show_the_key():
    with inproc.lab_server('--api-key', 'the-right-key', *FAST) as (url, _lab):
        result = inf.run_checks(params(url, api_key=KEY, models=['llama-3-8b']))
    assert not result['passed']
    assert 'HTTP 401' in by_name(result)['models listed']['reason']
    assert KEY not in json.dumps(result)


def test_missing_model_is_named():
    with inproc.lab_server(*FAST) as (url, _lab):
        result = inf.run_checks(params(url, models=['llama-3-8b', 'mistral-7b']))
    assert by_name(result)['models listed']['reason'].startswith('not listed: mistral-7b')


@pytest.mark.parametrize('mode, words', [('models_not_json', 'not JSON'), ('models_no_data', 'no `data` list'),
                                         ('other', 'not listed: llama-3-8b')])
def test_an_unreadable_model_list_fails(mode, words):
    with fake(mode) as (url, _server):
        result = inf.run_checks(params(url, models=['llama-3-8b'], streaming='plain'))
    assert not by_name(result)['models listed']['passed']
    assert words in by_name(result)['models listed']['reason']


@pytest.mark.parametrize('mode, stream, words', [
    ('malformed_json', False, 'not JSON'),
    ('no_choices', False, 'no choices'),
    ('cut_eof', True, 'truncated, the stream ended without [DONE] after 2 chunks'),
    ('cut_chunked', True, 'truncated, the stream was cut'),
    ('no_finish', True, 'truncated, the stream ended without a finish_reason'),
    ('bad_chunk', True, 'a chunk is not JSON'),
    ('redirect', False, 'HTTP 307'),
])
def test_hostile_answers_are_failed_checks_with_what_could_not_be_read(mode, stream, words):
    with fake(mode) as (url, _server):
        result = inf.run_checks(params(url, streaming='stream' if stream else 'plain'))
    (only,) = result['checks']
    assert only['passed'] is False and words in only['reason'], only
    assert result['failed_checks'] == [only['name']]


@pytest.mark.parametrize('mode, streaming', [('echo_500', 'plain'), ('error_chunk', 'stream')])
def test_a_key_echoed_by_the_server_is_masked(mode, streaming):
    with fake(mode) as (url, server):
        result = inf.run_checks(params(url, api_key=KEY, streaming=streaming))
    assert server.seen == ['Bearer %s' % KEY]
    text = json.dumps(result)
    assert KEY not in text and inf.MASK in text and not result['passed']


def test_another_key_header_carries_the_key_as_it_is():
    with fake('echo_500') as (url, server):
        result = inf.run_checks(params(url, api_key=KEY, api_key_header='X-Api-Key', streaming='plain'))
    assert server.api_keys == [KEY] and server.seen == [None] and KEY not in json.dumps(result)


def test_credentials_in_the_url_are_masked_and_not_sent():
    with fake('echo_500') as (url, server):
        result = inf.run_checks(params(url.replace('http://', 'http://user:pw-Secret-91@'), streaming='plain'))
    assert 'pw-Secret-91' not in json.dumps(result) and server.seen == [None]
    assert 'answered HTTP 500' in result['checks'][0]['reason']


def test_a_reasoning_model_that_only_reasoned_is_well_formed():
    with fake('reasoning_only') as (url, _server):
        result = inf.run_checks(params(url))
    assert result['passed'], result['checks']
    streamed = by_name(result)['chat completion (streamed)']['figures']
    assert streamed['finish_reason'] == 'length' and streamed['ttft_ms'] is not None


def test_expected_content_and_json_schema():
    with inproc.lab_server(*FAST) as (url, _lab):
        no_match = inf.run_checks(params(url, expected_content=r'^\{', streaming='plain'))
        not_json = inf.run_checks(params(url, expected_json_schema={'type': 'object'}, streaming='plain'))
    assert 'does not match expected_content' in no_match['checks'][0]['reason']
    assert 'not JSON' in not_json['checks'][0]['reason']


@pytest.mark.parametrize('use_jsonschema', [True, False])
def test_schema_errors_with_and_without_jsonschema(monkeypatch, use_jsonschema):
    if use_jsonschema and not inf.HAS_JSONSCHEMA:
        pytest.skip('jsonschema not installed')
    monkeypatch.setattr(inf, 'HAS_JSONSCHEMA', use_jsonschema)
    schema = {'type': 'object', 'required': ['answer'], 'properties': {'answer': {'type': 'integer'}}}
    assert inf.schema_errors('```json\n{"answer": 42}\n```', schema) == []
    assert inf.schema_errors('{"answer": "x"}', schema)
    assert inf.schema_errors('{}', schema)
    assert inf.schema_errors('[1]', schema)


def test_unreachable_endpoint_fails_every_check():
    result = inf.run_checks(params('http://127.0.0.1:9', models=['m'], timeout=2))
    assert not result['passed'] and len(result['failed_checks']) == 3
    assert all('failed' in c['reason'] for c in result['checks'])


# ----- integration -----------------------------------------------------------------------------------------------
def litellm_config(path, gpu1, gpu2):
    path.write_text(json.dumps({'model_list': [
        {'model_name': 'llama-3-8b', 'model_info': {'id': 'gpu-1'},
         'litellm_params': {'model': 'openai/llama-3-8b', 'api_base': gpu1 + '/v1', 'api_key': 'os.environ/VLLM_KEY'}},
        {'model_name': 'llama-3-8b', 'litellm_params': {'model': 'hosted_vllm/llama-3-8b', 'api_base': gpu2 + '/v1'},
         'model_info': {'id': 'gpu-2'}},
        {'model_name': 'other', 'litellm_params': {'model': 'openai/x', 'api_base': 'http://elsewhere:1/v1'}}]}))
    return str(path)


def test_backend_the_gateway_cannot_reach_is_named(tmp_path):
    with inproc.lab_server(*FAST) as (gpu1, _l1):
        with inproc.lab_server(*FAST) as (gpu2, _l2):
            with fake('gateway', gpu1=gpu1 + '/v1') as (gateway, _server):
                config = litellm_config(tmp_path / 'config.yaml', gpu1, gpu2)
                result = inf.run_checks(params(gateway, checks=['integration'], gateway_config=config, gateway_attempts=5))
    checks = by_name(result)
    assert checks['backend gpu-1 direct']['passed'] and checks['backend gpu-2 direct']['passed']
    assert checks['backend gpu-1 through gateway']['passed']
    assert not checks['backend gpu-2 through gateway']['passed']
    assert 'answers directly: the gateway cannot reach it' in checks['backend gpu-2 through gateway']['reason']
    assert 'asked for by its deployment id gpu-2, the gateway answered from gpu-1' in checks['backend gpu-2 through gateway']['reason']
    assert checks['model group llama-3-8b through gateway']['passed']
    assert result['unreachable_through_gateway'] == ['gpu-2']


def test_a_backend_not_sampled_is_asked_for_by_its_deployment_id():
    with inproc.lab_server(*FAST) as (gpu1, _l1), inproc.lab_server(*FAST) as (gpu2, _l2):
        backends = [{'id': 'gpu-1', 'url': gpu1, 'name': None, 'model': None, 'api_key': None},
                    {'id': 'gpu-2', 'url': gpu2, 'name': None, 'model': None, 'api_key': None}]
        with fake('gateway_by_id') as (gateway, _server):
            result = inf.run_checks(params(gateway, checks=['integration'], backends=backends, gateway_attempts=4))
    checks = by_name(result)
    assert result['passed'], result['failed_checks']
    assert checks['backend gpu-1 through gateway']['figures']['answered'] == 4
    assert 'reached when asked for by its deployment id gpu-2' in checks['backend gpu-2 through gateway']['reason']


def test_a_gateway_that_does_not_say_who_answered_is_not_a_pass():
    with inproc.lab_server(*FAST) as (gpu1, _lab):
        backends = [{'name': 'gpu-1', 'url': gpu1, 'model': None, 'api_key': None}]
        with fake('gateway_silent') as (gateway, _server):
            result = inf.run_checks(params(gateway, checks=['integration'], gateway_attempts=3, backends=backends))
    assert 'cannot tell whether gpu-1 is reachable' in by_name(result)['backend gpu-1 through gateway']['reason']


def test_a_dead_backend_is_named_directly_too():
    with inproc.lab_server(*FAST) as (gpu1, _lab):
        backends = [{'name': 'gpu-1', 'url': gpu1, 'model': None, 'api_key': None},
                    {'name': 'gpu-9', 'url': 'http://127.0.0.1:9', 'model': None, 'api_key': None}]
        with fake('gateway', gpu1=gpu1 + '/v1') as (gateway, _server):
            result = inf.run_checks(params(gateway, checks=['integration'], backends=backends, gateway_attempts=3))
    checks = by_name(result)
    assert not checks['backend gpu-9 direct']['passed'] and checks['backend gpu-1 through gateway']['passed']
    assert checks['model group llama-3-8b through gateway']['passed']
    assert result['unreachable_through_gateway'] == ['gpu-9']


def test_unreadable_gateway_config_raises(tmp_path):
    bad = tmp_path / 'config.yaml'
    bad.write_text('model_list: [\n')
    with pytest.raises(inf.InferenceError) as info:
        inf.run_checks(params('http://127.0.0.1:9', checks=['integration'], gateway_config=str(bad)))
    assert info.value.error_kind == 'unreadable'
    with pytest.raises(inf.InferenceError, match='no deployment of model group'):
        bad.write_text('model_list: []\n')
        inf.run_checks(params('http://127.0.0.1:9', checks=['integration'], gateway_config=str(bad)))


# ----- performance -----------------------------------------------------------------------------------------------
def perf_params(url, path, mode, **over):
    return params(url, checks=['performance'], performance={'count': 12, 'concurrency': 3, 'time_limit': 20, 'stream': True},
                  baseline=mode, baseline_path=str(path), **over)


def test_baseline_saved_0600_then_compared(tmp_path):
    path = tmp_path / 'sub' / 'baseline.json'
    with inproc.lab_server(*FAST) as (url, _lab):
        saved = inf.run_checks(perf_params(url, path, 'save'))
        # a live run on a shared 2-core machine: its throughput varies beyond any ratio from one run to the next, so
        # only the comparison's presence is checked here; the ratios are checked on fixed figures below
        tolerances = {'latency_slack_ms': 100, 'min_tokens_per_s_ratio': 0.0}
        compared = inf.run_checks(perf_params(url, path, 'compare', tolerances=tolerances))
    assert saved['passed'] and saved['changed'] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    figures = saved['figures']
    assert figures['requests'] == 12 and figures['errors'] == 0 and figures['token_source'] == 'usage'
    assert figures['completion_tokens'] == 48 and figures['tokens_per_s'] > 0
    assert figures['latency_p50_ms'] <= figures['latency_p95_ms'] <= figures['latency_p99_ms']
    assert compared['passed'], compared['failed_checks']
    assert {'performance latency_p99_ms', 'performance ttft_p95_ms', 'performance tokens_per_s'} <= set(by_name(compared))
    assert compared['changed'] is False and compared['baseline']['figures'] == json.loads(path.read_text())['figures']


def test_check_mode_does_not_write_the_baseline(tmp_path):
    path = tmp_path / 'baseline.json'
    with inproc.lab_server(*FAST) as (url, _lab):
        result = inf.run_checks(perf_params(url, path, 'save'), check_mode=True)
    assert result['passed'] and result['changed'] is False and not path.exists()


def test_slower_than_the_baseline_fails_with_the_figures(tmp_path):
    path = tmp_path / 'baseline.json'
    with inproc.lab_server(*FAST) as (url, _lab):
        inf.run_checks(perf_params(url, path, 'save'))
    with inproc.lab_server('--first-token-latency-ms', '300', '--token-interval-ms', '1', '--tokens', '4') as (url, _lab):
        result = inf.run_checks(perf_params(url, path, 'compare', tolerances={'latency_slack_ms': 100}))
    checks = by_name(result)
    assert not checks['performance latency_p99_ms']['passed']
    assert not checks['performance ttft_p95_ms']['passed']
    assert 'baseline' in checks['performance latency_p99_ms']['reason']
    assert checks['performance error_rate']['passed']


def test_slow_first_token_is_measured():
    with fake('slow_first_token') as (url, _server):
        figures = inf.run_checks(params(url, checks=['performance'], performance={
            'count': 2, 'concurrency': 2, 'time_limit': 10, 'stream': True}))['figures']
    assert figures['ttft_p50_ms'] >= 290 and figures['token_source'] == 'chunks'


def test_injected_errors_count_in_the_error_rate(tmp_path):
    with inproc.lab_server('--error-percent', '25', *FAST) as (url, _lab):
        result = inf.run_checks(perf_params(url, tmp_path / 'b.json', 'save', tolerances={'max_error_rate': 0.1}))
    checks = by_name(result)
    assert checks['performance error_rate']['figures']['error_rate'] == 0.25
    assert 'HTTP 500' in checks['performance error_rate']['reason']
    assert not checks['baseline saved']['passed'] and not (tmp_path / 'b.json').exists()


def test_a_missing_or_unreadable_baseline_fails_the_comparison(tmp_path):
    (tmp_path / 'garbage.json').write_text('{"figures": ')
    with inproc.lab_server(*FAST) as (url, _lab):
        missing = inf.run_checks(perf_params(url, tmp_path / 'none.json', 'compare'))
        garbage = inf.run_checks(perf_params(url, tmp_path / 'garbage.json', 'compare'))
    assert 'no baseline at' in by_name(missing)['baseline read']['reason']
    assert 'cannot read the baseline' in by_name(garbage)['baseline read']['reason']


def test_figures_missing_in_the_baseline_fail(tmp_path):
    base = {'figures': {'latency_p50_ms': 10.0, 'latency_p99_ms': None, 'tokens_per_s': 5.0}}
    now = {'latency_p50_ms': 11.0, 'latency_p99_ms': 20.0, 'ttft_p95_ms': 3.0, 'tokens_per_s': 5.0, 'settings': {'stream': True}}
    results = {r['name']: r for r in inf.compare(now, base, dict(inf.DEFAULT_TOLERANCES))}
    assert results['performance latency_p50_ms']['passed']
    assert not results['performance latency_p99_ms']['passed'] and 'cannot compare' in results['performance latency_p99_ms']['reason']
    assert not results['performance ttft_p95_ms']['passed']


def test_tokens_per_s_gets_the_latencies_noise_allowance():
    """A short run of a small model (4 requests per client of 60 ms each) on a busy host: 2.5x slower per request is
    within the latencies' +100 ms, so tokens/s at 0.4x of the baseline is within it too; a model 5x slower is not."""
    settings = {'count': 8, 'concurrency': 2, 'stream': True}
    base = {'figures': {'latency_p50_ms': 60.0, 'latency_p99_ms': 60.0, 'ttft_p95_ms': 10.0, 'tokens_per_s': 100.0,
                        'wall_s': 0.24, 'settings': settings}}
    tol = dict(inf.DEFAULT_TOLERANCES, min_tokens_per_s_ratio=0.4, latency_slack_ms=100)
    busy = {'latency_p50_ms': 150.0, 'latency_p99_ms': 150.0, 'ttft_p95_ms': 12.0, 'tokens_per_s': 39.0, 'settings': settings}
    results = {r['name']: r for r in inf.compare(busy, base, tol)}
    assert all(r['passed'] for r in results.values()), results
    assert results['performance tokens_per_s']['figures']['limit'] == 37.5
    slow = dict(busy, latency_p50_ms=300.0, latency_p99_ms=300.0, tokens_per_s=20.0)
    results = {r['name']: r for r in inf.compare(slow, base, tol)}
    assert not results['performance tokens_per_s']['passed'] and not results['performance latency_p99_ms']['passed']
    # a baseline without its run's wall time or settings: the plain ratio
    plain = {'figures': dict(base['figures'], wall_s=None)}
    assert not {r['name']: r for r in inf.compare(busy, plain, tol)}['performance tokens_per_s']['passed']


def test_the_time_limit_bounds_the_run():
    with inproc.lab_server('--first-token-latency-ms', '400', '--tokens', '1') as (url, _lab):
        started = time.monotonic()
        figures = inf.run_checks(params(url, checks=['performance'], performance={
            'count': 100, 'concurrency': 2, 'time_limit': 1, 'stream': False}))['figures']
    assert time.monotonic() - started < 5
    assert figures['not_started'] > 80 and figures['requests'] == 100 - figures['not_started']


def test_with_defaults_fills_sub_options_and_refuses_unknown_ones():
    filled = inf.with_defaults(url='http://x', performance={'count': 3})
    assert filled['performance'] == {'count': 3, 'concurrency': 4, 'time_limit': 60, 'stream': True}
    assert filled['checks'] == ['functional'] and filled['tolerances'] is None
    with pytest.raises(inf.InferenceError, match='unknown option'):
        inf.with_defaults(url='http://x', bogus=1)


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert inf.percentile(values, 0.5) == 50 and inf.percentile(values, 0.99) == 99 and inf.percentile([], 0.5) is None


@pytest.mark.parametrize('over, words', [
    ({'checks': []}, 'checks must be'),
    ({'timeout': 0}, 'timeout must be'),
    ({'model': None, 'models': []}, 'give model'),
    ({'expected_content': '('}, 'not a regular expression'),
    ({'baseline': 'save'}, 'needs the performance check'),
    ({'checks': ['performance'], 'baseline': 'compare'}, 'needs baseline_path'),
    ({'checks': ['integration']}, 'needs backends or gateway_config'),
    ({'checks': ['performance'], 'performance': {'count': 0}}, 'count must be'),
    ({'checks': ['performance'], 'tolerances': {'p99_ratio': 0.5}}, 'p99_ratio must be'),
    ({'url': 'ftp://x/'}, 'not an http(s) URL'),
    ({'api_key': 'sk-a\nb-Secret'}, 'api_key holds a control character'),
    ({'backends': [{'url': 'http://x', 'api_key': 'x\x00y'}], 'checks': ['integration']}, 'backends\\[\\].api_key holds'),
    ({'api_key_header': 'X-Key: evil'}, 'api_key_header must be'),
])
def test_bad_options(over, words):
    with pytest.raises(inf.InferenceError, match=words.replace('(', r'\(').replace(')', r'\)')):
        inf.run_checks(params(**dict({'url': 'http://127.0.0.1:9'}, **over)))
