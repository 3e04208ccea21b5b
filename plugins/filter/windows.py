# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Maintenance window filters: where a time stands in the calendar, may a node start, the .ics event.

Documentation: window_status.yml, window_may_start.yml and window_ical.yml beside this file; the rule
syntax and the time-zone behaviour in docs/windows.md. The logic is in module_utils/_windows.py and
module_utils/_ical.py (shared with the plan and the playbooks).

Filters rather than a lookup: the answers are pure functions of the calendar and a time (no outside
source is read), so they compose in `when` / `assert` / `set_fact`, can be asked for any time (the
plan asks about next month), and are tested like any function.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _ical as ical
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _windows as windows


def _calendar(data, name):
    try:
        return windows.Calendar.from_data(data)
    except OnpremError as exc:
        raise AnsibleFilterError('%s: %s' % (name, exc.msg)) from None


def window_status(calendar, now=None, upcoming=3):
    """Inside a window or not at `now` (default: the current time), what is left of it, the next windows."""
    cal = _calendar(calendar, 'window_status')
    try:
        return cal.status(now, upcoming=upcoming)
    except OnpremError as exc:
        raise AnsibleFilterError('window_status: %s' % exc.msg) from None


def window_may_start(calendar, duration=0, now=None, emergency=False, reason=None):
    """Whether a node that takes `duration` may start at `now`; an emergency needs a reason."""
    cal = _calendar(calendar, 'window_may_start')
    try:
        emergency = boolean(emergency, strict=True)
    except TypeError:
        raise AnsibleFilterError('window_may_start: emergency: %r is not a boolean (true or false)' % (emergency,)) from None
    try:
        return cal.may_start(now, duration, emergency=emergency, reason=reason)
    except OnpremError as exc:
        raise AnsibleFilterError('window_may_start: %s' % exc.msg) from None


def window_ical(window, summary, description=None, location=None, uid=None, dtstamp=None, utc=False, sequence=None,
                url=None, organizer=None, domain=None):
    """An iCalendar (RFC 5545) text with one VEVENT per window (a window dict of window_status, or a list)."""
    items = window if isinstance(window, (list, tuple)) else [window]
    events = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise AnsibleFilterError('window_ical: a window (a dict with start and end, such as window_status().next) '
                                     'is needed, got %s' % ('none: there is no such window' if item is None
                                                            else type(item).__name__))
        if uid is not None and len(items) > 1:
            raise AnsibleFilterError('window_ical: uid names one event; leave it out for a list of windows')
        events.append({
            'start': item.get('start'), 'end': item.get('end'), 'timezone': item.get('timezone'),
            'name': item.get('name'), 'summary': summary, 'description': description, 'location': location,
            'uid': uid, 'sequence': sequence, 'url': url, 'organizer': organizer, 'domain': domain,
        })
    try:
        return ical.render(events, dtstamp=dtstamp, utc=utc)
    except OnpremError as exc:
        raise AnsibleFilterError('window_ical: %s' % exc.msg) from None


class FilterModule:
    """Maintenance window filters."""

    def filters(self):
        return {
            'window_status': window_status,
            'window_may_start': window_may_start,
            'window_ical': window_ical,
        }
