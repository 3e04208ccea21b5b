# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The health wait of a just started service: HTTP until 200, and systemd's view in between, so that a crash loop is
given up on within seconds (issue 15: a release that exits at once kept its node drained for the whole timeout)."""

from __future__ import annotations

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._service_health import (
    HealthError, last_exit, parse_show, unit_verdict, wait)

UNIT = 'model-server.service'


def show(active='active', sub='running', result='success', restarts=0, code=0, status=0, load='loaded'):
    return ('LoadState=%s\nActiveState=%s\nSubState=%s\nResult=%s\nNRestarts=%s\nExecMainCode=%s\nExecMainStatus=%s\n'
            % (load, active, sub, result, restarts, code, status))


class Clock:
    """A fake monotonic clock that sleep() advances."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def run(unit_states, http, timeout=600, delay=5, max_restarts=0, unit=UNIT):
    """unit_states / http: functions of the fake time -> systemctl show text / (status, detail)."""
    clock = Clock()
    calls = {'probe': 0, 'unit': 0}

    def probe():
        calls['probe'] += 1
        return http(clock.now)

    def read_unit():
        calls['unit'] += 1
        return parse_show(unit_states(clock.now), UNIT)

    result = wait(probe, read_unit, timeout, delay, max_restarts, unit, clock=clock, sleep=clock.sleep)
    return result, clock, calls


def test_parse_show_needs_every_property():
    assert parse_show(show())['NRestarts'] == '0'
    with pytest.raises(HealthError, match='systemctl show gave no NRestarts, ExecMainCode'):
        parse_show('LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nExecMainStatus=0\n', UNIT)


@pytest.mark.parametrize('value', ['', 'many', '-1', '[not set]'])
def test_unreadable_restart_count_is_never_running(value):
    props = parse_show(show(restarts=value), UNIT)
    with pytest.raises(HealthError, match='NRestarts'):
        unit_verdict(props, 0, 0, UNIT)


@pytest.mark.parametrize('kwargs, state, words', [
    (dict(), 'running', 'ActiveState active, SubState running'),
    (dict(active='activating', sub='start'), 'running', 'activating'),
    (dict(active='activating', sub='auto-restart', result='exit-code', code=1, status=1), 'crashed',
     'crash-looping: its main process exited 1 time since the start'),
    (dict(active='failed', sub='failed', result='exit-code', restarts=5, code=1, status=3), 'crashed',
     'failed (ActiveState failed, SubState failed, Result exit-code, NRestarts 5, last exit status 3)'),
    (dict(active='inactive', sub='dead', code=1, status=0), 'crashed', 'not running'),
    (dict(load='not-found', active='inactive', sub='dead'), 'crashed', 'not loaded (LoadState not-found)'),
    (dict(restarts=2), 'crashed', 'exited 2 times'),
    (dict(active='failed', sub='failed', result='signal', code=3, status=11), 'crashed', 'killed by signal SEGV (core dumped)'),
])
def test_unit_verdict(kwargs, state, words):
    got, seen = unit_verdict(parse_show(show(**kwargs), UNIT), 0, 0, UNIT)
    assert got == state and words in seen, seen


def test_restarts_before_the_wait_do_not_count_and_max_restarts_tolerates():
    props = parse_show(show(restarts=4), UNIT)
    assert unit_verdict(props, 4, 0, UNIT)[0] == 'running'
    assert unit_verdict(props, 3, 1, UNIT)[0] == 'running'
    assert unit_verdict(props, 2, 1, UNIT)[0] == 'crashed'


def test_last_exit():
    assert last_exit({'ExecMainCode': '1', 'ExecMainStatus': '3'}) == 'exit status 3'
    assert last_exit({'ExecMainCode': '2', 'ExecMainStatus': '9'}) == 'killed by signal KILL'
    assert last_exit({'ExecMainCode': '0', 'ExecMainStatus': '0'}) == ''
    assert last_exit({'ExecMainCode': 'x'}) == ''


def test_crash_loop_given_up_within_seconds_not_after_the_timeout():
    # exits at once: SubState auto-restart from t=0.5, NRestarts 1 after RestartSec (5 s)
    def unit(now):
        if now < 0.5:
            return show(active='active', sub='running')
        return show(active='activating', sub='auto-restart', result='exit-code', restarts=0 if now < 5 else 1, code=1, status=1)
    result, clock, calls = run(unit, lambda now: (None, 'Connection refused'), timeout=600, delay=5)
    assert result['verdict'] == 'crashed' and not result['healthy']
    assert result['elapsed'] <= 2, result
    assert 'gave up after' in result['msg'] and 'before the 600 s health timeout' in result['msg']
    assert 'model-server.service is crash-looping' in result['msg'] and 'last exit status 1' in result['msg']
    assert result['unit_state']['SubState'] == 'auto-restart'


def test_crash_seen_by_the_restart_count_alone():
    # the restart happened between two reads (the auto-restart state was not seen)
    result, _clock, _calls = run(lambda now: show(restarts=0 if now < 3 else 1), lambda now: (None, 'refused'))
    assert result['verdict'] == 'crashed' and 'exited 1 time' in result['msg'] and result['elapsed'] <= 4


def test_slow_start_waits_for_the_endpoint():
    # a model that loads for 42 s: the unit runs, the endpoint answers 503 then 200
    result, clock, calls = run(lambda now: show(), lambda now: (200, 'HTTP 200') if now >= 42 else (503, 'HTTP 503'),
                               timeout=600, delay=5)
    assert result['verdict'] == 'healthy' and result['healthy'] and result['status'] == 200
    assert 42 <= result['elapsed'] <= 47
    assert calls['unit'] > calls['probe']  # the unit is read every second, the endpoint every 5 s
    assert max(clock.sleeps) <= 1


def test_timeout_says_what_was_last_seen():
    result, clock, _calls = run(lambda now: show(), lambda now: (503, 'HTTP 503'), timeout=12, delay=5)
    assert result['verdict'] == 'timeout' and result['status'] == 503
    assert 12 <= clock.now <= 13
    assert 'did not answer 200 within 12 s' in result['msg'] and 'last: HTTP 503' in result['msg']
    assert 'ActiveState active' in result['msg']


def test_without_a_unit_only_the_endpoint():
    answers = iter([(None, 'refused'), (None, 'refused'), (200, 'HTTP 200')])
    clock = Clock()
    result = wait(lambda: next(answers), None, 60, 2, 0, None, clock=clock, sleep=clock.sleep)
    assert result['verdict'] == 'healthy' and result['tries'] == 3 and result['unit_state'] == {}
    assert clock.sleeps == [2, 2]


def test_healthy_at_once():
    result, clock, calls = run(lambda now: show(), lambda now: (200, 'HTTP 200'))
    assert result['verdict'] == 'healthy' and result['tries'] == 1 and clock.sleeps == []
    assert result['msg'] == 'healthy after 0.0 s (1 try)'


def test_unreadable_unit_fails_the_wait():
    with pytest.raises(HealthError, match='systemctl show gave no'):
        run(lambda now: 'LoadState=loaded\n', lambda now: (None, 'refused'))
