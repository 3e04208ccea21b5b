# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The in-flight filters: Prometheus exposition read with prometheus_client, ss output; cannot tell is never 0."""

from __future__ import annotations

import datetime

import math
import os
import re

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem_ai.maintenance.plugins.filter import inflight
from ansible_collections.onprem_ai.maintenance.plugins.filter.inflight import prometheus_reading, prometheus_sum, tcp_busy

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
VLLM = ['vllm:num_requests_running', 'vllm:num_requests_waiting']


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


# The regex roles/rollout/tasks/drain.yml used before this filter, kept here to show what it got wrong.
OLD_REGEX = r'(?m)^' + re.escape('vllm:num_requests_running') + r'(?:\{[^}]*\})? +([0-9.e+]+)$'


def old_regex_sum(text):
    return sum(float(v) for v in re.findall(OLD_REGEX, text))


# ----- Prometheus ---------------------------------------------------------------------------------------------------

def test_real_vllm_capture_reads_idle():
    text = fixture('vllm_production_stack_issue_318.txt')
    assert prometheus_sum(text, 'vllm:num_requests_running') == 0.0
    assert prometheus_sum(text, VLLM) == 0.0
    assert prometheus_reading(text, VLLM) == {'value': 0.0, 'error': None}
    # other families of the same real text are read too, counters by their sample name
    assert prometheus_sum(text, 'process_cpu_seconds_total') == pytest.approx(439.72)
    assert prometheus_sum(text, 'process_max_fds') == 1048576.0


def test_real_capture_without_the_metric_is_unknown():
    text = fixture('vllm_issue_26762_head.txt')
    reading = prometheus_reading(text, VLLM)
    assert reading['value'] is None
    assert 'vllm:num_requests_running and vllm:num_requests_waiting absent from the metrics' in reading['error']
    assert 'python_gc_objects_collected' in reading['error']  # says what was there instead
    with pytest.raises(AnsibleFilterError, match='absent'):
        prometheus_sum(text, VLLM)


def test_samples_with_timestamps_are_counted():
    """The regression of issue 11: the old regex read 0 in flight where there were 3."""
    text = ('# HELP vllm:num_requests_running Number of requests in model execution batches.\n'
            '# TYPE vllm:num_requests_running gauge\n'
            'vllm:num_requests_running{engine="0",model_name="m"} 2.0 1764650000000\n'
            'vllm:num_requests_running{engine="1",model_name="m"} 1 1764650000000\n')
    assert old_regex_sum(text) == 0  # what the drain used to see: "drained", and the node was stopped
    assert prometheus_sum(text, 'vllm:num_requests_running') == 3.0


def test_labels_engines_and_lists_are_summed():
    text = ('vllm:num_requests_running{engine="0",model_name="a,b=\\"c\\"",x="}"} 2\n'
            'vllm:num_requests_running{engine="1",model_name="m"} 1.0\n'
            'vllm:num_requests_waiting{engine="0",model_name="m"} 4e0\n'
            'vllm:num_requests_waiting_by_reason{reason="capacity"} 9\n')
    assert prometheus_sum(text, 'vllm:num_requests_running') == 3.0
    assert prometheus_sum(text, VLLM) == 7.0  # _by_reason is another metric, not summed in
    assert prometheus_sum(text, ('vllm:num_requests_waiting',)) == 4.0


def test_llamacpp_names():
    text = ('# HELP llamacpp:requests_processing Number of requests processing.\n'
            '# TYPE llamacpp:requests_processing gauge\n'
            'llamacpp:requests_processing 1\n'
            '# HELP llamacpp:requests_deferred Number of requests deferred.\n'
            '# TYPE llamacpp:requests_deferred gauge\n'
            'llamacpp:requests_deferred 2\n')
    assert prometheus_sum(text, ['llamacpp:requests_processing', 'llamacpp:requests_deferred']) == 3.0


def test_nan_is_unknown_and_inf_is_busy():
    nan = 'vllm:num_requests_running{model_name="m"} NaN\n'
    assert prometheus_reading(nan, 'vllm:num_requests_running') == {'value': None, 'error': 'vllm:num_requests_running is NaN'}
    with pytest.raises(AnsibleFilterError, match='NaN'):
        prometheus_sum(nan, 'vllm:num_requests_running')
    inf = 'vllm:num_requests_running{model_name="m"} +Inf\n'
    assert math.isinf(prometheus_sum(inf, 'vllm:num_requests_running'))
    assert prometheus_reading(inf, 'vllm:num_requests_running')['value'] != 0


