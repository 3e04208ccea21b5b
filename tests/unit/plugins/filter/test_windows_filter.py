# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The window filters: errors become AnsibleFilterError; input as Ansible's YAML loader gives it."""

from __future__ import annotations

import icalendar
import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader

from ansible_collections.onprem_ai.maintenance.plugins.filter import windows as plugin

CALENDAR_YAML = """
maintenance_calendar:
  timezone: Europe/Berlin
  windows:
    - {name: monthly, frequency: monthly, weekday: tuesday, week: 2, start: '22:00', end: '02:00'}
  freezes:
    - {name: year-end, start: 2026-12-20, end: 2027-01-06}
"""


def calendar():
    """The calendar as a playbook's vars hold it: Ansible's YAML loader, tagged strings, dates and dicts."""
    return DataLoader().load(CALENDAR_YAML)['maintenance_calendar']


def test_filters_are_registered():
    assert set(plugin.FilterModule().filters()) == {'window_status', 'window_may_start', 'window_ical'}


def test_status_from_ansible_vars():
    answer = plugin.window_status(calendar(), '2026-12-02T08:00:00Z')
    assert answer['inside'] is False
    assert answer['next']['start_local'] == '2026-12-08T22:00:00+01:00'
    assert answer['upcoming'][1]['start_local'] == '2027-01-12T22:00:00+01:00'   # the year-end freeze is respected


def test_may_start_from_ansible_vars():
    answer = plugin.window_may_start(calendar(), '1h', '2026-12-09T00:30:00Z')
    assert answer['start'] is False and answer['inside'] is True
    answer = plugin.window_may_start(calendar(), '1h', '2026-12-02T08:00:00Z', emergency=True, reason='CVE-2026-0001')
    assert answer['start'] is True and answer['emergency'] is True and answer['emergency_reason'] == 'CVE-2026-0001'


@pytest.mark.parametrize('flag, expected', [('false', False), ('no', False), ('true', True), ('yes', True), (True, True)])
def test_emergency_flag_as_ansible_reads_booleans(flag, expected):
    answer = plugin.window_may_start(calendar(), '1h', '2026-12-02T08:00:00Z', emergency=flag, reason='CVE-2026-0001')
    assert answer['start'] is expected and answer['emergency'] is expected


def test_ical_of_the_next_window():
    window = plugin.window_status(calendar(), '2026-12-02T08:00:00Z')['next']
    text = plugin.window_ical(window, 'GPU maintenance, driver 570', description='What changes:\n- the driver; one node at a time',
                              dtstamp='2026-11-20T09:00:00Z')
    event = icalendar.Calendar.from_ical(text).walk('VEVENT')[0]
    assert str(event['summary']) == 'GPU maintenance, driver 570'
    assert str(event['description']) == 'What changes:\n- the driver; one node at a time'
    assert event.decoded('dtstart').isoformat() == '2026-12-08T22:00:00+01:00'


@pytest.mark.parametrize('call, match', [
    (lambda: plugin.window_status({'windows': []}), r'^window_status: windows: at least one'),
    (lambda: plugin.window_status(yaml.safe_load(CALENDAR_YAML)['maintenance_calendar'], now='tomorrow'),
     r'^window_status: now: .* is not an ISO 8601 time'),
    (lambda: plugin.window_may_start(yaml.safe_load(CALENDAR_YAML)['maintenance_calendar'], '1h', emergency=True, reason=''),
     r'^window_may_start: emergency: .* needs a non-empty reason'),
    (lambda: plugin.window_may_start(yaml.safe_load(CALENDAR_YAML)['maintenance_calendar'], 'a while'),
     r"^window_may_start: duration: 'a while' is not a duration"),
    (lambda: plugin.window_may_start(yaml.safe_load(CALENDAR_YAML)['maintenance_calendar'], '1h', emergency='maybe'),
     r"^window_may_start: emergency: 'maybe' is not a boolean"),
    (lambda: plugin.window_ical(None, 'x'), r'^window_ical: a window .* none: there is no such window'),
    (lambda: plugin.window_ical([{'start': '2026-12-08T21:00:00Z', 'end': '2026-12-09T01:00:00Z'}] * 2, 'x', uid='a@b'),
     r'^window_ical: uid names one event'),
    (lambda: plugin.window_ical({'start': '2026-12-08T21:00:00Z', 'end': '2026-12-08T20:00:00Z'}, 'x'),
     r'^window_ical: events\[0\]\.end'),
])
def test_errors_are_filter_errors(call, match):
    with pytest.raises(AnsibleFilterError, match=match):
        call()
