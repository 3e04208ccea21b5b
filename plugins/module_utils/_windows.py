# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Maintenance windows: calendar rules, exclusions (business hours, freezes, public holidays), time zones.

One calendar (a dict, see docs/windows.md) is parsed once with `Calendar.from_data()`; then
`status(now)` says whether `now` is inside a window, how long it still lasts and when the next one
opens and closes, and `may_start(now, duration)` whether a node that takes `duration` may still start.
Shared by the window filters (plugins/filter/windows.py), the plan and the maintenance playbooks.

Rules of time, in short (docs/windows.md has the long form):
- every instant is an aware datetime; the arithmetic is done in UTC, so durations are real elapsed time;
- a rule's wall-clock times are read in the rule's time zone as RFC 5545 reads a DATE-TIME with a TZID:
  a time that occurs twice (the fall-back night) is its first occurrence, a time that does not occur
  (the spring-forward gap) is read with the UTC offset before the gap (02:30 -> 03:30 in Europe/Berlin);
- an `end` earlier than (or equal to) `start` is on the next day; an occurrence whose end is not after
  its start once read that way (e.g. 02:30-03:00 on the spring-forward night) does not occur;
- a fifth weekday (or a 29th-31st day) a month does not have: that month has no window
  (`if_missing: skip`, the default), or the last such weekday / the last day (`if_missing: last`).

Only the standard library (zoneinfo, Python >= 3.9 with the system's or the tzdata package's time zone
database); the `holidays` package only when a calendar asks for public holidays.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as _dt
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

try:
    import zoneinfo
except ImportError:  # pragma: no cover - Python < 3.9
    zoneinfo = None

UTC = _dt.timezone.utc
HORIZON = _dt.timedelta(days=731)   # how far ahead the next window is looked for
MAX_DURATION = _dt.timedelta(days=7)  # the longest monthly / quarterly window
LOOKBACK = MAX_DURATION + _dt.timedelta(days=1)
EARLIEST = _dt.datetime(1971, 1, 1, tzinfo=UTC)  # times outside are refused (the search horizon must fit in a year
LATEST = _dt.datetime(9000, 1, 1, tzinfo=UTC)    # datetime can hold)

WEEKDAYS = {}
for _i, _name in enumerate(('monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday')):
    WEEKDAYS[_name] = _i
    WEEKDAYS[_name[:3]] = _i
WEEKDAY_NAMES = ('monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday')
WEEK_WORDS = {'first': 1, 'second': 2, 'third': 3, 'fourth': 4, 'fifth': 5, 'last': -1}
FREQUENCIES = ('weekly', 'monthly', 'quarterly')
IF_MISSING = ('skip', 'last')

CALENDAR_KEYS = ('timezone', 'windows', 'business_hours', 'freezes', 'holidays')
WINDOW_KEYS = ('name', 'frequency', 'timezone', 'weekday', 'week', 'day', 'month', 'if_missing', 'start', 'end',
               'duration')
BUSINESS_KEYS = ('timezone', 'weekdays', 'start', 'end')
FREEZE_KEYS = ('name', 'timezone', 'start', 'end')
HOLIDAY_KEYS = ('country', 'subdivision', 'timezone')

_TIME = re.compile(r'^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$')
_DURATION = re.compile(r'^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$')
_DATE = re.compile(r'^\s*(\d{4})-(\d{2})-(\d{2})\s*$')


class WindowError(OnpremError):
    """A calendar, a time or a duration that cannot be used; the message names the field."""

    error_kind = 'invalid'


class RefusedError(OnpremError):
    """A request the window rules refuse (an emergency without a reason)."""

    error_kind = 'refused'


# ----- small parsers ------------------------------------------------------------------------------------------------

