# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_haproxy against a loopback runtime API (a unix socket) that answers `show stat` with the real CSV of the lab
gateway's HAProxy 2.6.12 (Debian 12; tests/unit/fixtures/haproxy/, captured from lab-gateway-1 during a rolling run),
with the servers' status and sessions changed as the test's timeline says. The role's use of it on the real HAProxy
runs in molecule/gateway_rolling and benchmarks/rolling."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import threading

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _haproxy as hp

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'haproxy')


def real(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as f:
        return f.read()


class Fake(object):
    """HAProxy's runtime API over a unix socket: `show stat` from a real capture with states overridden, `set server`
    changes them; `sessions` is a list of counts that each `show stat` pops for a draining server (the requests in
    flight finishing)."""

    def __init__(self, path, capture, overrides=None):
        self.path = path
        self.capture = capture
        self.states = dict(overrides or {})  # (backend, server) -> {'status':..., 'scur': [..]}
        self.commands = []
        self.refuse = {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.stop = False
        self.thread.start()

    def stat(self):
        lines = self.capture.splitlines()
        rows = list(csv.reader(io.StringIO('\n'.join(lines[1:]))))
        header = lines[0][2:].split(',')
        ip, isv, ist, isc = header.index('pxname'), header.index('svname'), header.index('status'), header.index('scur')
        out = [lines[0]]
        for row in rows:
            if not row:
                continue
            key = (row[ip], row[isv])
            if key in self.states:
                state = self.states[key]
                row[ist] = state['status']
                scur = state.get('scur') or [0]
                row[isc] = str(scur[0])
                if len(scur) > 1:
                    scur.pop(0)
            out.append(','.join(row))
        return '\n'.join(out) + '\n\n'

    def serve(self):
        while not self.stop:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            with conn:
                line = b''
                while not line.endswith(b'\n'):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    line += chunk
                command = line.decode().strip()
                self.commands.append(command)
                if command == 'show stat':
                    conn.sendall(self.stat().encode())
                elif command.startswith('set server '):
                    _set, _server, name, _state, state = command.split(' ')
                    backend, server = name.split('/')
                    if (backend, server) in self.refuse:
                        conn.sendall(self.refuse[(backend, server)].encode())
                        continue
                    entry = self.states.setdefault((backend, server), {'status': 'UP', 'scur': [0]})
                    # as HAProxy shows it: a server its health checks find down stays DOWN in drain mode
                    if not (state == 'drain' and entry['status'].startswith('DOWN')):
                        entry['status'] = {'drain': 'DRAIN', 'maint': 'MAINT', 'ready': 'UP'}[state]
                    if state == 'maint':
                        entry['scur'] = [0]
                else:
                    conn.sendall(b'Unknown command.\n')

    def close(self):
        self.stop = True
        self.sock.close()


@contextlib.contextmanager
def fake(tmp_path, capture='show_stat_serving.csv', states=None):
    f = Fake(str(tmp_path / 'admin.sock'), real(capture), states)
    try:
        yield f
    finally:
        f.close()


def servers_of(capture):
    return hp.parse_stat(real(capture))


def no_sleep(_seconds):
    return None


class Clock(object):
    def __init__(self, step=0.2):
        self.t = 0.0
        self.step = step

    def __call__(self):
        self.t += self.step
        return self.t


def test_parse_real_captures():
    servers = servers_of('show_stat_serving.csv')
    assert servers, 'no server in the capture'
    assert all(s['status'] for s in servers.values())
    assert all(isinstance(s['sessions'], int) for s in servers.values())
    draining = servers_of('show_stat_draining.csv')[('model_llama-3.1-8b-instruct', 'lab-gpu-1')]
    assert draining['status'] == 'DRAIN' and draining['sessions'] == 1
    maint = servers_of('show_stat_maint.csv')[('model_llama-3.1-8b-instruct', 'lab-gpu-1')]
    assert maint['status'] == 'MAINT' and maint['sessions'] == 0
    assert hp.out_of_routing(maint['status']) and not hp.serving(draining['status'])


@pytest.mark.parametrize('text', ['', 'Unknown command.\n', 'pxname,svname\n', '# pxname,svname,qcur\nb,s,0\n'])
def test_parse_refuses_what_is_not_show_stat(text):
    with pytest.raises(hp.HaproxyError) as err:
        hp.parse_stat(text)
    assert err.value.error_kind == 'unreadable'


def test_parse_unknown_sessions_are_none_not_zero():
    text = '# pxname,svname,scur,status,weight\nb,s1,,UP,1\nb,s2,x,UP,\n'
    servers = hp.parse_stat(text)
    assert servers[('b', 's1')]['sessions'] is None
    assert servers[('b', 's2')]['sessions'] is None
    assert servers[('b', 's2')]['weight'] is None


def first_two(capture='show_stat_serving.csv'):
    """Two servers of one backend of the capture: the target and another one."""
    servers = servers_of(capture)
    by_backend = {}
    for backend, server in servers:
        by_backend.setdefault(backend, []).append(server)
    backend = next(b for b, names in sorted(by_backend.items()) if len(names) >= 2)
    return backend, by_backend[backend][0], by_backend[backend][1]


def test_drain_waits_for_sessions_then_maint(tmp_path):
    backend, target, other = first_two()
    states = {(backend, target): {'status': 'UP', 'scur': [2, 2, 1, 1, 0]}, (backend, other): {'status': 'UP', 'scur': [3]}}
    with fake(tmp_path, states=states) as f:
        api = hp.RuntimeApi(f.path)
        result = hp.drain(api, [{'backend': backend, 'server': target}], timeout=30, poll=0.01, sleep=no_sleep)
    assert result['changed'] is True
    assert result['before'][0]['status'] == 'UP'
    assert result['after'][0]['status'] == 'MAINT'
    sets = [c for c in f.commands if c.startswith('set ')]
    assert sets == ['set server %s/%s state drain' % (backend, target), 'set server %s/%s state maint' % (backend, target)]
    # the sessions were read until they were 0: the drain and then 4 readings more before maint
    assert f.commands.index(sets[1]) - f.commands.index(sets[0]) == 5


def test_drain_of_a_drained_server_changes_nothing(tmp_path):
    backend, target, other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'MAINT', 'scur': [0]}}) as f:
        result = hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, sleep=no_sleep)
    assert result['changed'] is False
    assert not [c for c in f.commands if c.startswith('set ')]