@pytest.mark.parametrize('text, why', [
    ('', 'empty'),
    ('   \n', 'empty'),
    ('<html><body><h1>502 Bad Gateway</h1></body></html>\n', 'not valid Prometheus text exposition'),
    ('{"detail": "Not Found"}', 'not valid Prometheus text exposition'),
    ('vllm:num_requests_running{model_name="m} 0\n', 'not valid Prometheus text exposition'),  # truncated label
    ('vllm:num_requests_running{model_name=m} 0\n', 'not valid Prometheus text exposition'),
    ('vllm:num_requests_running idle\n', 'not valid Prometheus text exposition'),
    ('# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n', 'absent'),
    ('vllm:num_requests_running_total 0\nother 1\n', 'absent'),
])
def test_cannot_tell_is_never_zero(text, why):
    reading = prometheus_reading(text, 'vllm:num_requests_running')
    assert reading['value'] is None and why in reading['error']
    with pytest.raises(AnsibleFilterError, match=why):
        prometheus_sum(text, 'vllm:num_requests_running')


def test_nothing_read_is_unknown():
    assert prometheus_reading(None, 'm')['value'] is None


@pytest.mark.parametrize('metric', ['', [], [''], None, 3, {'a': 1}])
def test_misuse_raises(metric):
    with pytest.raises(AnsibleFilterError, match='metric must'):
        prometheus_reading('m 1\n', metric)


def test_input_must_be_text():
    with pytest.raises(AnsibleFilterError, match='must be a string'):
        prometheus_reading({'content': 'm 1'}, 'm')


def test_missing_library_is_said(monkeypatch):
    monkeypatch.setattr(inflight, 'text_string_to_metric_families', None)
    with pytest.raises(AnsibleFilterError, match='pip install prometheus-client'):
        prometheus_reading('m 1\n', 'm')


def test_long_parser_message_is_shortened():
    reading = prometheus_reading('x' * 1000 + ' y\n', 'm')
    assert len(reading['error']) < 300


def test_lab_inference_server_metrics_text_is_read():
    """The lab server's own /metrics (normal and with timestamps) reads as the number in flight."""
    import importlib.util  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'lab', 'inference_server', 'lab_inference_server.py')
    spec = importlib.util.spec_from_file_location('lab_inference_server', path)
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    for mode in ('vllm', 'timestamps'):
        config = dict(lab.DEFAULTS, node_name='n', metrics=mode)
        state = lab.LabState(config)
        state.request_started()
        state.request_started()
        assert prometheus_sum(state.metrics_text(), VLLM) == 2.0, mode
    state = lab.LabState(dict(lab.DEFAULTS, node_name='n', metrics='malformed'))
    assert 'not valid' in prometheus_reading(state.metrics_text(), VLLM)['error']


# ----- ss -----------------------------------------------------------------------------------------------------------

def test_real_ss_capture():
    """ss -H -t -i -n of the lab server with an idle keep-alive client, a stream and a non-streamed request pending."""
    text = fixture('ss_lab_three_connections.txt')
    busy = tcp_busy(text, 10)
    assert [(b['peer'], b['reason']) for b in busy] == [
        ('127.0.0.1:34736', 'the engine sent data 560 ms ago'),        # keep-alive, answered 0.56 s ago
        ('127.0.0.1:34748', 'the engine sent data 4 ms ago'),          # a stream in flight
        ('127.0.0.1:34756', 'nothing answered yet on this connection'),  # the request waits for its answer
    ]
    assert all(b['local'] == '127.0.0.1:49593' for b in busy)
    # once the keep-alive connection has been quiet for longer than idle_after it is left out
    assert [b['peer'] for b in tcp_busy(text, 0.5)] == ['127.0.0.1:34748', '127.0.0.1:34756']


def info(**fields):
    return '\t cubic wscale:7,7 rto:204 ' + ' '.join('%s:%s' % kv for kv in fields.items()) + ' rcv_space:65483\n'


def test_no_connection_is_idle():
    assert tcp_busy('', 10) == []
    assert tcp_busy('\n', 10) == []


def test_request_on_a_keep_alive_connection_waits_for_its_answer():
    text = '0      0      10.0.0.5:8000 10.0.0.9:41000\n' + info(bytes_sent=9000, bytes_received=400, lastsnd=60000, lastrcv=30000)
    assert tcp_busy(text, 10)[0]['reason'] == 'a request came in 30000 ms ago and has no answer yet'