def _zone(value, field):
    if zoneinfo is None:  # pragma: no cover
        raise WindowError('%s: time zones need Python 3.9 or later (zoneinfo) on the controller' % field)
    if not isinstance(value, str) or not value.strip():
        raise WindowError('%s: a time zone name such as Europe/Berlin or UTC is needed, got %r' % (field, value))
    try:
        return zoneinfo.ZoneInfo(value.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise WindowError('%s: unknown time zone %r (an IANA name such as Europe/Berlin, America/New_York or UTC; '
                          'no time zone database entry: %s)' % (field, value, exc)) from None


def _time(value, field, allow_24=False):
    """'HH:MM' or 'HH:MM:SS' -> (datetime.time, is_24)."""
    if isinstance(value, _dt.time) and not isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None), False
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise WindowError("%s: %r is not a time of day; quote it: '22:00' (YAML 1.1 reads an unquoted 22:00 as "
                          "the number 1320)" % (field, value))
    match = _TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise WindowError("%s: %r is not a time of day (HH:MM, e.g. '22:00')" % (field, value))
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if allow_24 and (hour, minute, second) == (24, 0, 0):
        return _dt.time(0, 0), True
    if hour > 23 or minute > 59 or second > 59:
        raise WindowError('%s: %r is not a time of day (00:00 to 23:59%s)' % (field, value, ', or 24:00' if allow_24 else ''))
    return _dt.time(hour, minute, second), False


def parse_duration(value, field='duration'):
    """A duration: a number of seconds, a timedelta, or a string such as '8h', '1h30m', '90m', '2d', '45s'."""
    if isinstance(value, _dt.timedelta):
        result = value
    elif isinstance(value, bool):
        raise WindowError('%s: %r is not a duration' % (field, value))
    elif isinstance(value, (int, float)):
        result = _dt.timedelta(seconds=value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        if re.match(r'^\d+(\.\d+)?$', text):
            result = _dt.timedelta(seconds=float(text))
        else:
            match = _DURATION.match(text)
            if not match or not any(match.groups()):
                raise WindowError("%s: %r is not a duration (e.g. '8h', '1h30m', '90m', '2d' or a number of seconds)"
                                  % (field, value))
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            result = _dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    else:
        raise WindowError("%s: %r is not a duration (e.g. '8h', '1h30m', '90m' or a number of seconds)" % (field, value))
    if result < _dt.timedelta(0):
        raise WindowError('%s: %r is negative' % (field, value))
    return result


def parse_instant(value, field='now'):
    """An aware datetime in UTC from an aware datetime, an ISO 8601 string with an offset or Z, or epoch seconds.

    A time without an offset (a naive datetime, which is what Ansible's now() returns) is refused: it
    cannot be told which time zone it is in.
    """
    if value is None:
        return _dt.datetime.now(UTC)
    if isinstance(value, bool):
        raise WindowError('%s: %r is not a time' % (field, value))
    if isinstance(value, str) and re.match(r'^\s*\d+(\.\d+)?\s*$', value):
        value = float(value)
    if isinstance(value, (int, float)):
        try:
            value = _dt.datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise WindowError('%s: %r epoch seconds is out of range' % (field, value)) from None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = _dt.datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith(('Z', 'z')) else text)
        except ValueError:
            raise WindowError("%s: %r is not an ISO 8601 time (e.g. '2026-12-08T21:00:00Z' or "
                              "'2026-12-08T22:00:00+01:00') nor epoch seconds" % (field, value)) from None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise WindowError("%s: %s has no UTC offset, so it cannot be placed in time; give one with an offset or Z "
                              "(ansible_date_time.iso8601, now(utc=true, fmt='%%Y-%%m-%%dT%%H:%%M:%%SZ')) or epoch seconds"
                              % (field, value.isoformat()))
        if not EARLIEST <= value.astimezone(UTC) <= LATEST:
            raise WindowError('%s: %s is out of the range this calendar handles (%d to %d)'
                              % (field, value.isoformat(), EARLIEST.year, LATEST.year))
        return value.astimezone(UTC)
    raise WindowError('%s: %r is not a time (an ISO 8601 string with an offset, an aware datetime or epoch seconds)'
                      % (field, value))


def _weekday(value, field):
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return WEEKDAYS[value.strip().lower()]
    raise WindowError('%s: unknown weekday %r (monday ... sunday, or mon ... sun)' % (field, value))


def _weekdays(value, field):
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise WindowError('%s: at least one weekday is needed' % field)
    result = sorted({_weekday(item, '%s[%d]' % (field, i) if isinstance(value, (list, tuple)) else field)
                     for i, item in enumerate(items)})
    return tuple(result)