def test_drain_refuses_to_leave_a_backend_without_a_serving_server(tmp_path):
    backend, target, other = first_two()
    states = {(backend, other): {'status': 'MAINT', 'scur': [0]}}
    servers = servers_of('show_stat_serving.csv')
    for key in servers:
        if key[0] == backend and key[1] not in (target, other):
            states[key] = {'status': 'DOWN', 'scur': [0]}
    with fake(tmp_path, states=states) as f:
        with pytest.raises(hp.HaproxyError) as err:
            hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, sleep=no_sleep)
        assert err.value.error_kind == 'refused'
        assert backend in err.value.msg
        assert not [c for c in f.commands if c.startswith('set ')]
        # the caller may take the last server out on purpose
        result = hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5,
                          keep_serving=False, sleep=no_sleep)
    assert result['after'][0]['status'] == 'MAINT'


def test_drain_times_out_busy_and_stays_in_drain(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'UP', 'scur': [1]}}) as f:
        with pytest.raises(hp.HaproxyError) as err:
            hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=3, poll=0.01,
                     clock=Clock(0.5), sleep=no_sleep)
    assert err.value.error_kind == 'busy'
    assert err.value.changed is True
    assert '1 sessions' in err.value.msg
    assert f.states[(backend, target)]['status'] == 'DRAIN'
    assert not [c for c in f.commands if c.endswith('state maint')]


def test_unknown_sessions_count_as_busy(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'UP', 'scur': ['']}}) as f:
        with pytest.raises(hp.HaproxyError) as err:
            hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=1, poll=0.01,
                     clock=Clock(0.5), sleep=no_sleep)
    assert 'unknown sessions' in err.value.msg


