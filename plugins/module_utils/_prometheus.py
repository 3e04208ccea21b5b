# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Performance before and after a maintenance run, from Prometheus' HTTP query API (issue 18).

Entry point: `compare(params, before=(start, end), after=(start, end))` -> {url, before, after, step, rows: [{name,
query, series, before, after, change, points_before, points_after, note}]}: each query of `params['queries']` is asked
with `GET /api/v1/query_range` once over each window (step: the window / POINTS, at least 1 s) and each series'
values are averaged over the window (NaN and +-Inf left out). `change` is after / before - 1 (None when before is 0 or
either side has no data, which the row's note says). `windows(data, now)` works out the two windows of a run report's
data: before = the `before_seconds` up to the run's start; after = from the last node back in routing (or the run's
start) to now.

Prometheus 2.x behaviour relied on (prometheus/prometheus web/api/v1/api.go; checked against Debian 12's prometheus
2.42 by tests/unit/plugins/module_utils/test_prometheus.py with answers recorded from the lab's real server):
`{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {...}, "values": [[<unix float>,
"<value text>"], ...]}]}}`; an error is `{"status": "error", "errorType": ..., "error": ...}` with HTTP 400/422/503;
a query without data is an empty `result`. Unknown is never none: an answer that cannot be read fails with what could
not be read; a query without data is a row saying so, never a 0.

Standard library only. PRIVATE to the onprem_ai.maintenance collection: no compatibility promise.
"""

from __future__ import annotations

import http.client
import json
import math
import ssl
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import Redactor, url_secrets
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._report import epoch_seconds

MAX_BODY = 8 * 1024 * 1024
POINTS = 60
# What the lab and a vLLM fleet have: the engines' request and token rates, their in-flight requests, their latency
# (vLLM's e2e histogram; none in the lab simulation: its row says "no data") and the nodes' CPU.
DEFAULT_QUERIES = [
    dict(name='completed requests/s', query='sum(rate(vllm:request_success_total[1m]))'),
    dict(name='generated tokens/s', query='sum(rate(vllm:generation_tokens_total[1m]))'),
    dict(name='requests in flight', query='sum(vllm:num_requests_running)'),
    dict(name='request latency p99 (s)',
         query='histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))'),
    dict(name='node CPU busy (share)', query='1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))'),
    dict(name='targets up', query='sum(up)'),
]
ARGUMENT_SPEC = dict(
    url=dict(type='str', required=True),
    queries=dict(type='list', elements='dict',
                 options=dict(name=dict(type='str', required=True), query=dict(type='str', required=True))),
    before_seconds=dict(type='int', default=1800),
    bearer_token=dict(type='str', no_log=True),
    validate_certs=dict(type='bool', default=True),
    timeout=dict(type='int', default=10),
)


class PrometheusError(OnpremError):
    """Prometheus could not be asked, or its answer could not be read; the message says which."""

    error_kind = 'prometheus'


def safe_url(url):
    parts = urllib.parse.urlsplit(str(url))
    netloc = parts.hostname or ''
    if parts.port:
        netloc += ':%d' % parts.port
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PrometheusError('%s: %r is not a number' % (what, value)) from None


def parse_matrix(answer, what):
    """A query_range answer -> [{'metric': {...}, 'values': [(t, v), ...]}]; PrometheusError when unreadable."""
    if not isinstance(answer, dict) or answer.get('status') != 'success':
        detail = answer.get('error') if isinstance(answer, dict) else None
        raise PrometheusError('%s: Prometheus answered %s' % (what, detail or 'no success status'))
    data = answer.get('data')
    if not isinstance(data, dict) or data.get('resultType') != 'matrix' or not isinstance(data.get('result'), list):
        raise PrometheusError('%s: the answer is not a matrix (resultType %r)' % (
            what, data.get('resultType') if isinstance(data, dict) else None))
    out = []
    for item in data['result']:
        if not isinstance(item, dict) or not isinstance(item.get('metric'), dict) or not isinstance(item.get('values'), list):
            raise PrometheusError('%s: a series without metric and values' % what)
        values = []
        for pair in item['values']:
            if not isinstance(pair, list) or len(pair) != 2:
                raise PrometheusError('%s: a sample is not [time, value]: %r' % (what, pair))
            values.append((_number(pair[0], what), _number(pair[1], what)))
        out.append(dict(metric=item['metric'], values=values))
    return out


def series_name(metric):
    return ','.join('%s=%s' % (k, metric[k]) for k in sorted(metric)) or ''


def mean(values):
    finite = [v for _t, v in values if not math.isnan(v) and not math.isinf(v)]
    return (sum(finite) / len(finite), len(finite)) if finite else (None, 0)


class Client(object):
    """GET on Prometheus' API at `url` (a route prefix is kept); user info in the URL is never sent."""

    def __init__(self, url, bearer_token=None, validate_certs=True, timeout=10):
        parts = urllib.parse.urlsplit(str(url or '').strip())
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise PrometheusError('url is not an http(s) URL: %s' % safe_url(url), error_kind='options')
        self.redact = Redactor([bearer_token] + list(url_secrets(url)))
        self.base = safe_url(url).rstrip('/')
        self.timeout = timeout
        self.headers = {'Accept': 'application/json', 'User-Agent': 'onprem_ai.maintenance maintenance_report'}
        if bearer_token:
            self.headers['Authorization'] = 'Bearer %s' % bearer_token.strip()
        handlers = []
        if self.base.startswith('https:') and not validate_certs:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def get(self, path, query):
        url = '%s%s?%s' % (self.base, path, urllib.parse.urlencode(query))
        what = 'GET %s%s' % (self.base, path)
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read(4096) if exc.fp else b''
            except (OSError, http.client.HTTPException):
                raw = b''
            try:  # Prometheus' errors are JSON with "error"
                detail = json.loads(raw.decode('utf-8')).get('error')
            except (ValueError, UnicodeDecodeError, AttributeError):
                detail = self.redact.snippet(raw) if raw else exc.reason
            raise PrometheusError('%s answered HTTP %s: %s' % (what, exc.code, self.redact(detail))) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise PrometheusError('%s failed: %s' % (what, self.redact(getattr(exc, 'reason', exc)))) from None
        if len(raw) > MAX_BODY:
            raise PrometheusError('%s: the answer is larger than %d bytes' % (what, MAX_BODY))
        try:
            return json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            raise PrometheusError('%s: the answer is not JSON: %s' % (what, self.redact.snippet(raw))) from None

    def query_range(self, query, start, end, step):
        answer = self.get('/api/v1/query_range', dict(query=query, start='%.3f' % start, end='%.3f' % end, step='%g' % step))
        return parse_matrix(answer, 'query_range %s' % query)


def step_of(start, end):
    return max(1, int(round((end - start) / float(POINTS))))


def _window(value, what):
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise PrometheusError('%s: a window is [start, end] in Unix seconds' % what, error_kind='options')
    start, end = _number(value[0], what), _number(value[1], what)
    if end <= start:
        raise PrometheusError('%s: the window ends (%s) before it starts (%s)' % (what, end, start), error_kind='options')
    return start, end


def compare(params, before, after, client=None):
    """Each query's mean per series over the window before and the window after (module docs: RETURN prometheus)."""
    before, after = _window(before, 'before'), _window(after, 'after')
    client = client or Client(params['url'], bearer_token=params.get('bearer_token'),
                              validate_certs=params.get('validate_certs', True), timeout=params.get('timeout') or 10)
    rows = []
    for item in params.get('queries') or DEFAULT_QUERIES:
        sides = {}
        for side, (start, end) in (('before', before), ('after', after)):
            sides[side] = dict((series_name(s['metric']), mean(s['values']))
                               for s in client.query_range(item['query'], start, end, step_of(start, end)))
        for name in sorted(set(sides['before']) | set(sides['after'])) or ['']:
            was, n_was = sides['before'].get(name, (None, 0))
            now, n_now = sides['after'].get(name, (None, 0))
            notes = [('no data %s' % side) for side, value in (('before', was), ('after', now)) if value is None]
            change = None
            if was is not None and now is not None:
                if was != 0:
                    change = round(now / was - 1, 4)
                elif now != 0:
                    notes.append('was 0 before')
            rows.append(dict(name=item['name'], query=item['query'], series=name, before=was, after=now, change=change,
                             points_before=n_was, points_after=n_now, note=', '.join(notes)))
    return dict(url=client.base, before=list(before), after=list(after), rows=rows)


def windows(data, now, before_seconds):
    """([start - before_seconds, start], [back in routing, now]) of a run report's data (run.started, hosts' times)."""
    started = epoch_seconds((data.get('run') or {}).get('started'))
    if started is None:
        raise PrometheusError('run.started is not set: the window before the run is not known', error_kind='options')
    back = [epoch_seconds(t) for h in data.get('hosts') or [] if isinstance(h, dict)
            for key, t in (h.get('times') or {}).items() if key in ('undrained', 'warm') and t is not None]
    after_start = max(back) if back else started
    if now - after_start < 1:
        after_start = now - 1
    return [started - before_seconds, started], [after_start, now]