def _number(value):
    """'2' and '-1' (extra vars and surveys give strings) as numbers; anything else unchanged."""
    if isinstance(value, str) and re.match(r'^\s*-?\d+\s*$', value):
        return int(value)
    return value


def _week(value, field):
    value = _number(value)
    if isinstance(value, str) and value.strip().lower() in WEEK_WORDS:
        return WEEK_WORDS[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and (1 <= value <= 5 or value == -1):
        return value
    raise WindowError('%s: %r is not a week of the month (1 to 5, first ... fifth, or last / -1)' % (field, value))


def _day(value, field):
    value = _number(value)
    if isinstance(value, str) and value.strip().lower() == 'last':
        return -1
    if isinstance(value, int) and not isinstance(value, bool) and (1 <= value <= 31 or value == -1):
        return value
    raise WindowError('%s: %r is not a day of the month (1 to 31, or last / -1)' % (field, value))


def _check_keys(data, allowed, field):
    if not isinstance(data, dict):
        raise WindowError('%s: a mapping is needed, got %s' % (field, type(data).__name__))
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise WindowError('%s: unknown key%s %s (known: %s)' % (field, 's' if len(unknown) > 1 else '',
                                                                ', '.join(unknown), ', '.join(allowed)))


def _local(day, time, zone):
    """The UTC instant of a wall-clock time on a day in a zone, read as RFC 5545 reads a DATE-TIME with a TZID.

    fold=0: a repeated time is its first occurrence; a time in a gap is read with the offset before the gap.
    """
    return _dt.datetime.combine(day, time, tzinfo=zone).astimezone(UTC)


def _iso(instant, zone=None):
    value = instant.astimezone(zone) if zone is not None else instant.astimezone(UTC)
    text = value.isoformat()
    return text[:-6] + 'Z' if zone is None and text.endswith('+00:00') else text


def _days(start, end):
    day = start
    while day <= end:
        yield day
        day += _dt.timedelta(days=1)


def _months(first, last):
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield year, month
        month += 1
        if month > 12:
            year, month = year + 1, 1


def human_duration(seconds):
    """'3h 05m', '2d 4h', '45m', '30s'."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return '%dd %dh' % (days, hours)
    if hours:
        return '%dh %02dm' % (hours, minutes)
    if minutes:
        return '%dm' % minutes
    return '%ds' % secs


# ----- rules --------------------------------------------------------------------------------------------------------

class Rule:
    """One recurring window: frequency, which day(s), start, end or duration, time zone."""

    def __init__(self, data, index, default_zone):
        field = 'windows[%d]' % index
        _check_keys(data, WINDOW_KEYS, field)
        self.name = str(data.get('name') or 'window %d' % (index + 1))
        if data.get('name') is not None:
            field = 'windows[%d] (%s)' % (index, self.name)
        self.field = field
        frequency = data.get('frequency')
        if frequency not in FREQUENCIES:
            raise WindowError('%s.frequency: %r is not one of %s' % (field, frequency, ', '.join(FREQUENCIES)))
        self.frequency = frequency
        if data.get('timezone') is not None:
            self.zone = _zone(data['timezone'], field + '.timezone')
        elif default_zone is not None:
            self.zone = default_zone
        else:
            raise WindowError('%s.timezone: no time zone; set timezone on the window or on the calendar' % field)
        self.if_missing = data.get('if_missing', 'skip')
        if self.if_missing not in IF_MISSING:
            raise WindowError('%s.if_missing: %r is not one of %s' % (field, self.if_missing, ', '.join(IF_MISSING)))

        self.weekdays = self.week = self.day = None
        self.month = 1
        if frequency == 'weekly':
            for key in ('week', 'day', 'month'):
                if data.get(key) is not None:
                    raise WindowError('%s.%s: not used by a weekly window (weekday names the days)' % (field, key))
            if data.get('weekday') is None:
                raise WindowError('%s.weekday: a weekly window needs its weekday(s)' % field)
            self.weekdays = _weekdays(data['weekday'], field + '.weekday')
        else:
            has_weekday = data.get('weekday') is not None or data.get('week') is not None
            if has_weekday and data.get('day') is not None:
                raise WindowError('%s.day: give either day (of the month) or weekday and week, not both' % field)
            if data.get('day') is not None:
                self.day = _day(data['day'], field + '.day')
            else:
                if data.get('weekday') is None:
                    raise WindowError('%s.weekday: a %s window needs weekday and week, or day' % (field, frequency))
                if isinstance(data['weekday'], (list, tuple)):
                    raise WindowError('%s.weekday: a %s window has one weekday, got a list' % (field, frequency))
                self.weekdays = (_weekday(data['weekday'], field + '.weekday'),)
                if data.get('week') is None:
                    raise WindowError('%s.week: a %s window needs the week of the month (1 to 5 or last)'
                                      % (field, frequency))
                self.week = _week(data['week'], field + '.week')
            if frequency == 'quarterly':
                month = _number(data.get('month', 1))
                if isinstance(month, bool) or month not in (1, 2, 3):
                    raise WindowError('%s.month: %r is not a month of the quarter (1, 2 or 3; quarters start in '
                                      'January, April, July and October)' % (field, month))
                self.month = month
            elif data.get('month') is not None:
                raise WindowError('%s.month: only a quarterly window has a month (of the quarter)' % field)

        if data.get('start') is None:
            raise WindowError("%s.start: the start time is missing (HH:MM, e.g. '22:00')" % field)
        self.start = _time(data['start'], field + '.start')[0]
        if (data.get('end') is None) == (data.get('duration') is None):
            raise WindowError('%s.end: give either end (a time of day) or duration, exactly one of them' % field)
        self.end = self.duration = None
        if data.get('end') is not None:
            self.end, end_24 = _time(data['end'], field + '.end', allow_24=True)
            if not end_24 and self.end == self.start:
                raise WindowError('%s.end: %s is the start time; a window cannot be empty nor 24 hours by end time '
                                  '(use duration: 24h)' % (field, data['end']))
            # the next day when the end is not after the start ('22:00'-'02:00') or is '24:00'
            self.end_next_day = end_24 or self.end <= self.start
            length = (_dt.datetime.combine(_dt.date(2000, 1, 1 + self.end_next_day), self.end)
                      - _dt.datetime.combine(_dt.date(2000, 1, 1), self.start))
        else:
            self.duration = parse_duration(data['duration'], field + '.duration')
            if self.duration <= _dt.timedelta(0):
                raise WindowError('%s.duration: a window must last longer than 0' % field)
            length = self.duration
        longest = MAX_DURATION
        if frequency == 'weekly':
            days = self.weekdays
            gaps = [((days[(i + 1) % len(days)] - day) % 7) or 7 for i, day in enumerate(days)]
            longest = _dt.timedelta(days=min(gaps))
        if length > longest:
            raise WindowError('%s.duration: %s is longer than %s, %s'
                              % (field, human_duration(length.total_seconds()), human_duration(longest.total_seconds()),
                                 'the time between two occurrences' if frequency == 'weekly'
                                 else 'the longest a monthly or quarterly window may last'))

    def _dates(self, first, last):
        """The local dates in [first, last] on which this rule's window starts."""
        if self.frequency == 'weekly':
            return [day for day in _days(first, last) if day.weekday() in self.weekdays]
        dates = []
        for year, month in _months(first, last):
            if self.frequency == 'quarterly' and (month - 1) % 3 != self.month - 1:
                continue
            length = _calendar.monthrange(year, month)[1]
            if self.day is not None:
                day = length if self.day == -1 else self.day
                if day > length:
                    if self.if_missing == 'skip':
                        continue
                    day = length
            else:
                weekday = self.weekdays[0]
                if self.week == -1:
                    day = length - ((_dt.date(year, month, length).weekday() - weekday) % 7)
                else:
                    day = 1 + (weekday - _dt.date(year, month, 1).weekday()) % 7 + 7 * (self.week - 1)
                    if day > length:
                        if self.if_missing == 'skip':
                            continue
                        day -= 7
            date = _dt.date(year, month, day)
            if first <= date <= last:
                dates.append(date)
        return dates

    def occurrences(self, begin, finish):
        """(start, end) in UTC of the occurrences overlapping [begin, finish), as scheduled (before exclusions)."""
        first = (begin - LOOKBACK).astimezone(self.zone).date()
        last = (finish + _dt.timedelta(days=1)).astimezone(self.zone).date()
        result = []
        for date in self._dates(first, last):
            start = _local(date, self.start, self.zone)
            if self.duration is not None:
                end = start + self.duration
            else:
                end = _local(date + _dt.timedelta(days=1 if self.end_next_day else 0), self.end, self.zone)
            if end <= start:  # e.g. 02:30-03:00 on the spring-forward night: the start falls after the end
                continue
            if end > begin and start < finish:
                result.append((start, end))
        return result


# ----- exclusions ---------------------------------------------------------------------------------------------------

class BusinessHours:
    def __init__(self, data, index, default_zone):
        field = 'business_hours[%d]' % index
        _check_keys(data, BUSINESS_KEYS, field)
        self.zone = _zone(data['timezone'], field + '.timezone') if data.get('timezone') is not None else default_zone
        if self.zone is None:
            raise WindowError('%s.timezone: no time zone; set timezone here or on the calendar' % field)
        self.weekdays = _weekdays(data.get('weekdays', ['mon', 'tue', 'wed', 'thu', 'fri']), field + '.weekdays')
        for key in ('start', 'end'):
            if data.get(key) is None:
                raise WindowError("%s.%s: missing (HH:MM, e.g. '08:00')" % (field, key))
        self.start = _time(data['start'], field + '.start')[0]
        self.end, end_24 = _time(data['end'], field + '.end', allow_24=True)
        if not end_24 and self.end <= self.start:
            raise WindowError('%s.end: %s is not after the start %s (business hours do not cross midnight; '
                              'give two entries)' % (field, data['end'], data['start']))
        self.end_24 = end_24

    def intervals(self, begin, finish):
        first = (begin - _dt.timedelta(days=1)).astimezone(self.zone).date()
        last = (finish + _dt.timedelta(days=1)).astimezone(self.zone).date()
        result = []
        for day in _days(first, last):
            if day.weekday() in self.weekdays:
                start = _local(day, self.start, self.zone)
                end = _local(day + _dt.timedelta(days=1) if self.end_24 else day, self.end, self.zone)
                if end > start:
                    result.append((start, end, 'business hours (%s %s-%s %s)' % (
                        WEEKDAY_NAMES[day.weekday()], self.start.strftime('%H:%M'),
                        '24:00' if self.end_24 else self.end.strftime('%H:%M'), self.zone.key)))
        return result


def _freeze_bound(value, field, zone, is_end):
    """A freeze bound: a date (a whole day: the start of it, or for an end the end of it) or a date and time."""
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, _dt.date):
        return _local(value + _dt.timedelta(days=1 if is_end else 0), _dt.time(0), zone)
    elif isinstance(value, str) and _DATE.match(value):
        try:
            day = _dt.date(*(int(part) for part in _DATE.match(value).groups()))
        except ValueError as exc:
            raise WindowError('%s: %r is not a date (%s)' % (field, value, exc)) from None
        return _local(day + _dt.timedelta(days=1 if is_end else 0), _dt.time(0), zone)
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = _dt.datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith(('Z', 'z')) else text)
        except ValueError:
            raise WindowError("%s: %r is neither a date (2026-12-15) nor a date and time (2026-12-15 18:00)"
                              % (field, value)) from None
    else:
        raise WindowError('%s: %r is neither a date nor a date and time' % (field, value))
    if moment.tzinfo is None:
        return _local(moment.date(), moment.time(), zone)
    return moment.astimezone(UTC)


