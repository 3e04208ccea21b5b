# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy's runtime API (its stats socket): server states, and taking servers out of routing and back.

One connection per command, in HAProxy's non-interactive mode (send one line, read until HAProxy closes).
A drain sets every target to DRAIN at once (no new request reaches them; the requests in flight finish),
polls `show stat` every `poll` seconds until their current sessions are 0, then sets them to MAINT. A
server that HAProxy's health checks already see DOWN is not waited for (its sessions cannot finish).
Fails closed: a socket that cannot be read, a server that is not there, or sessions still open at the
deadline raise HaproxyError naming what was seen; nothing is ever taken for "idle".

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import csv
import io
import socket
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

READ_LIMIT = 16 * 1024 * 1024  # a stats dump of thousands of servers is a few MB


class HaproxyError(OnpremError):
    """The runtime API could not be read, refused a command, or a server did not reach its state in time."""


class RuntimeApi(object):
    """Commands to HAProxy's stats socket (a unix socket path, or host:port for a TCP stats socket)."""

    def __init__(self, address, timeout=10.0):
        self.address = address
        self.timeout = timeout

    def _connect(self):
        if ':' in self.address and not self.address.startswith('/'):
            host, port = self.address.rsplit(':', 1)
            return socket.create_connection((host, int(port)), timeout=self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.address)
        return sock

    def command(self, line):
        """The answer of HAProxy to one command line, as text."""
        try:
            sock = self._connect()
        except (OSError, ValueError) as exc:
            raise HaproxyError('cannot connect to the HAProxy runtime API at %s: %s' % (self.address, exc),
                               error_kind='unreadable')
        chunks = []
        size = 0
        try:
            sock.sendall(line.encode('ascii') + b'\n')
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > READ_LIMIT:
                    raise HaproxyError('the answer of HAProxy at %s to %r is over %d bytes' % (self.address, line, READ_LIMIT),
                                       error_kind='unreadable')
                chunks.append(chunk)
        except OSError as exc:
            raise HaproxyError('no answer from the HAProxy runtime API at %s to %r: %s' % (self.address, line, exc),
                               error_kind='unreadable')
        finally:
            sock.close()
        return b''.join(chunks).decode('utf-8', 'replace')

    def servers(self):
        """{(backend, server): {'status', 'sessions', 'weight'}} from `show stat`."""
        return parse_stat(self.command('show stat'), self.address)

    def set_state(self, backend, server, state):
        """`set server <backend>/<server> state <state>`; HAProxy answers nothing when it applied it."""
        answer = self.command('set server %s/%s state %s' % (backend, server, state)).strip()
        if answer:
            raise HaproxyError('HAProxy at %s refused to set %s/%s to %s: %s' % (self.address, backend, server, state,
                                                                                 answer[:300]), error_kind='refused')


def parse_stat(text, where='HAProxy'):
    """HAProxy's `show stat` CSV as {(backend, server): {'status', 'sessions', 'weight'}}, servers only.

    The header starts with `# `; columns are found by name (their number grows with HAProxy's version). A
    session count that is not a number is None (unknown), never 0.
    """
    text = (text or '').lstrip()
    if not text.startswith('# pxname,'):
        raise HaproxyError('%s did not answer `show stat` with its stats CSV: %r' % (where, text[:120]),
                           error_kind='unreadable')
    rows = csv.DictReader(io.StringIO(text[2:]))
    if 'status' not in (rows.fieldnames or []) or 'scur' not in (rows.fieldnames or []):
        raise HaproxyError('%s: `show stat` has no status/scur columns' % where, error_kind='unreadable')
    out = {}
    for row in rows:
        if not row.get('pxname') or row.get('svname') in (None, 'FRONTEND', 'BACKEND'):
            continue
        scur = (row.get('scur') or '').strip()
        weight = (row.get('weight') or '').strip()
        out[(row['pxname'], row['svname'])] = {
            'status': (row.get('status') or '').strip(),
            'sessions': int(scur) if scur.isdigit() else None,
            'weight': int(weight) if weight.isdigit() else None,
        }
    return out


def _state_of(servers, target, where):
    state = servers.get((target['backend'], target['server']))
    if state is None:
        raise HaproxyError('%s has no server %s/%s (show stat)' % (where, target['backend'], target['server']),
                           error_kind='not_found')
    return state