def test_a_down_server_is_not_waited_for(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'DOWN', 'scur': [5]}}) as f:
        result = hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=1, poll=0.01,
                          clock=Clock(0.5), sleep=no_sleep)
    assert result['after'][0]['status'] == 'MAINT'


def test_drain_of_a_missing_server_fails_before_any_change(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path) as f:
        with pytest.raises(hp.HaproxyError) as err:
            hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target},
                                             {'backend': backend, 'server': 'no-such-node'}], timeout=5, sleep=no_sleep)
    assert err.value.error_kind == 'not_found'
    assert 'no-such-node' in err.value.msg
    assert not [c for c in f.commands if c.startswith('set ')]


def test_a_refused_command_is_an_error(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path) as f:
        f.refuse[(backend, target)] = 'Permission denied\n'
        with pytest.raises(hp.HaproxyError) as err:
            hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, sleep=no_sleep)
    assert err.value.error_kind == 'refused'
    assert 'Permission denied' in err.value.msg


def test_several_servers_drain_at_once(tmp_path):
    servers = servers_of('show_stat_serving.csv')
    backends = sorted(set(b for b, _s in servers))
    targets = []
    states = {}
    for backend in backends:
        names = [s for b, s in servers if b == backend]
        if len(names) >= 2:
            targets.append({'backend': backend, 'server': names[0]})
            states[(backend, names[0])] = {'status': 'UP', 'scur': [1, 1, 0]}
    with fake(tmp_path, states=states) as f:
        hp.drain(hp.RuntimeApi(f.path), targets, timeout=5, poll=0.01, sleep=no_sleep)
    sets = [c for c in f.commands if c.startswith('set ')]
    # every drain is sent before the first wait, every maint after the last
    assert [c.endswith('drain') for c in sets] == [True] * len(targets) + [False] * len(targets)


def test_ready_waits_until_serving(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'MAINT', 'scur': [0]}}) as f:
        result = hp.ready(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, sleep=no_sleep)
        assert result['changed'] is True
        assert result['after'][0]['status'] == 'UP'
        again = hp.ready(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, sleep=no_sleep)
    assert again['changed'] is False


def test_ready_fails_when_health_checks_keep_it_down(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path, states={(backend, target): {'status': 'MAINT', 'scur': [0]}}) as f:
        class Api(hp.RuntimeApi):
            """The server comes out of maintenance, and the health checks find it down."""
            def set_state(self, backend, server, state):
                super().set_state(backend, server, state)
                f.states[(backend, server)] = {'status': 'DOWN', 'scur': [0]}
        with pytest.raises(hp.HaproxyError) as err:
            hp.ready(Api(f.path), [{'backend': backend, 'server': target}], timeout=2, clock=Clock(0.5), sleep=no_sleep)
    assert err.value.error_kind == 'busy'
    assert 'is DOWN' in err.value.msg


def test_check_mode_sends_no_change(tmp_path):
    backend, target, _other = first_two()
    with fake(tmp_path) as f:
        result = hp.drain(hp.RuntimeApi(f.path), [{'backend': backend, 'server': target}], timeout=5, check_mode=True)
    assert result['changed'] is True
    assert f.commands == ['show stat']


def test_no_socket_is_unreadable(tmp_path):
    with pytest.raises(hp.HaproxyError) as err:
        hp.RuntimeApi(str(tmp_path / 'none.sock')).servers()
    assert err.value.error_kind == 'unreadable'
    assert 'none.sock' in err.value.msg


def test_an_answer_that_is_not_stats_is_unreadable(tmp_path):
    path = str(tmp_path / 'x.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)

    def answer():
        conn, _peer = sock.accept()
        conn.recv(100)
        conn.sendall(b'Permission denied\n')
        conn.close()
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    with pytest.raises(hp.HaproxyError) as err:
        hp.RuntimeApi(path).servers()
    sock.close()
    assert 'Permission denied' in err.value.msg