class Freeze:
    def __init__(self, data, index, default_zone):
        field = 'freezes[%d]' % index
        _check_keys(data, FREEZE_KEYS, field)
        self.name = str(data.get('name') or 'freeze %d' % (index + 1))
        zone = _zone(data['timezone'], field + '.timezone') if data.get('timezone') is not None else default_zone
        if zone is None:
            raise WindowError('%s.timezone: no time zone; set timezone here or on the calendar' % field)
        for key in ('start', 'end'):
            if data.get(key) is None:
                raise WindowError('%s.%s: missing (a date 2026-12-15, or a date and time 2026-12-15 18:00)'
                                  % (field, key))
        self.start = _freeze_bound(data['start'], field + '.start', zone, False)
        self.end = _freeze_bound(data['end'], field + '.end', zone, True)
        if self.end <= self.start:
            raise WindowError('%s.end: %s is before (or at) the start %s' % (field, data['end'], data['start']))

    def intervals(self, begin, finish):
        if self.end > begin and self.start < finish:
            return [(self.start, self.end, 'freeze %r' % self.name)]
        return []


class Holidays:
    def __init__(self, data, default_zone):
        field = 'holidays'
        _check_keys(data, HOLIDAY_KEYS, field)
        self.zone = _zone(data['timezone'], field + '.timezone') if data.get('timezone') is not None else default_zone
        if self.zone is None:
            raise WindowError('%s.timezone: no time zone; set timezone here or on the calendar' % field)
        self.country = data.get('country')
        if not isinstance(self.country, str) or not self.country.strip():
            raise WindowError('holidays.country: a country code such as DE, US or IN is needed, got %r' % (self.country,))
        self.country = self.country.strip().upper()
        self.subdivision = data.get('subdivision')
        try:
            import holidays as holidays_lib  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise WindowError('holidays: public holidays need the holidays Python package on the Ansible controller '
                              '(pip install holidays), or leave holidays out of the calendar') from None
        self._lib = holidays_lib
        self._years = {}
        try:
            holidays_lib.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError as exc:
            which = 'holidays.subdivision' if self.subdivision and 'subdiv' in str(exc).lower() else 'holidays.country'
            raise WindowError('%s: %s (the holidays package knows no such %s)'
                              % (which, exc, 'subdivision' if which.endswith('subdivision') else 'country')) from None

    def _year(self, year):
        if year not in self._years:
            self._years[year] = self._lib.country_holidays(self.country, subdiv=self.subdivision, years=year)
        return self._years[year]

    def intervals(self, begin, finish):
        first = (begin - _dt.timedelta(days=1)).astimezone(self.zone).date()
        last = (finish + _dt.timedelta(days=1)).astimezone(self.zone).date()
        result = []
        for day in _days(first, last):
            name = self._year(day.year).get(day)
            if name:
                result.append((_local(day, _dt.time(0), self.zone), _local(day + _dt.timedelta(days=1), _dt.time(0), self.zone),
                               'public holiday %r (%s%s)' % (name, self.country,
                                                             '-%s' % self.subdivision if self.subdivision else '')))
        return result


