# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_prometheus: query_range answers recorded from the lab's real Prometheus (Debian 12's 2.42, prometheus/capture.py)
served by a loopback HTTP server; the before / after comparison; the windows of a run; the report's section."""

from __future__ import annotations

import glob
import http.server
import json
import math
import os
import threading
import urllib.parse

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _prometheus as prom
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _report as report_utils

HERE = os.path.join(os.path.dirname(__file__), 'prometheus')
RECORDED = {}
for _path in glob.glob(os.path.join(HERE, '*.json')):
    with open(_path, encoding='utf-8') as _handle:
        _record = json.load(_handle)
    RECORDED[_record['query']] = _record


class _Handler(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):  # noqa: N802  # pylint: disable=invalid-name
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        self.seen.append((parts.path, query, self.headers.get('Authorization')))
        record = RECORDED.get(query.get('query', [''])[0])
        if parts.path != '/api/v1/query_range' or record is None:
            status, body = 404, b'404 page not found\n'
        else:
            status, body = record['http_status'], json.dumps(record['answer']).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture(name='server')
def fixture_server():
    httpd = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield 'http://127.0.0.1:%d' % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_recorded_answers_are_there():
    assert {r['http_status'] for r in RECORDED.values()} == {200, 400}
    assert len(RECORDED) == 6


def test_parse_the_real_matrix():
    series = prom.parse_matrix(RECORDED['sum(up)']['answer'], 'up')
    assert len(series) == 1 and series[0]['metric'] == {}
    assert all(isinstance(t, float) and v >= 1 for t, v in series[0]['values'])
    several = prom.parse_matrix(RECORDED['up{job="node"}']['answer'], 'up')
    # Debian's packaged configuration (localhost:9100) was scraped until the role's replaced it
    instances = {'molecule-mon-gpu-1:9100', 'molecule-mon-gpu-2:9100', 'molecule-mon-server:9100', 'localhost:9100'}
    assert {s['metric']['instance'] for s in several} == instances
    assert prom.series_name(several[0]['metric']) == '__name__=up,host=molecule-mon-gpu-1,instance=molecule-mon-gpu-1:9100,job=node'
    assert prom.parse_matrix(RECORDED[prom.DEFAULT_QUERIES[3]['query']]['answer'], 'p99') == []


def test_nan_is_left_out_of_the_mean():
    series = prom.parse_matrix(RECORDED['vector(0) / vector(0)']['answer'], 'nan')
    assert series and all(math.isnan(v) for _t, v in series[0]['values'])
    assert prom.mean(series[0]['values']) == (None, 0)
    assert prom.mean([(1.0, 2.0), (2.0, float('nan')), (3.0, 4.0), (4.0, float('inf'))]) == (3.0, 2)


@pytest.mark.parametrize('answer, msg', [
    ({'status': 'error', 'errorType': 'bad_data', 'error': 'parse error'}, 'answered parse error'),
    ({'status': 'success', 'data': {'resultType': 'vector', 'result': []}}, 'not a matrix'),
    ({'status': 'success', 'data': {'resultType': 'matrix', 'result': [{'metric': {}}]}}, 'without metric and values'),
    ({'status': 'success', 'data': {'resultType': 'matrix', 'result': [{'metric': {}, 'values': [[1, 'x']]}]}},
     'is not a number'),
    ({'status': 'success', 'data': {'resultType': 'matrix', 'result': [{'metric': {}, 'values': [[1]]}]}},
     'not [time, value]'),
    ([], 'no success status'),
])
def test_unreadable_answers_fail(answer, msg):
    with pytest.raises(prom.PrometheusError) as info:
        prom.parse_matrix(answer, 'q')
    assert msg in info.value.msg


def test_compare_against_the_recorded_server(server):
    queries = [dict(name='up', query='sum(up)'), dict(name='node up', query='up{job="node"}'),
               dict(name='p99', query=prom.DEFAULT_QUERIES[3]['query']), dict(name='nan', query='vector(0) / vector(0)'),
               dict(name='rate', query='sum(rate(vllm:request_success_total[1m]))')]
    record = RECORDED['sum(up)']
    out = prom.compare(dict(url=server + '/', queries=queries, bearer_token='s3cr3t-token'),
                       before=[record['start'], record['end']], after=[record['start'] + 60, record['end']])
    rows = {(r['name'], r['series']): r for r in out['rows']}
    up = rows[('up', '')]
    assert up['before'] >= 1 and up['after'] >= 1 and up['points_before'] > 0 and up['change'] is not None
    assert len([k for k in rows if k[0] == 'node up']) == 4
    assert rows[('p99', '')]['before'] is None and rows[('p99', '')]['note'] == 'no data before, no data after'
    assert rows[('nan', '')]['before'] is None and 'no data before' in rows[('nan', '')]['note']
    assert rows[('rate', '')]['before'] is not None
    path, query, auth = _Handler.seen[0]
    assert path == '/api/v1/query_range' and auth == 'Bearer s3cr3t-token'
    assert float(query['step'][0]) == prom.step_of(record['start'], record['end'])
    assert out['url'] == server and 's3cr3t' not in json.dumps(out)


