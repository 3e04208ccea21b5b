# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Maintenance windows: the cases are in test_windows.yaml (status, may_start, errors); invariants below."""

from __future__ import annotations

import datetime
import os
import sys

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _windows as windows

with open(os.path.join(os.path.dirname(__file__), 'test_windows.yaml'), encoding='utf-8') as _handle:
    CASES = yaml.safe_load(_handle)

UTC = datetime.timezone.utc


def assert_subset(actual, expected, path='answer'):
    """Every key of `expected` is in `actual` with that value (recursively; lists item by item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), '%s: expected a mapping, got %r' % (path, actual)
        for key, value in expected.items():
            assert key in actual, '%s.%s missing in %r' % (path, key, actual)
            assert_subset(actual[key], value, '%s.%s' % (path, key))
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) >= len(expected), '%s: %r vs %r' % (path, actual, expected)
        if not expected:
            assert actual == [], '%s: expected empty, got %r' % (path, actual)
        for i, value in enumerate(expected):
            assert_subset(actual[i], value, '%s[%d]' % (path, i))
    else:
        assert actual == expected, '%s: %r != %r' % (path, actual, expected)


def ids(cases):
    return [case['id'] for case in cases]


@pytest.mark.parametrize('case', CASES['status'], ids=ids(CASES['status']))
def test_status(case):
    answer = windows.Calendar.from_data(case['calendar']).status(case['now'])
    assert_subset(answer, case['expect'])
    assert answer['message']


@pytest.mark.parametrize('case', CASES['may_start'], ids=ids(CASES['may_start']))
def test_may_start(case):
    answer = windows.Calendar.from_data(case['calendar']).may_start(
        case['now'], case['duration'], emergency=case.get('emergency', False), reason=case.get('emergency_reason'))
    assert_subset(answer, case['expect'])
    if 'reason' in case:
        assert case['reason'] in answer['reason']


@pytest.mark.parametrize('case', CASES['errors'], ids=ids(CASES['errors']))
def test_errors_name_the_field(case):
    with pytest.raises(windows.WindowError, match=case['match']) as info:
        windows.Calendar.from_data(case['calendar'])
    assert info.value.error_kind == 'invalid'


CAL = {'timezone': 'UTC', 'windows': [{'frequency': 'weekly', 'weekday': 'mon', 'start': '22:00', 'end': '02:00'}]}


@pytest.mark.parametrize('reason', [None, '', '   '])
def test_emergency_needs_a_reason(reason):
    with pytest.raises(windows.RefusedError, match='needs a non-empty reason') as info:
        windows.Calendar.from_data(CAL).may_start('2026-12-02T12:00:00Z', '1h', emergency=True, reason=reason)
    assert info.value.error_kind == 'refused'


@pytest.mark.parametrize('value, expected', [
    ('2026-12-08T21:00:00Z', datetime.datetime(2026, 12, 8, 21, tzinfo=UTC)),
    ('2026-12-08T22:00:00+01:00', datetime.datetime(2026, 12, 8, 21, tzinfo=UTC)),
    ('1796763600', datetime.datetime(2026, 12, 8, 21, tzinfo=UTC)),
    (1796763600.0, datetime.datetime(2026, 12, 8, 21, tzinfo=UTC)),
    (datetime.datetime(2026, 12, 8, 16, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
     datetime.datetime(2026, 12, 8, 21, tzinfo=UTC)),
])
def test_parse_instant(value, expected):
    assert windows.parse_instant(value) == expected


@pytest.mark.parametrize('value, match', [
    (datetime.datetime(2026, 12, 8, 21), 'has no UTC offset'),   # what Ansible's now() returns
    ('2026-12-08 21:00', 'has no UTC offset'),
    ('next tuesday', 'is not an ISO 8601 time'),
    (True, 'is not a time'),
    ([], 'is not a time'),
    ('9999-12-31T00:00:00Z', 'is out of the range'),
    (1e300, 'out of range'),
])
def test_parse_instant_refuses(value, match):
    with pytest.raises(windows.WindowError, match='now: .*' + match):
        windows.parse_instant(value)


@pytest.mark.parametrize('value, seconds', [
    ('8h', 28800), ('1h30m', 5400), ('1h 30m', 5400), ('90m', 5400), ('90min', 5400), ('2d', 172800), ('45s', 45),
    (3600, 3600), ('3600', 3600), (datetime.timedelta(minutes=5), 300), (0, 0),
])
def test_parse_duration(value, seconds):
    assert windows.parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize('value', ['', 'h', 'soon', '-5', -5, True, None, '1.5h'])
def test_parse_duration_refuses(value):
    with pytest.raises(windows.WindowError, match='duration'):
        windows.parse_duration(value)


def test_emergency_must_be_a_boolean():
    with pytest.raises(windows.WindowError, match="emergency: 'false' is not a boolean"):
        windows.Calendar.from_data(CAL).may_start('2026-12-02T12:00:00Z', '1h', emergency='false', reason='x')


def test_missing_holidays_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'holidays', None)   # import holidays -> ImportError
    calendar = dict(CAL, holidays={'country': 'DE'})
    with pytest.raises(windows.WindowError, match='holidays: public holidays need the holidays Python package'):
        windows.Calendar.from_data(calendar)


def test_calendar_may_be_a_bare_list_of_rules():
    cal = windows.Calendar.from_data([dict(CAL['windows'][0], timezone='UTC')])
    assert cal.status('2026-12-07T23:00:00Z')['inside'] is True


def test_windows_between_two_times():
    cal = windows.Calendar.from_data(CAL)
    found = cal.windows('2026-12-01T00:00:00Z', '2026-12-31T00:00:00Z')
    # the one of 30 November overlaps the start of the span, so it is listed
    assert [w['start'] for w in found] == ['2026-11-30T22:00:00Z', '2026-12-07T22:00:00Z', '2026-12-14T22:00:00Z', '2026-12-21T22:00:00Z',
                                           '2026-12-28T22:00:00Z']


# ----- invariants over random times: the edges of every window answer consistently --------------------------------

INVARIANT_CALENDARS = [
    {'timezone': 'Europe/Berlin', 'windows': [{'frequency': 'weekly', 'weekday': ['sat', 'sun'], 'start': '02:30', 'end': '01:00'}],
     'business_hours': {'start': '09:00', 'end': '17:00'}, 'freezes': [{'start': '2027-03-20', 'end': '2027-04-02'}]},
    {'timezone': 'America/New_York', 'windows': [{'frequency': 'monthly', 'weekday': 'sun', 'week': 'last', 'start': '01:30', 'duration': '3h'}]},
    {'timezone': 'Australia/Lord_Howe', 'windows': [{'frequency': 'quarterly', 'day': 31, 'if_missing': 'last', 'start': '23:00', 'end': '03:00'}]},
]
SECOND = datetime.timedelta(seconds=1)


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, len(INVARIANT_CALENDARS) - 1),
       now=st.datetimes(min_value=datetime.datetime(2026, 1, 1), max_value=datetime.datetime(2028, 12, 31),
                        timezones=st.just(UTC)))
def test_invariants(index, now):
    cal = windows.Calendar.from_data(INVARIANT_CALENDARS[index])
    status = cal.status(now, upcoming=3)
    if status['inside']:
        current = status['current']
        start, end = windows.parse_instant(current['start']), windows.parse_instant(current['end'])
        assert start <= now < end
        assert status['remaining_seconds'] == int((end - now).total_seconds())
        assert cal.status(end)['inside'] is False or cal.status(end)['current']['start'] != current['start']
    nxt = status['next']
    assert nxt is not None
    start, end = windows.parse_instant(nxt['start']), windows.parse_instant(nxt['end'])
    assert now < start < end
    assert end - start == datetime.timedelta(seconds=nxt['duration_seconds'])
    # the edges: closed before the start, open at it and a second before the end, closed at the end
    assert cal.status(start - SECOND)['next']['start'] == nxt['start']
    assert cal.status(start)['inside'] and cal.status(start)['current']['start'] == nxt['start']
    assert cal.status(end - SECOND)['remaining_seconds'] == 1
    assert cal.status(end)['inside'] is False
    starts = [windows.parse_instant(w['start']) for w in status['upcoming']]
    ends = [windows.parse_instant(w['end']) for w in status['upcoming']]
    assert all(ends[i] < starts[i + 1] for i in range(len(starts) - 1))