def _subtract(start, end, exclusions):
    """Pieces of [start, end) outside the exclusions: [(start, end, delayed_by, cut_by)], and the labels that hit."""
    pieces = [(start, end, None, None)]
    hit = []
    for ex_start, ex_end, label in sorted(exclusions):
        kept = []
        for p_start, p_end, delayed_by, cut_by in pieces:
            if ex_end <= p_start or ex_start >= p_end:
                kept.append((p_start, p_end, delayed_by, cut_by))
                continue
            if label not in hit:
                hit.append(label)
            if ex_start > p_start:
                kept.append((p_start, ex_start, delayed_by, label))
            if ex_end < p_end:
                kept.append((ex_end, p_end, label, cut_by))
        pieces = kept
    return pieces, hit


# ----- the calendar -------------------------------------------------------------------------------------------------

class Window:
    """One effective window: an occurrence (or several overlapping ones) less the exclusions."""

    def __init__(self, start, end, names, zone, scheduled_start, scheduled_end, delayed_by=None, cut_by=None):
        self.start, self.end = start, end
        self.names = list(names)
        self.zone = zone
        self.scheduled_start, self.scheduled_end = scheduled_start, scheduled_end
        self.delayed_by, self.cut_by = delayed_by, cut_by

    def as_dict(self):
        return {
            'name': ' + '.join(self.names),
            'names': list(self.names),
            'timezone': self.zone.key,
            'start': _iso(self.start),
            'end': _iso(self.end),
            'start_local': _iso(self.start, self.zone),
            'end_local': _iso(self.end, self.zone),
            'start_epoch': int(self.start.timestamp()),
            'end_epoch': int(self.end.timestamp()),
            'duration_seconds': int((self.end - self.start).total_seconds()),
            'scheduled_start': _iso(self.scheduled_start),
            'scheduled_end': _iso(self.scheduled_end),
            'delayed_by': self.delayed_by,
            'cut_by': self.cut_by,
        }


