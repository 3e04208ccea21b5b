# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_alertmanager against hostile answers from a loopback fake (what the real Alertmanager never sends: the tests of
the real one are in tests/unit/plugins/modules/test_alertmanager_silence.py), and its option parsing."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import threading

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _alertmanager as am

STATUS = {'versionInfo': {'version': '0.25.0'}, 'cluster': {'status': 'disabled'}}
NOW = datetime.datetime(2026, 12, 2, 8, 0, tzinfo=datetime.timezone.utc)
SECRET = 'tok-Hostile-4242'


def silence(sid='s1', tag='run', state='active', ends='2026-12-02T10:00:00.000Z', **extra):
    item = {'id': sid, 'status': {'state': state}, 'comment': 'planned maintenance [onprem_ai.maintenance:%s]' % tag,
            'createdBy': 'x', 'startsAt': '2026-12-02T07:00:00.000Z', 'endsAt': ends, 'updatedAt': 'x',
            'matchers': [{'name': 'instance', 'value': 'gpu-1(:[0-9]+)?', 'isRegex': True, 'isEqual': True}]}
    item.update(extra)
    return item


@contextlib.contextmanager
def fake(routes, server_date=None):
    """A loopback server: routes maps 'METHOD /path' to (status, body bytes or JSON-able, headers)."""
    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def date_time_string(self, timestamp=None):
            return server_date or super().date_time_string(timestamp)

        def _answer(self):
            length = int(self.headers.get('Content-Length') or 0)
            body = self.rfile.read(length) if length else b''
            calls.append((self.command, self.path, body, self.headers.get('Authorization')))
            route = routes.get('%s %s' % (self.command, self.path.split('?')[0]), (404, b'no', {}))
            status, payload, headers = route.pop(0) if isinstance(route, list) else route  # a list: one per call
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1], calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def params(url, **given):
    return am.with_defaults(**dict({'url': url, 'tag': 'run', 'hosts': ['gpu-1'], 'bearer_token': SECRET,
                                    'use_proxy': False, 'timeout': 5}, **given))


def fails(routes, kind, *words, **given):
    with fake(routes) as (url, calls):
        with pytest.raises(am.AlertmanagerError) as info:
            am.apply(params(url, **given), now=NOW)
    assert info.value.error_kind == kind, info.value.msg
    for word in words:
        assert word in info.value.msg, info.value.msg
    assert SECRET not in info.value.msg and SECRET not in json.dumps(info.value.details)
    return info.value, calls


@pytest.mark.parametrize('answer, kind, words', [
    ((500, {'error': 'boom %s' % SECRET}, {}), 'refused', ['HTTP 500', 'boom', '********']),
    ((200, b'{not json', {}), 'unreadable', ['not JSON', '{not json']),
    ((200, {'silences': []}, {}), 'unreadable', ['not a list of silences but dict']),
    ((200, [silence(status={})], {}), 'unreadable', ['status.state']),
    ((200, [silence(endsAt='tomorrow')], {}), 'unreadable', ['endsAt is not an RFC 3339 time']),
    ((200, [silence(matchers=[{'name': 'a', 'value': 'b'}])], {}), 'unreadable', ['matcher']),
    ((200, [silence(comment=None)], {}), 'unreadable', ['no comment']),
    ((200, ['x'], {}), 'unreadable', ['not an object']),
    ((302, b'', {'Location': 'http://127.0.0.1:1/steal'}), 'refused', ['redirect', 'not followed']),
    ((200, b'', {}), 'unreadable', ['not a list of silences but NoneType']),
])
def test_an_unreadable_silence_list_fails_and_changes_nothing(answer, kind, words):
    _exc, calls = fails({'GET /api/v2/status': (200, STATUS, {}), 'GET /api/v2/silences': answer}, kind, *words)
    assert [c[0] for c in calls] == ['GET', 'GET']  # no POST or DELETE on a list that could not be read


@pytest.mark.parametrize('status', [(200, {'versionInfo': {}}, {}), (200, b'<html>', {}), (503, b'not ready', {})])
def test_an_unreadable_status_fails(status):
    fails({'GET /api/v2/status': status}, 'refused' if status[0] == 503 else 'unreadable', '/api/v2/status')


def test_a_post_answer_without_an_id_fails_and_says_what_was_done():
    routes = {'GET /api/v2/status': (200, STATUS, {}), 'GET /api/v2/silences': (200, [silence(tag='other')], {}),
              'POST /api/v2/silences': (200, {'ok': True}, {})}
    exc, calls = fails(routes, 'unreadable', 'no silenceID')
    assert exc.details['created'] == [] and calls[-1][0] == 'POST' and calls[-1][3] == 'Bearer ' + SECRET


def test_half_done_is_reported():
    routes = {'GET /api/v2/status': (200, STATUS, {}),
              'GET /api/v2/silences': (200, [silence('s1'), silence('s2', matchers=[
                  {'name': 'instance', 'value': 'old', 'isRegex': False}])], {}),
              'DELETE /api/v2/silence/s2': (200, b'', {}),
              'POST /api/v2/silences': (500, b'disk full', {})}
    exc, _calls = fails(routes, 'refused', 'disk full', exclusive=True, duration='6h')
    assert exc.changed and exc.details['expired'] == ['s2'] and exc.details['extended'] == []


