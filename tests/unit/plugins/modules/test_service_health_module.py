# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""service_health as a module: the systemctl command it runs, a crash loop given up on at once, a healthy endpoint,
an unreadable unit and bad options failing cleanly (the logic itself: module_utils/test_service_health.py)."""

from __future__ import annotations

import pytest

from ansible.module_utils.six.moves.urllib.error import URLError

from ansible_collections.onprem_ai.maintenance.plugins.modules import service_health

from helper import run_case

SHOW = ['/testbin/systemctl', 'show', 'model-server.service', '--property',
        'LoadState,ActiveState,SubState,Result,NRestarts,ExecMainCode,ExecMainStatus']
RUNNING = 'LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\nExecMainCode=0\nExecMainStatus=0\n'
RESTARTING = ('LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=0\n'
              'ExecMainCode=1\nExecMainStatus=1\n')


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Answer:
    def __init__(self, code):
        self.code = code

    def getcode(self):
        return self.code


@pytest.fixture
def fake(monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(service_health, 'time', clock)
    return clock


def refused(*args, **kwargs):
    raise URLError('[Errno 111] Connection refused')


def test_crash_loop_given_up_at_once(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(service_health, 'open_url', refused)
    case = {'input': {'url': 'http://127.0.0.1:8000/health', 'unit': 'model-server.service', 'timeout': 600},
            'mocks': {'run_command': [{'command': SHOW, 'environ': {'LC_ALL': 'C'}, 'rc': 0, 'out': RUNNING},
                                      {'command': SHOW, 'rc': 0, 'out': RESTARTING}]},
            'output': {'changed': False, 'healthy': False, 'verdict': 'crashed', 'tries': 1,
                       'unit_state.SubState': 'auto-restart'},
            'output_re': {'msg': r'^gave up after 1\.0 s, before the 600 s health timeout: model-server\.service is '
                                 r'crash-looping: .*last exit status 1\)$'}}
    run_case(service_health.main, case, tmp_path, monkeypatch)


def test_healthy_endpoint(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(service_health, 'open_url', lambda *a, **k: Answer(200))
    case = {'input': {'url': 'http://127.0.0.1:8000/health', 'unit': 'model-server.service'},
            'mocks': {'run_command': [{'command': SHOW, 'rc': 0, 'out': RUNNING}]},
            'output': {'healthy': True, 'verdict': 'healthy', 'status': 200, 'changed': False}}
    run_case(service_health.main, case, tmp_path, monkeypatch)


def test_container_without_unit_asks_only_the_endpoint(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(service_health, 'open_url', refused)
    case = {'input': {'url': 'http://127.0.0.1:8000/health', 'timeout': 10, 'delay': 5},
            'output': {'healthy': False, 'verdict': 'timeout', 'tries': 3, 'unit_state': {}},
            'output_re': {'msg': 'did not answer 200 within 10 s .3 tries, last: .*Connection refused'}}
    run_case(service_health.main, case, tmp_path, monkeypatch)


@pytest.mark.parametrize('command, msg', [
    ({'command': SHOW, 'rc': 1, 'out': '', 'err': 'Failed to connect to bus'},
     'Cannot read the state of model-server.service: systemctl show exited 1 .Failed to connect to bus.'),
    ({'command': SHOW, 'rc': 0, 'out': 'LoadState=loaded\n'}, 'systemctl show gave no ActiveState'),
])
def test_unreadable_unit_fails(tmp_path, monkeypatch, fake, command, msg):
    monkeypatch.setattr(service_health, 'open_url', refused)
    case = {'input': {'url': 'http://127.0.0.1:8000/health', 'unit': 'model-server.service'},
            'mocks': {'run_command': [command]},
            'output': {'failed': True, 'error_kind': 'unreadable'}, 'output_re': {'msg': msg}}
    run_case(service_health.main, case, tmp_path, monkeypatch)


def test_no_systemctl_fails(tmp_path, monkeypatch, fake):
    case = {'input': {'url': 'http://127.0.0.1:8000/health', 'unit': 'model-server.service'}, 'bins_missing': ['systemctl'],
            'output': {'failed': True, 'error_kind': 'unreadable'}, 'output_re': {'msg': 'systemctl is not on this host'}}
    run_case(service_health.main, case, tmp_path, monkeypatch)


@pytest.mark.parametrize('args, msg', [
    ({'timeout': 0}, 'timeout must be 1 to 86400, not 0'),
    ({'delay': 0}, 'delay must be 1 to 3600'),
    ({'max_restarts': -1}, 'max_restarts must be 0 to 100'),
    ({'url': 'file:///etc/shadow'}, 'url must be an http'),
])
def test_bad_options(tmp_path, monkeypatch, fake, args, msg):
    case = {'input': dict({'url': 'http://127.0.0.1:8000/health'}, **args),
            'output': {'failed': True, 'error_kind': 'options'}, 'output_re': {'msg': msg}}
    run_case(service_health.main, case, tmp_path, monkeypatch)