class Calendar:
    """Maintenance windows and what is excluded from them; see docs/windows.md for the data."""

    def __init__(self, rules, exclusions):
        self.rules = rules
        self.exclusions = exclusions

    @classmethod
    def from_data(cls, data):
        """Parse a calendar dict (or a bare list of window rules); raise WindowError naming the bad field."""
        if isinstance(data, (list, tuple)):
            data = {'windows': list(data)}
        if not isinstance(data, dict):
            raise WindowError('calendar: a mapping with windows (and timezone, business_hours, freezes, holidays) '
                              'is needed, got %s' % type(data).__name__)
        _check_keys(data, CALENDAR_KEYS, 'calendar')
        zone = _zone(data['timezone'], 'timezone') if data.get('timezone') is not None else None
        windows = data.get('windows')
        if not isinstance(windows, (list, tuple)) or not windows:
            raise WindowError('windows: at least one window rule is needed')
        rules = [Rule(item, i, zone) for i, item in enumerate(windows)]
        exclusions = []
        business = data.get('business_hours') or []
        for i, item in enumerate(business if isinstance(business, (list, tuple)) else [business]):
            exclusions.append(BusinessHours(item, i, zone))
        freezes = data.get('freezes') or []
        if not isinstance(freezes, (list, tuple)):
            raise WindowError('freezes: a list of {name, start, end} is needed, got %s' % type(freezes).__name__)
        exclusions.extend(Freeze(item, i, zone) for i, item in enumerate(freezes))
        if data.get('holidays'):
            exclusions.append(Holidays(data['holidays'], zone))
        return cls(rules, exclusions)

    def _excluded(self, begin, finish):
        result = []
        for exclusion in self.exclusions:
            result.extend(exclusion.intervals(begin, finish))
        return result

    def scan(self, begin, finish):
        """(windows, skipped) for [begin, finish): the effective windows overlapping it, merged where they
        overlap or touch, sorted; and the occurrences starting in it that the exclusions removed entirely."""
        pieces = []
        skipped = []
        for rule in self.rules:
            for start, end in rule.occurrences(begin, finish):
                kept, hit = _subtract(start, end, self._excluded(start, end))
                if not kept:
                    if start >= begin:
                        skipped.append({'name': rule.name, 'scheduled_start': _iso(start), 'scheduled_end': _iso(end),
                                        'scheduled_start_local': _iso(start, rule.zone), 'excluded_by': hit})
                    continue
                for p_start, p_end, delayed_by, cut_by in kept:
                    pieces.append(Window(p_start, p_end, [rule.name], rule.zone, start, end, delayed_by, cut_by))
        pieces.sort(key=lambda w: (w.start, w.end))
        merged = []
        for piece in pieces:
            last = merged[-1] if merged else None
            if last is not None and piece.start <= last.end:
                for name in piece.names:
                    if name not in last.names:
                        last.names.append(name)
                last.scheduled_start = min(last.scheduled_start, piece.scheduled_start)
                last.scheduled_end = max(last.scheduled_end, piece.scheduled_end)
                if piece.end > last.end:
                    last.end, last.cut_by = piece.end, piece.cut_by
                continue
            merged.append(piece)
        skipped.sort(key=lambda s: s['scheduled_start'])
        return [w for w in merged if w.end > begin and w.start < finish], skipped

    def windows(self, begin, finish):
        """The effective windows overlapping [begin, finish) (aware datetimes), as dicts."""
        return [w.as_dict() for w in self.scan(parse_instant(begin, 'begin'), parse_instant(finish, 'end'))[0]]

    def _find(self, now):
        windows, skipped = self.scan(now - LOOKBACK, now + HORIZON)
        current = next((w for w in windows if w.start <= now < w.end), None)
        later = [w for w in windows if w.start > now]
        return current, later, skipped

    def status(self, now=None, upcoming=3):
        """Where `now` stands: inside a window or not, what is left of it, the next windows."""
        now = parse_instant(now)
        if isinstance(upcoming, bool) or not isinstance(upcoming, int) or upcoming < 1:
            raise WindowError('upcoming: a number of windows (1 or more) is needed, got %r' % (upcoming,))
        current, later, skipped = self._find(now)
        nxt = later[0] if later else None
        remaining = int((current.end - now).total_seconds()) if current else 0
        until = nxt.start if nxt else now + HORIZON
        result = {
            'now': _iso(now),
            'inside': current is not None,
            'current': current.as_dict() if current else None,
            'remaining_seconds': remaining,
            'next': nxt.as_dict() if nxt else None,
            'opens_in_seconds': int((nxt.start - now).total_seconds()) if nxt else None,
            'upcoming': [w.as_dict() for w in later[:upcoming]],
            'skipped': [s for s in skipped if now <= parse_instant(s['scheduled_start']) < until],
        }
        result['message'] = self._message(now, current, nxt, remaining)
        return result

    @staticmethod
    def _message(now, current, nxt, remaining):
        parts = []
        if current is not None:
            parts.append('inside the window %r until %s (%s left%s)' % (
                ' + '.join(current.names), _iso(current.end, current.zone), human_duration(remaining),
                '; cut short by %s' % current.cut_by if current.cut_by else ''))
        else:
            parts.append('outside any maintenance window')
        if nxt is not None:
            parts.append('the next window %r opens %s (in %s) and closes %s' % (
                ' + '.join(nxt.names), _iso(nxt.start, nxt.zone), human_duration((nxt.start - now).total_seconds()),
                _iso(nxt.end, nxt.zone)))
        else:
            parts.append('no window opens within %d days' % HORIZON.days)
        return '; '.join(parts)

    def may_start(self, now=None, duration=0, emergency=False, reason=None):
        """Whether a node that takes `duration` (real time) may start now.

        Yes inside a window that lasts at least `duration` more; otherwise no (the node in progress
        finishes, the rest waits for the next window), unless `emergency` with a non-empty `reason`.
        """
        needed = parse_duration(duration, 'duration')
        if not isinstance(emergency, bool):
            raise WindowError('emergency: %r is not a boolean (true or false)' % (emergency,))
        if emergency and (not isinstance(reason, str) or not reason.strip()):
            raise RefusedError('emergency: an emergency run outside the maintenance window needs a non-empty reason, '
                               'which is recorded in the report')
        status = self.status(now, upcoming=1)
        remaining = status['remaining_seconds']
        needed_seconds = int(needed.total_seconds())
        nxt = status['next']
        next_text = ('the next window opens %s' % nxt['start_local']) if nxt else \
            'no window opens within %d days' % HORIZON.days
        if status['inside'] and remaining >= needed_seconds:
            decision = 'inside_window'
            start, why = True, 'inside the window %r: %s left, %s needed' % (
                status['current']['name'], human_duration(remaining), human_duration(needed_seconds))
        elif status['inside']:
            decision = 'window_closing'
            start, why = False, 'the window %r closes at %s, in %s, and a node needs %s: left for the next window (%s)' % (
                status['current']['name'], status['current']['end_local'], human_duration(remaining),
                human_duration(needed_seconds), next_text)
        else:
            decision = 'outside_window'
            start, why = False, 'outside any maintenance window (%s)' % next_text
        override = emergency and not start
        if override:
            decision = 'emergency_override'
            start, why = True, 'emergency override (%s): %s' % (reason.strip(), why)
        return {
            'start': start,
            'decision': decision,
            'reason': why,
            'emergency': override,
            'emergency_reason': reason.strip() if emergency else None,
            'inside': status['inside'],
            'remaining_seconds': remaining,
            'needed_seconds': needed_seconds,
            'current': status['current'],
            'next': nxt,
            'now': status['now'],
        }