def test_plan_keeps_extends_and_never_shortens():
    with fake({'GET /api/v2/status': (200, STATUS, {}),
               'GET /api/v2/silences': (200, [silence(ends='2026-12-02T09:59:30.000Z'),
                                              silence('s0', state='expired')], {})}) as (url, calls):
        kept = am.apply(params(url, duration='2h'), now=NOW)
        assert not kept['changed'] and kept['kept'] == ['s1']  # 30 s short: within the slack
        shorter = am.apply(params(url, duration='1h'), now=NOW)
        assert not shorter['changed']
        longer = am.apply(params(url, duration='3h'), now=NOW, check_mode=True)
        assert longer['changed'] and longer['extended'] == ['s1'] and longer['silences'][0]['ends_at'] == \
            '2026-12-02T11:00:00.000Z'
        assert all(c[0] == 'GET' for c in calls)


@pytest.mark.parametrize('given, words', [
    ({'tag': 'has space'}, 'tag must be'),
    ({'tag': ''}, 'tag must be'),
    ({'host_label': '1x'}, 'host_label'),
    ({'hosts': ['a b']}, 'not a host name'),
    ({'hosts': [], 'matchers': []}, 'needs hosts or matchers'),
    ({'hosts': [], 'matchers': [{'name': 'a', 'value': 'b', 'op': '!='}]}, 'every alert'),
    ({'matchers': [{'name': 'a-b', 'value': 'x'}]}, 'matchers needs'),
    ({'duration': '2 weeks'}, 'duration must be'),
    ({'duration': '30s'}, 'must last'),
    ({'duration': '8d'}, 'must last'),
    ({'ends_at': '2026-12-02 10:00'}, 'RFC 3339'),
    ({'ends_at': '2026-13-02T10:00:00Z'}, 'not a valid time'),
    ({'timeout': 0}, 'timeout'),
    ({'username': 'u', 'bearer_token': None}, 'both username and password'),
    ({'username': 'u', 'password': 'p'}, 'not both'),
    ({'bearer_token': 'a\nb'}, 'control character'),
    ({'url': 'ftp://x'}, 'not an http'),
    ({'url': 'http://h:99999'}, 'not an http'),
    ({'comment': ' '}, 'comment'),
])
def test_options_are_checked_before_any_request(given, words):
    with pytest.raises(am.AlertmanagerError) as info:
        am.apply(am.with_defaults(**dict({'url': 'http://127.0.0.1:1', 'tag': 'run', 'hosts': ['h'],
                                          'bearer_token': 'x' * 8}, **given)), now=NOW)
    assert info.value.error_kind == 'options' and words in info.value.msg


@pytest.mark.parametrize('text, seconds', [('90m', 5400), ('2h', 7200), ('1h30m', 5400), ('1d', 86400), ('45s', 45),
                                           ('600', 600), ('1d2h3m4s', 93784)])
def test_durations(text, seconds):
    assert am.parse_duration(text) == seconds


def test_times_round_trip():
    for text in ('2026-12-02T11:00:00Z', '2026-12-02T11:00:00.000Z', '2026-12-02T12:00:00.123456789+01:00'):
        value = am.parse_time(text, 'x')
        assert value.utcoffset() == datetime.timedelta(0) and value.hour == 11
    assert am.format_time(am.parse_time('2026-12-02T11:00:00.5Z', 'x')) == '2026-12-02T11:00:00.500Z'


def test_host_matchers():
    assert am.host_matcher('gpu-1.lab', 'instance', 'with_port')['value'] == r'gpu-1\.lab(:[0-9]+)?'
    assert am.matcher_text(am.host_matcher('gpu-1', 'host', 'exact')) == 'host="gpu-1"'
    assert am.matcher_text({'name': 'a', 'value': 'b', 'isRegex': True, 'isEqual': False}) == 'a!~"b"'


def test_now_is_the_clock_of_alertmanager():
    routes = {'GET /api/v2/status': (200, STATUS, {}), 'GET /api/v2/silences': (200, [], {}),
              'POST /api/v2/silences': (200, {'silenceID': 'new'}, {})}
    with fake(routes, server_date='Wed, 02 Dec 2026 08:00:00 GMT') as (url, calls):  # not this host's time
        result = am.apply(params(url, duration='2h'))
    body = json.loads([c for c in calls if c[0] == 'POST'][0][2])
    assert body['startsAt'] == '2026-12-02T08:00:00.000Z' and body['endsAt'] == '2026-12-02T10:00:00.000Z'
    assert result['created'] == ['new'] and body['comment'] == 'planned maintenance [onprem_ai.maintenance:run]'


def test_absent_ignores_the_times():
    routes = {'GET /api/v2/status': (200, STATUS, {}), 'GET /api/v2/silences': (200, [silence()], {}),
              'DELETE /api/v2/silence/s1': (200, b'', {})}
    with fake(routes) as (url, _calls):
        gone = am.apply(params(url, state='absent', hosts=[], duration='junk', ends_at='2020-01-01T00:00:00Z'), now=NOW)
    assert gone['expired'] == ['s1'] and gone['changed']


def test_reading_back_after_a_change_fails_and_says_it_changed():
    routes = {'GET /api/v2/status': (200, STATUS, {}),
              'GET /api/v2/silences': [(200, [], {}), (200, b'<html>proxy error</html>', {})],
              'POST /api/v2/silences': (200, {'silenceID': 'new'}, {})}
    exc, _calls = fails(routes, 'unreadable', 'were changed, but reading them back failed', 'proxy error')
    assert exc.changed and exc.details['created'] == ['new']