def test_idle_keep_alive_is_left_out_and_queues_are_busy():
    idle = info(bytes_sent=9000, bytes_received=400, lastsnd=30000, lastrcv=30001)
    assert tcp_busy('0 0 [::ffff:10.0.0.5]:8000 [::ffff:10.0.0.9]:41000\n' + idle, 10) == []
    assert tcp_busy('12 0 10.0.0.5:8000 10.0.0.9:41000\n' + idle, 10)[0]['reason'] == '12 bytes of a request not read yet'
    assert tcp_busy('0 7 10.0.0.5:8000 10.0.0.9:41000\n' + idle, 10)[0]['reason'] == '7 bytes of an answer not acknowledged yet'


def test_fields_left_out_by_ss_are_zero():
    # ss prints no lastsnd when it is 0: the engine sent just now
    text = '0 0 10.0.0.5:8000 10.0.0.9:41000\n' + info(bytes_sent=10, lastrcv=5000)
    assert tcp_busy(text, 10)[0]['reason'] == 'the engine sent data 0 ms ago'


@pytest.mark.parametrize('text', [
    'State Recv-Q Send-Q Local Address:Port Peer Address:Port\n',   # a header (ss without -H)
    '0 0 10.0.0.5:8000 10.0.0.9:41000\n',                            # no -i line
    '\t cubic lastsnd:1\n',                                          # an info line without its socket
    'ss: something went wrong\n',
])
def test_unreadable_output_is_busy(text):
    assert tcp_busy(text, 10), text


def test_nothing_read_is_busy():
    assert tcp_busy(None, 10)[0]['reason'].startswith('no ss output')


@pytest.mark.parametrize('idle_after', ['x', None, -1])
def test_idle_after_is_checked(idle_after):
    with pytest.raises(AnsibleFilterError, match='idle_after'):
        tcp_busy('', idle_after)


# ----- the role's conditions, evaluated as written in roles/rollout/tasks -------------------------------------------

ROLE = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'rollout')


def role_yaml(*path):
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(ROLE, *path), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def jinja_env():
    from jinja2.nativetypes import NativeEnvironment  # pylint: disable=import-outside-toplevel
    env = NativeEnvironment()
    env.filters.update({
        'onprem_ai.maintenance.prometheus_reading': prometheus_reading,
        'onprem_ai.maintenance.tcp_busy': tcp_busy,
        'ternary': lambda value, yes, no: yes if value else no,
        'zip': lambda first, *others: list(zip(first, *others)),
    })
    env.globals['now'] = lambda utc=False: datetime.datetime.now(datetime.timezone.utc if utc else None)
    return env


def evaluate(task, key, variables):
    """Render the task's own vars (in order, as Ansible's lazy templating would), then its condition `key`."""
    env = jinja_env()
    scope = dict(variables)
    for name, value in (task.get('vars') or {}).items():
        scope[name] = env.from_string(value).render(scope) if isinstance(value, str) else value
    condition = task[key]
    conditions = condition if isinstance(condition, list) else [condition]
    return all(env.compile_expression(c.strip())(**scope) for c in conditions)


def test_engine_defaults_are_consistent():
    defaults = role_yaml('defaults', 'main.yml')
    options = role_yaml('meta', 'argument_specs.yml')['argument_specs']['drain']['options']
    assert set(defaults['rollout_engine_inflight']) == set(options['rollout_engine']['choices'])
    for engine, inflight in defaults['rollout_engine_inflight'].items():
        assert inflight['source'] in options['rollout_inflight_source']['choices'], engine
        assert os.path.exists(os.path.join(ROLE, 'tasks', 'inflight_%s.yml' % inflight['source']))
        assert (inflight['source'] == 'metrics') == bool(inflight['metric']), engine
    assert defaults['rollout_engine'] == 'vllm' and 'vllm:num_requests_running' in defaults['rollout_engine_inflight']['vllm']['metric']
    assert defaults['rollout_engine_inflight']['ollama']['source'] == 'connections'


TIMESTAMPED_BUSY = 'vllm:num_requests_running{model_name="m"} 3 1764650000000\nvllm:num_requests_waiting{model_name="m"} 0 1764650000000\n'
IDLE = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 0.0\nvllm:num_requests_waiting{model_name="m"} 0.0\n'


