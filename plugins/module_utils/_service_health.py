# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The health wait of a service that was just (re)started: its HTTP health endpoint until it answers, and, between
two tries, systemd's view of its unit, so that a release that exits at once (a crash loop) is given up on within
seconds instead of after the whole health timeout.

Entry points: `parse_show(text)` (the output of `systemctl show --property ...`), `unit_verdict(props, restarts_before,
max_restarts)` and `wait(...)` -> the result documented in plugins/modules/service_health.py's RETURN. The unit's
state that cannot be read for sure raises `HealthError` (error_kind `unreadable`): unknown is never "running".

A unit is given up on (`crashed`) when systemd says:
- LoadState is not `loaded` (no such unit, or a unit file with errors);
- ActiveState `failed` (Restart= gave up, or no Restart=), or `inactive` (the main process ended and is not restarted);
- the main process exited more than `max_restarts` times since the wait began: NRestarts grown since the first read,
  plus one while the unit waits to be restarted (SubState `auto-restart`).
Anything else (`activating`, `active`, `reloading`) is `running`: the HTTP answer decides.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import signal

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'Result', 'NRestarts', 'ExecMainCode', 'ExecMainStatus')
# ExecMainCode is the siginfo code of the main process' end (CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3; 0 none yet).
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3


class HealthError(OnpremError):
    """The unit's state cannot be read for sure."""

    error_kind = 'unreadable'


def parse_show(text, unit='the unit'):
    """The properties of `systemctl show --property A,B,...` (lines KEY=VALUE) as a dict; every one of PROPERTIES
    must be there."""
    props = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            props[key.strip()] = value.strip()
    missing = [name for name in PROPERTIES if name not in props]
    if missing:
        raise HealthError('Cannot read the state of %s: systemctl show gave no %s' % (unit, ', '.join(missing)))
    return props


def _int(props, name, unit):
    value = props.get(name, '')
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HealthError('Cannot read the state of %s: %s is %r, not a number' % (unit, name, value)) from None
    if number < 0:
        raise HealthError('Cannot read the state of %s: %s is %r, not a count' % (unit, name, value))
    return number


def last_exit(props):
    """'exit status 3', 'killed by signal SEGV (core dumped)' or '' from ExecMainCode / ExecMainStatus."""
    try:
        code, status = int(props.get('ExecMainCode', '0')), int(props.get('ExecMainStatus', '0'))
    except (TypeError, ValueError):
        return ''
    if code == CLD_EXITED:
        return 'exit status %d' % status
    if code in (CLD_KILLED, CLD_DUMPED):
        try:
            name = signal.Signals(status).name[3:]
        except ValueError:
            name = str(status)
        return 'killed by signal %s%s' % (name, ' (core dumped)' if code == CLD_DUMPED else '')
    return ''


def unit_verdict(props, restarts_before, max_restarts=0, unit='the unit'):
    """('running' or 'crashed', what was seen) from the unit's properties (parse_show), NRestarts at the first read
    and the number of exits tolerated."""
    restarts = _int(props, 'NRestarts', unit)
    load, active, sub, result = props['LoadState'], props['ActiveState'], props['SubState'], props['Result']
    exited = last_exit(props)
    last = ', last %s' % exited if exited else ''
    seen = 'ActiveState %s, SubState %s, Result %s, NRestarts %d%s' % (active, sub, result, restarts, last)
    if load != 'loaded':
        return 'crashed', '%s is not loaded (LoadState %s)' % (unit, load)
    if active == 'failed':
        return 'crashed', '%s failed (%s)' % (unit, seen)
    if active == 'inactive':
        return 'crashed', '%s is not running: its main process ended and is not restarted (%s)' % (unit, seen)
    exits = max(restarts - restarts_before, 0) + (1 if sub == 'auto-restart' else 0)
    if exits > max_restarts:
        return 'crashed', ('%s is crash-looping: its main process exited %d time%s since the start (%s)'
                           % (unit, exits, '' if exits == 1 else 's', seen))
    return 'running', seen


def wait(probe, read_unit, timeout, delay, max_restarts=0, unit=None, clock=None, sleep=None, unit_interval=1.0):
    """Polls until the service is healthy, crashed or the timeout is over; returns the result dict of the module.

    probe() -> (HTTP status or None, detail); read_unit() -> the props of parse_show (only with `unit`). The unit is
    read every `unit_interval` s, the health endpoint every `delay` s, and neither after `timeout` s.
    """
    started = clock()
    restarts_before = None
    verdict, seen, status, detail, props = None, '', None, 'not asked yet', {}
    next_probe = started
    tries = 0
    while True:
        now = clock()
        if unit:
            props = read_unit()
            if restarts_before is None:
                restarts_before = _int(props, 'NRestarts', unit)
            state, seen = unit_verdict(props, restarts_before, max_restarts, unit)
            if state == 'crashed':
                verdict = 'crashed'
                break
        if now >= next_probe:
            status, detail = probe()
            tries += 1
            next_probe = now + delay
            if status == 200:
                verdict = 'healthy'
                break
        elapsed = clock() - started
        if elapsed >= timeout:
            verdict = 'timeout'
            break
        pause = min(unit_interval, delay) if unit else max(next_probe - clock(), 0)
        sleep(max(min(pause, timeout - elapsed), 0.05))
    elapsed = round(clock() - started, 1)
    if verdict == 'healthy':
        msg = 'healthy after %.1f s (%d tr%s)' % (elapsed, tries, 'y' if tries == 1 else 'ies')
    elif verdict == 'crashed':
        msg = 'gave up after %.1f s, before the %d s health timeout: %s' % (elapsed, timeout, seen)
    else:
        msg = 'the health endpoint did not answer 200 within %d s (%d tries, last: %s)%s' % (
            timeout, tries, detail, ('; %s' % seen) if unit and seen else '')
    return dict(healthy=verdict == 'healthy', verdict=verdict, status=status, elapsed=elapsed, tries=tries,
                unit_state=dict((k, props[k]) for k in PROPERTIES if k in props), msg=msg)