def serving(status):
    """Whether a server with this status takes new requests (UP, UP 1/2 going down, no check)."""
    return status.startswith('UP') or status == 'no check'


def out_of_routing(status):
    return status.startswith('MAINT')


def lonely_backends(servers, targets):
    """Backends of the targets where no server but the targets serves: draining them would leave none."""
    names = set((t['backend'], t['server']) for t in targets)
    out = []
    for backend in sorted(set(t['backend'] for t in targets)):
        others = [s for (b, name), s in servers.items() if b == backend and (b, name) not in names]
        if not any(serving(s['status']) for s in others):
            out.append(backend)
    return out


def _row(target, state):
    return {'backend': target['backend'], 'server': target['server'], 'status': state['status'],
            'sessions': state['sessions'], 'weight': state['weight']}


def _start(api, targets, done):
    """(where, all servers now, the targets not yet `done(status)`, the result so far)."""
    where = 'HAProxy at %s' % api.address
    before = api.servers()
    states = [_state_of(before, t, where) for t in targets]
    todo = [t for t, s in zip(targets, states) if not done(s['status'])]
    rows = [_row(t, s) for t, s in zip(targets, states)]
    return where, before, todo, {'before': rows, 'after': rows, 'waited': 0.0, 'changed': bool(todo)}


def drain(api, targets, timeout, poll=0.2, keep_serving=True, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Take the targets out of routing: DRAIN, wait for 0 sessions, MAINT. Returns the result dict."""
    where, before, todo, result = _start(api, targets, out_of_routing)
    if keep_serving and todo:
        lonely = lonely_backends(before, todo)
        if lonely:
            names = ', '.join('%s/%s' % (t['backend'], t['server']) for t in todo)
            raise HaproxyError('draining %s would leave no serving server in %s on %s: bring another server of the '
                               'backend back first' % (names, ', '.join(lonely), where), error_kind='refused', changed=False)
    if check_mode or not todo:
        return result
    start = clock()
    for target in todo:
        api.set_state(target['backend'], target['server'], 'drain')
    waiting = list(todo)
    deadline = start + timeout
    while True:
        now_servers = api.servers()
        busy = []
        for target in waiting:
            state = _state_of(now_servers, target, where)
            if state['status'].startswith('DOWN') or state['sessions'] == 0:
                continue
            busy.append((target, state))
        if not busy:
            break
        if clock() >= deadline:
            raise HaproxyError(
                '%s still in flight after %ss on %s (left in DRAIN: no new request reaches them): %s' % (
                    'requests' if len(busy) > 1 else 'a request', timeout, where,
                    ', '.join('%s/%s %s sessions' % (t['backend'], t['server'],
                                                     'unknown' if s['sessions'] is None else s['sessions'])
                              for t, s in busy)), error_kind='busy', changed=True)
        waiting = [t for t, _s in busy]
        sleep(poll)
    result['waited'] = round(clock() - start, 3)
    for target in todo:
        api.set_state(target['backend'], target['server'], 'maint')
    after = api.servers()
    rows = [_row(t, _state_of(after, t, where)) for t in targets]
    wrong = [r for r in rows if not out_of_routing(r['status'])]
    if wrong:
        raise HaproxyError('%s: %s not in maintenance after the drain' % (
            where, ', '.join('%s/%s is %s' % (r['backend'], r['server'], r['status']) for r in wrong)),
            error_kind='refused', changed=True)
    result.update(changed=True, after=rows)
    return result


def ready(api, targets, timeout, poll=0.2, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Put the targets back into routing (state ready) and wait until HAProxy sees them serve."""
    where, _before, todo, result = _start(api, targets, serving)
    if check_mode or not todo:
        return result
    start = clock()
    for target in todo:
        api.set_state(target['backend'], target['server'], 'ready')
    deadline = start + timeout
    while True:
        now_servers = api.servers()
        rows = [_row(t, _state_of(now_servers, t, where)) for t in targets]
        down = [r for r in rows if not serving(r['status'])]
        if not down:
            break
        if clock() >= deadline:
            raise HaproxyError('%s: %s not serving %ss after state ready (health checks fail?)' % (
                where, ', '.join('%s/%s is %s' % (r['backend'], r['server'], r['status']) for r in down), timeout),
                error_kind='busy', changed=True)
        sleep(poll)
    result.update(changed=True, after=rows, waited=round(clock() - start, 3))
    return result