@pytest.mark.parametrize('result, drained, message', [
    ({'status': 200, 'content': IDLE}, True, None),
    ({'status': 200, 'content': TIMESTAMPED_BUSY}, False, 'still has 3.0 request(s) in flight after 300 s'),
    ({'status': 200, 'content': 'vllm:num_requests_running{model_name="m'}, False, 'not valid Prometheus text exposition'),
    ({'status': 200, 'content': ''}, False, 'the metrics text is empty'),
    ({'status': 200, 'content': 'process_open_fds 45.0\n'}, False, 'absent from the metrics'),
    ({'status': 404, 'content': '404 page not found', 'msg': 'Status code was 404 and not [200]: HTTP Error 404: Not Found'},
     False, 'needs rollout_inflight_source connections or fixed'),
    ({'status': 500, 'msg': 'Status code was 500 and not [200]: HTTP Error 500: Internal Server Error'}, False, 'Status code was 500'),
    ({'status': -1, 'msg': 'Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>'},
     False, 'Connection refused'),
    ({'skipped': True}, False, 'no answer'),
])
def test_metrics_wait_fails_closed(result, drained, message):
    wait, fail = role_yaml('tasks', 'inflight_metrics.yml')
    scope = {'rollout_metrics': result, 'rollout_inflight_metric': VLLM, 'inventory_hostname': 'gpu-1',
             'rollout_drain_timeout': 300, 'rollout_inference_url': 'http://127.0.0.1:8000', 'rollout_metrics_path': '/metrics'}
    assert evaluate(wait, 'until', scope) is drained
    assert evaluate(fail, 'when', scope) is (not drained)
    if message:
        env = jinja_env()
        for name, value in fail['vars'].items():
            scope[name] = env.from_string(value).render(scope)
        text = env.from_string(fail['ansible.builtin.fail']['msg']).render(scope)
        assert message in text and text.startswith('gpu-1') and 'not stopping it' in text


@pytest.mark.parametrize('name, result', [
    ('inflight_metrics.yml', {'status': 200, 'content': TIMESTAMPED_BUSY}),
    ('inflight_metrics.yml', {'status': -1, 'msg': 'Request failed: <urlopen error timed out>'}),
    ('inflight_connections.yml', {'rc': 0, 'stdout': fixture('ss_lab_three_connections.txt')}),
])
def test_the_wait_ends_at_the_deadline_busy(name, result):
    """However slowly the engine answers each reading, the wait ends at drain.yml's deadline, and fails closed."""
    wait, fail = role_yaml('tasks', name)
    scope = {'rollout_metrics': result, 'rollout_connections': result, 'rollout_inflight_metric': VLLM,
             'rollout_inflight_idle_after': 10, 'inventory_hostname': 'gpu-1', 'rollout_drain_timeout': 300,
             'rollout_inference_url': 'http://127.0.0.1:8000', 'rollout_metrics_path': '/metrics', 'rollout_inflight_port': 8000}
    assert evaluate(wait, 'until', scope) is False
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    assert evaluate(wait, 'until', dict(scope, rollout_inflight_deadline=now + 60)) is False
    assert evaluate(wait, 'until', dict(scope, rollout_inflight_deadline=now - 1)) is True
    assert evaluate(fail, 'when', dict(scope, rollout_inflight_deadline=now - 1)) is True
    drain = role_yaml('tasks', 'drain.yml')[0]
    assert 'rollout_inflight_deadline' in drain['ansible.builtin.set_fact']


@pytest.mark.parametrize('result, drained, message', [
    ({'rc': 0, 'stdout': ''}, True, None),
    ({'rc': 0, 'stdout': fixture('ss_lab_three_connections.txt')}, False,
     'still has 3 connection(s) to port 8000 that may carry a request after 300 s (127.0.0.1:34736: the engine sent data 560 ms ago;'),
    ({'rc': 255, 'stdout': '', 'stderr': "ss: invalid option -- 'H'"}, False,
     "could not list the connections to port 8000 with ss (rc 255: ss: invalid option"),
    ({'rc': 2, 'msg': "[Errno 2] No such file or directory: b'ss'"}, False, 'No such file or directory'),
])
def test_connections_wait_fails_closed(result, drained, message):
    wait, fail = role_yaml('tasks', 'inflight_connections.yml')
    scope = {'rollout_connections': result, 'rollout_inflight_idle_after': 10, 'inventory_hostname': 'gpu-1',
             'rollout_drain_timeout': 300, 'rollout_inflight_port': 8000}
    # the loop ends at once when ss fails (the failure is read below), or when nothing is busy
    assert evaluate(wait, 'until', scope) is (drained or result['rc'] != 0)
    assert evaluate(fail, 'when', scope) is (not drained)
    if message:
        env = jinja_env()
        for name, value in fail['vars'].items():
            scope[name] = env.from_string(value).render(scope)
        text = ' '.join(env.from_string(fail['ansible.builtin.fail']['msg']).render(scope).split())
        assert message in text and 'not stopping it' in text
