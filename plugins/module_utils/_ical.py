# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small RFC 5545 (iCalendar) writer for the change notice: one VCALENDAR with VEVENTs for windows.

- lines end in CRLF and are folded at 75 octets (never inside a UTF-8 character), continuation lines
  starting with one space;
- TEXT values (SUMMARY, DESCRIPTION, LOCATION) escape backslash, semicolon, comma and newlines and
  drop other control characters;
- times are written in UTC (...Z), or with a TZID and a VTIMEZONE built from the zoneinfo database for
  the years around the events (RFC 5545 wants a VTIMEZONE for each TZID used); an instant in the
  repeated hour of a fall-back night that local time cannot name (RFC 5545 reads such a local time
  as its first occurrence) is written in UTC instead.

Standard library only. PRIVATE to the onprem_ai.maintenance collection: no compatibility promise.
"""

from __future__ import annotations

import datetime as _dt
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

try:
    import zoneinfo
except ImportError:  # pragma: no cover - Python < 3.9
    zoneinfo = None

UTC = _dt.timezone.utc
PRODID = '-//onprem_ai//maintenance collection//EN'
DEFAULT_DOMAIN = 'onprem-ai.maintenance'
LINE_OCTETS = 75


class IcalError(OnpremError):
    """An event that cannot be written (missing or inconsistent field); the message names it."""

    error_kind = 'invalid'


def escape_text(value):
    """An RFC 5545 TEXT value: \\ ; , escaped, newlines as \\n, other control characters dropped."""
    text = str(value).replace('\r\n', '\n').replace('\r', '\n')
    text = ''.join(ch for ch in text if ch in '\n\t' or ord(ch) >= 32 and ord(ch) != 127)
    return (text.replace('\\', '\\\\').replace(';', '\\;').replace(',', '\\,').replace('\n', '\\n'))


def fold(line):
    """Fold one content line at 75 octets (RFC 5545 3.1), joined with CRLF + space; no CRLF at the end."""
    data = line.encode('utf-8')
    if len(data) <= LINE_OCTETS:
        return line
    parts = []
    current = b''
    limit = LINE_OCTETS
    for ch in line:
        encoded = ch.encode('utf-8')
        if len(current) + len(encoded) > limit:
            parts.append(current)
            current = b''
            limit = LINE_OCTETS - 1  # the leading space of a continuation line counts
        current += encoded
    parts.append(current)
    return '\r\n '.join(part.decode('utf-8') for part in parts)


def _utc(instant):
    return instant.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')


def _offset(delta):
    seconds = int(delta.total_seconds())
    sign = '+' if seconds >= 0 else '-'
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return '%s%02d%02d%s' % (sign, hours, minutes, '%02d' % secs if secs else '')


def _instant(value, field):
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise IcalError('%s: %s has no UTC offset' % (field, value.isoformat()))
        return value.astimezone(UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = _dt.datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith(('Z', 'z')) else text)
        except ValueError:
            raise IcalError('%s: %r is not an ISO 8601 time' % (field, value)) from None
        return _instant(moment, field)
    raise IcalError('%s: %r is not a time (an ISO 8601 string with an offset or an aware datetime)' % (field, value))


def _zone(name):
    if zoneinfo is None:  # pragma: no cover
        raise IcalError('timezone: local times need Python 3.9 or later (zoneinfo)')
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise IcalError('timezone: unknown time zone %r' % (name,)) from None


def _repeated(local):
    """True when `local` (aware, in a ZoneInfo) is the second of two instants with this wall-clock time."""
    other = local.replace(fold=1 - local.fold)
    return local.fold == 1 and other.utcoffset() != local.utcoffset()


def _transitions(zone, begin, end):
    """[(instant UTC, offset before, offset after, dst after, name after)] of `zone` in [begin, end]."""
    found = []
    step = _dt.timedelta(days=1)
    probe = begin
    before = probe.astimezone(zone)
    while probe < end:
        nxt = probe + step
        after = nxt.astimezone(zone)
        if (after.utcoffset(), after.dst(), after.tzname()) != (before.utcoffset(), before.dst(), before.tzname()):
            low, high = probe, nxt
            while high - low > _dt.timedelta(seconds=1):
                mid = low + (high - low) / 2
                mid = mid.replace(microsecond=0)
                if mid <= low:
                    break
                if mid.astimezone(zone).utcoffset() == before.utcoffset() and \
                        mid.astimezone(zone).tzname() == before.tzname():
                    low = mid
                else:
                    high = mid
            local_after = high.astimezone(zone)
            found.append((high, before.utcoffset(), local_after.utcoffset(), bool(local_after.dst()),
                          local_after.tzname()))
        probe, before = nxt, after
    return found


def vtimezone(name, begin, end):
    """The lines of a VTIMEZONE for `name` valid from a year before `begin` to a year after `end`."""
    zone = _zone(name)
    start = begin - _dt.timedelta(days=366)
    lines = ['BEGIN:VTIMEZONE', 'TZID:%s' % name]
    transitions = _transitions(zone, start, end + _dt.timedelta(days=366))
    # the observance in force at the start of the span (the only one for a zone without changes)
    local = start.astimezone(zone)
    kind = 'DAYLIGHT' if local.dst() else 'STANDARD'
    lines += ['BEGIN:%s' % kind, 'DTSTART:%s' % local.replace(tzinfo=None, microsecond=0).strftime('%Y%m%dT%H%M%S'),
              'TZOFFSETFROM:%s' % _offset(local.utcoffset()), 'TZOFFSETTO:%s' % _offset(local.utcoffset()),
              'TZNAME:%s' % escape_text(local.tzname()), 'END:%s' % kind]
    for instant, off_from, off_to, dst, tzname in transitions:
        kind = 'DAYLIGHT' if dst else 'STANDARD'
        # DTSTART of an observance is the local time of the onset, read in the offset before it (RFC 5545 3.6.5)
        onset = (instant + off_from).replace(tzinfo=None)
        lines += ['BEGIN:%s' % kind, 'DTSTART:%s' % onset.strftime('%Y%m%dT%H%M%S'),
                  'TZOFFSETFROM:%s' % _offset(off_from), 'TZOFFSETTO:%s' % _offset(off_to),
                  'TZNAME:%s' % escape_text(tzname), 'END:%s' % kind]
    lines.append('END:VTIMEZONE')
    return lines


def _when(prop, instant, zone):
    if zone is None:
        return '%s:%s' % (prop, _utc(instant))
    local = instant.astimezone(zone)
    if _repeated(local):
        return '%s:%s' % (prop, _utc(instant))
    return '%s;TZID=%s:%s' % (prop, zone.key, local.strftime('%Y%m%dT%H%M%S'))


def default_uid(name, start, domain=DEFAULT_DOMAIN):
    """A stable UID for a window: the same window gives the same UID, so a re-sent notice updates the event."""
    slug = re.sub(r'[^A-Za-z0-9]+', '-', str(name or 'window')).strip('-').lower() or 'window'
    return 'maintenance-%s-%s@%s' % (slug, _utc(start), domain)


def event_lines(start, end, summary, uid, dtstamp, description=None, location=None, zone=None, sequence=None,
                url=None, organizer=None, categories=None):
    """The lines of one VEVENT (unfolded)."""
    if not summary or not str(summary).strip():
        raise IcalError('summary: an event needs a non-empty summary')
    if end <= start:
        raise IcalError('end: %s is not after the start %s' % (_utc(end), _utc(start)))
    lines = ['BEGIN:VEVENT', 'UID:%s' % escape_text(uid), 'DTSTAMP:%s' % _utc(dtstamp),
             _when('DTSTART', start, zone), _when('DTEND', end, zone), 'SUMMARY:%s' % escape_text(summary)]
    if description:
        lines.append('DESCRIPTION:%s' % escape_text(description))
    if location:
        lines.append('LOCATION:%s' % escape_text(location))
    if categories:
        lines.append('CATEGORIES:%s' % ','.join(escape_text(c) for c in categories))
    if url:
        lines.append('URL:%s' % url)
    if organizer:
        lines.append('ORGANIZER:%s' % (organizer if ':' in organizer else 'mailto:' + organizer))
    if sequence is not None:
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise IcalError('sequence: %r is not a revision number (0, 1, 2 ...)' % (sequence,))
        lines.append('SEQUENCE:%d' % sequence)
    lines += ['TRANSP:TRANSPARENT', 'END:VEVENT']
    return lines


def render(events, dtstamp=None, utc=False, prodid=PRODID, method='PUBLISH'):
    """A VCALENDAR text (CRLF line ends, folded) for `events`: dicts with start, end (aware datetimes or
    ISO 8601 with an offset) and summary, and optionally timezone, uid, name (for the default uid),
    domain, description, location, sequence, url, organizer, categories.

    An event with a timezone (an IANA name) is written in local time with that TZID, and one VTIMEZONE
    per zone is added; without one, or with `utc`, in UTC. `dtstamp`: when the notice is written
    (default: now).
    """
    if not isinstance(events, (list, tuple)) or not events:
        raise IcalError('events: at least one event is needed')
    stamp = _instant(dtstamp, 'dtstamp') if dtstamp is not None else _dt.datetime.now(UTC).replace(microsecond=0)
    body = []
    spans = {}
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise IcalError('events[%d]: a mapping with start, end and summary is needed' % i)
        for key in ('start', 'end', 'summary'):
            if item.get(key) in (None, ''):
                raise IcalError('events[%d].%s: missing' % (i, key))
        start = _instant(item['start'], 'events[%d].start' % i)
        end = _instant(item['end'], 'events[%d].end' % i)
        zone = None
        if item.get('timezone') and not utc:
            try:
                zone = _zone(item['timezone'])
            except IcalError as exc:
                raise IcalError('events[%d].%s' % (i, exc.msg)) from None
            spans.setdefault(zone.key, []).extend([start, end])
        uid = item.get('uid') or default_uid(item.get('name'), start, item.get('domain') or DEFAULT_DOMAIN)
        try:
            body += event_lines(start, end, item['summary'], uid, stamp, description=item.get('description'),
                                location=item.get('location'), zone=zone, sequence=item.get('sequence'),
                                url=item.get('url'), organizer=item.get('organizer'), categories=item.get('categories'))
        except IcalError as exc:
            raise IcalError('events[%d].%s' % (i, exc.msg)) from None
    lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:%s' % prodid, 'CALSCALE:GREGORIAN']
    if method:
        lines.append('METHOD:%s' % method)
    for name in sorted(spans):
        lines += vtimezone(name, min(spans[name]), max(spans[name]))
    lines += body
    lines.append('END:VCALENDAR')
    return ''.join(fold(line) + '\r\n' for line in lines)