def test_a_bad_query_names_prometheus_error(server):
    with pytest.raises(prom.PrometheusError) as info:
        prom.compare(dict(url=server, queries=[dict(name='bad', query='sum(rate(')]), before=[1, 2], after=[3, 4])
    assert 'HTTP 400' in info.value.msg and 'parse error' in info.value.msg


def test_unreachable_and_bad_options():
    with pytest.raises(prom.PrometheusError) as info:
        prom.compare(dict(url='http://user:pw-secret@127.0.0.1:1'), before=[1, 2], after=[3, 4])
    assert 'failed' in info.value.msg and 'pw-secret' not in info.value.msg
    with pytest.raises(prom.PrometheusError):
        prom.compare(dict(url='ftp://x'), before=[1, 2], after=[3, 4])
    with pytest.raises(prom.PrometheusError) as info:
        prom.compare(dict(url='http://127.0.0.1:1'), before=[2, 1], after=[3, 4])
    assert 'ends' in info.value.msg


def test_windows_of_a_run():
    data = {'run': {'started': 1000.0}, 'hosts': [{'host': 'a', 'times': {'drain': 1010, 'warm': 1100, 'undrained': 1105}},
                                                  {'host': 'b', 'times': {}}]}
    assert prom.windows(data, 1200.0, 300) == ([700.0, 1000.0], [1105.0, 1200.0])
    assert prom.windows({'run': {'started': '1970-01-01T00:16:40Z'}, 'hosts': []}, 1000.5, 60) == (
        [940.0, 1000.0], [999.5, 1000.5])
    with pytest.raises(prom.PrometheusError):
        prom.windows({'run': {}}, 1.0, 60)


def test_report_sections():
    data = {'run': {'name': 'r', 'started': 1000, 'finished': 1100},
            'hosts': [{'host': 'a', 'status': 'rolled_back', 'error': 'validation: the live probe says stop'}],
            'probe': {'url': 'http://gw/v1', 'model': 'm', 'totals': {'sent': 9}, 'end_reason': 'stopped',
                      'phases': {'before': {'sent': 2, 'ok': 2, 'failed': 0, 'truncated': 0, 'error_rate': 0.0,
                                            'p50_ms': 10.0, 'p99_ms': 12.0}},
                      'marks': [{'mark': 'status', 't': 1001, 'verdict': 'ok', 'reason': 'fine'},
                                {'mark': 'status', 't': 1009, 'verdict': 'abort', 'reason': 'error rate 100%'}],
                      'timeline': [{'t': 1000 + i, 'sent': 1, 'ok': int(i < 5), 'failed': int(i >= 5), 'truncated': 0,
                                    'p50_ms': 10.0 if i < 5 else None, 'p99_ms': 12.0 if i < 5 else None}
                                   for i in range(9)]},
            'prometheus': {'url': 'http://p:9090', 'before': [700, 1000], 'after': [1090, 1100],
                           'rows': [{'name': 'up', 'series': '', 'before': 5.0, 'after': 4.0, 'change': -0.2, 'note': ''}]}}
    files, norm = report_utils.report(data)
    assert [(r['state'], r['start'], r['to']) for r in norm['probe']['runs']] == [('ok', 1000, 1004), ('errors', 1005, 1008)]
    md = files['report.md']
    assert '| 00:16:40 | 00:16:44 | ok | 5 | 5 | 0 | 0 | 12 ms |' in md
    assert '| 00:16:45 | 00:16:48 | errors | 4 | 0 | 4 | 0 | - |' in md
    assert '- 00:16:49 abort: error rate 100%' in md
    assert '| up | - | 5 | 4 | -20.0% |  |' in md
    assert '<h2>Live probe</h2>' in files['report.html'] and '<h2>Prometheus before and after</h2>' in files['report.html']
    with pytest.raises(report_utils.ReportError):
        report_utils.report(dict(data, probe=['x']))
    assert '## Live probe' not in report_utils.report(dict(data, probe=None, prometheus=None))[0]['report.md']


def test_the_module_compares_and_never_fails_on_prometheus(server, tmp_path):
    from ansible_collections.onprem_ai.maintenance.plugins.modules import maintenance_report
    record = RECORDED['sum(up)']
    data = {'run': {'name': 'r', 'started': record['start'] + 60}, 'hosts': [{'host': 'a', 'status': 'updated'}]}
    params = dict(kind='report', data=data, dest=str(tmp_path), name='r', keep=3, dtstamp=None,
                  prometheus=dict(url=server, queries=[dict(name='up', query='sum(up)')], before_seconds=60,
                                  bearer_token=None, validate_certs=True, timeout=5))
    out = maintenance_report.performance(params, data, now=record['end'])
    assert [r['name'] for r in out['prometheus']['rows']] == ['up'] and out['prometheus']['rows'][0]['after'] >= 1
    params['prometheus'] = dict(params['prometheus'], url='http://127.0.0.1:1', bearer_token='tok-secret')
    out = maintenance_report.performance(params, data, now=record['end'])
    assert out['prometheus']['rows'] == [] and 'failed' in out['prometheus']['error']
    result = maintenance_report.run(dict(params, data=out), check_mode=False)
    assert result['changed']
    with open(os.path.join(str(tmp_path), 'r', 'report.md'), encoding='utf-8') as handle:
        assert '- Not compared: GET http://127.0.0.1:1/api/v1/query_range failed' in handle.read()
    assert maintenance_report.performance(dict(params, prometheus=None), data) is data
