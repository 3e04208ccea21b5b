# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The iCalendar writer, read back with the icalendar package (an independent RFC 5545 parser) and checked
line by line (CRLF, 75 octets, required properties)."""

from __future__ import annotations

import datetime

import icalendar
import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _ical as ical

UTC = datetime.timezone.utc
STAMP = '2026-11-20T09:00:00Z'


def parse(text):
    return icalendar.Calendar.from_ical(text)


def physical_lines(text):
    assert text.endswith('\r\n')
    assert '\n' not in text.replace('\r\n', '')
    assert '\r' not in text.replace('\r\n', '')
    return text[:-2].split('\r\n')


def check_strict(text):
    """What a strict reader needs: CRLF, lines of at most 75 octets, the required properties once each."""
    lines = physical_lines(text)
    for line in lines:
        assert len(line.encode('utf-8')) <= 75, line
    unfolded = text.replace('\r\n ', '')
    logical = unfolded[:-2].split('\r\n')
    assert logical[0] == 'BEGIN:VCALENDAR' and logical[-1] == 'END:VCALENDAR'
    assert logical.count('VERSION:2.0') == 1
    assert sum(1 for line in logical if line.startswith('PRODID:')) == 1
    events = unfolded.split('BEGIN:VEVENT')[1:]
    assert events
    for event in events:
        body = event.split('END:VEVENT')[0].split('\r\n')
        for prop in ('UID', 'DTSTAMP', 'DTSTART', 'DTEND', 'SUMMARY'):
            assert sum(1 for line in body if line.split(':')[0].split(';')[0] == prop) == 1, prop
    for tzid in {line.split('TZID=')[1].split(':')[0] for line in logical if ';TZID=' in line}:
        assert 'TZID:%s' % tzid in logical, 'no VTIMEZONE for %s' % tzid
    for observance in unfolded.split('BEGIN:STANDARD')[1:] + unfolded.split('BEGIN:DAYLIGHT')[1:]:
        body = observance.split('END:')[0].split('\r\n')
        for prop in ('DTSTART', 'TZOFFSETFROM', 'TZOFFSETTO'):   # RFC 5545 3.6.5: required, once
            assert sum(1 for line in body if line.startswith(prop + ':')) == 1, (prop, body)
        assert all(line.split(':')[1][0] in '+-' for line in body if line.startswith('TZOFFSET'))
    return logical


@pytest.mark.parametrize('text, escaped', [
    ('plain', 'plain'),
    ('a, b; c', 'a\\, b\\; c'),
    ('line 1\nline 2\r\nline 3\rline 4', 'line 1\\nline 2\\nline 3\\nline 4'),
    ('C:\\path', 'C:\\\\path'),
    ('bell\x07 and tab\t', 'bell and tab\t'),
    ('colon: stays', 'colon: stays'),
])
def test_escape_text(text, escaped):
    assert ical.escape_text(text) == escaped


@pytest.mark.parametrize('line', [
    'DESCRIPTION:' + 'x' * 63,                 # 75 octets: not folded
    'DESCRIPTION:' + 'x' * 64,                 # 76: folded
    'DESCRIPTION:' + 'x' * 500,
    'DESCRIPTION:' + 'ü' * 100,                # two octets each
    'DESCRIPTION:' + 'a' + '€' * 60,           # three octets each, odd alignment
    'SUMMARY:' + '🚀 GPU' * 30,                # four octets
])
def test_fold_keeps_75_octets_and_whole_characters(line):
    folded = ical.fold(line)
    parts = folded.split('\r\n')
    assert all(len(part.encode('utf-8')) <= 75 for part in parts)
    assert all(part.startswith(' ') for part in parts[1:])
    assert folded.replace('\r\n ', '') == line
    if len(line.encode('utf-8')) <= 75:
        assert folded == line
    else:
        assert all(len(part.encode('utf-8')) >= 72 for part in parts[:-1])  # filled, a character short at most


EVENTS = [
    # id, start, end, timezone, expected DTSTART line
    ('utc', '2026-12-08T21:00:00Z', '2026-12-09T01:00:00Z', None, 'DTSTART:20261208T210000Z'),
    ('berlin-winter', '2026-12-08T21:00:00Z', '2026-12-09T01:00:00Z', 'Europe/Berlin',
     'DTSTART;TZID=Europe/Berlin:20261208T220000'),
    ('berlin-spring-night', '2026-03-29T00:00:00Z', '2026-03-29T03:00:00Z', 'Europe/Berlin',
     'DTSTART;TZID=Europe/Berlin:20260329T010000'),
    ('new-york-fall-back', '2026-11-01T02:00:00Z', '2026-11-01T09:00:00Z', 'America/New_York',
     'DTSTART;TZID=America/New_York:20261031T220000'),
    ('kolkata-year-end', '2026-12-31T16:30:00Z', '2026-12-31T20:30:00Z', 'Asia/Kolkata',
     'DTSTART;TZID=Asia/Kolkata:20261231T220000'),
    ('lord-howe-half-hour', '2026-10-03T14:30:00Z', '2026-10-03T17:00:00Z', 'Australia/Lord_Howe',
     'DTSTART;TZID=Australia/Lord_Howe:20261004T010000'),
    # 02:30 CET on 25 October is the second 02:30 of that night: local time cannot say so, UTC can
    ('berlin-repeated-hour', '2026-10-25T01:30:00Z', '2026-10-25T03:00:00Z', 'Europe/Berlin',
     'DTSTART:20261025T013000Z'),
]


@pytest.mark.parametrize('start, end, zone, dtstart', [e[1:] for e in EVENTS], ids=[e[0] for e in EVENTS])
def test_event_reads_back_at_the_same_instants(start, end, zone, dtstart):
    text = ical.render([{'start': start, 'end': end, 'timezone': zone, 'name': 'monthly patch',
                         'summary': 'GPU maintenance; driver 570, CUDA 12.8',
                         'description': 'What changes:\n- driver 550 -> 570\n- no downtime expected, one node at a time'}],
                       dtstamp=STAMP)
    logical = check_strict(text)
    assert dtstart in logical
    event = parse(text).walk('VEVENT')[0]
    assert event.decoded('dtstart').astimezone(UTC) == ical._instant(start, 'start')
    assert event.decoded('dtend').astimezone(UTC) == ical._instant(end, 'end')
    assert event.decoded('dtstamp') == datetime.datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert str(event['summary']) == 'GPU maintenance; driver 570, CUDA 12.8'
    assert str(event['description']).endswith('- no downtime expected, one node at a time')
    assert str(event['uid']) == ical.default_uid('monthly patch', ical._instant(start, 'start'))
    if zone:
        # the VTIMEZONE we wrote, read by icalendar without its own tz database, gives the same offsets
        vtimezone = parse(text).walk('VTIMEZONE')[0]
        built = vtimezone.to_tz(lookup_tzid=False)
        for value in (start, end):
            instant = ical._instant(value, 'x')
            assert instant.astimezone(built).utcoffset() == instant.astimezone(ical._zone(zone)).utcoffset()


def test_several_events_share_one_vtimezone_per_zone():
    events = [
        {'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z', 'timezone': 'Europe/Berlin', 'summary': 'a'},
        {'start': '2027-06-08T20:00:00Z', 'end': '2027-06-09T00:00:00Z', 'timezone': 'Europe/Berlin', 'summary': 'b'},
        {'start': '2027-01-02T20:00:00Z', 'end': '2027-01-03T04:00:00Z', 'timezone': 'America/New_York', 'summary': 'c',
         'uid': 'fixed@example.org', 'sequence': 2, 'location': 'DC 1, room 2', 'organizer': 'ops@example.org',
         'url': 'https://ops.example.org/changes/17'},
    ]
    text = ical.render(events, dtstamp=STAMP)
    logical = check_strict(text)
    assert logical.count('BEGIN:VTIMEZONE') == 2
    cal = parse(text)
    found = cal.walk('VEVENT')
    assert [str(e['summary']) for e in found] == ['a', 'b', 'c']
    assert found[1].decoded('dtstart').utcoffset() == datetime.timedelta(hours=2)   # CEST in June
    assert str(found[2]['uid']) == 'fixed@example.org'
    assert int(found[2]['sequence']) == 2
    assert str(found[2]['location']) == 'DC 1, room 2'
    assert 'ORGANIZER:mailto:ops@example.org' in logical
    # utc: no TZID, no VTIMEZONE
    text = ical.render(events, dtstamp=STAMP, utc=True)
    assert 'TZID' not in text and 'VTIMEZONE' not in text
    check_strict(text)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=('Cs', 'Cc')), max_size=300)
       | st.text(alphabet=',;\\\n:"\'ü€🚀 x', max_size=200))
def test_any_text_round_trips(text):
    summary = text.strip() or 'x'
    out = ical.render([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z', 'summary': summary,
                        'description': text}], dtstamp=STAMP)
    check_strict(out)
    event = parse(out).walk('VEVENT')[0]
    assert str(event['summary']) == summary
    if text:
        assert str(event['description']) == text


@pytest.mark.parametrize('events, match', [
    ([], 'at least one event'),
    ([{'start': '2026-12-09T01:00:00Z', 'end': '2026-12-08T21:00:00Z', 'summary': 'x'}], r'events\[0\]\.end: .* is not after'),
    ([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z'}], r'events\[0\]\.summary: missing'),
    ([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z', 'summary': ' '}], r'events\[0\]\.summary: .*non-empty'),
    ([{'start': '2026-12-08 21:00', 'end': '2026-12-09T01:00:00Z', 'summary': 'x'}], r'events\[0\]\.start: .* no UTC offset'),
    ([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z', 'summary': 'x', 'timezone': 'Mars/Olympus'}],
     r"events\[0\]\.timezone: unknown time zone 'Mars/Olympus'"),
    ([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z', 'summary': 'x', 'sequence': -1}],
     r'events\[0\]\.sequence'),
])
def test_render_refuses(events, match):
    with pytest.raises(ical.IcalError, match=match):
        ical.render(events, dtstamp=STAMP)
