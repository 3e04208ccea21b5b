# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/site.yml and emergency.yml run by ansible-playbook on this machine (local connections, a stub component
role, a loopback health server as the nodes' engine), as tests/unit/roles/test_rollout_sequence.py runs the sequence:

- outside the window the run is refused, and nothing is written;
- a window that stays open for one node but not for the next: node a is updated, b and c are left for the next
  window, the report (history, latest-summary.txt) says so (the node duration is set per host, so that the test does
  not depend on how fast this machine is: the lab scenario molecule/maintenance_run closes a real window);
- an emergency outside the window, with its reason, where node b's update fails: a updated, b failed, c not
  reached, the report records the reason and the failure, and the run fails.
"""

from __future__ import annotations

import datetime
import json
import os
import stat

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))

CHANGE = {'component': 'stub', 'name': 'pkg', 'from': '1.0', 'to': '1.1', 'reboot': False, 'security': False,
          'risk': 'low', 'reason': 'test'}


def open_for(minutes):
    """A weekly UTC window that opened 10 minutes ago and closes in `minutes`."""
    opened = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    return {'timezone': 'UTC', 'windows': [{'name': 'test', 'frequency': 'weekly', 'weekday': opened.strftime('%A').lower(),
                                            'start': opened.strftime('%H:%M:%S'), 'duration': '%dm' % (minutes + 10)}]}


CLOSED = {'timezone': 'UTC', 'windows': [{'name': 'w', 'frequency': 'weekly', 'weekday': 'sunday', 'start': '01:00',
                                          'end': '02:00'}],
          'freezes': [{'name': 'always', 'start': '2000-01-01', 'end': '2099-12-31'}]}


@pytest.fixture(scope='module')
def lab(stub_nodes):  # stub_nodes: tests/unit/conftest.py
    tmp = stub_nodes.tmp

    def run(name, playbook, hosts, extra):
        inventory = {'gpu_nodes': {'hosts': dict((host, dict(stub_nodes.host_vars(stub_changes=[CHANGE]), **more))
                                                 for host, more in hosts.items())}}
        (tmp / ('%s.inventory.json' % name)).write_text(json.dumps(inventory))
        extra = dict({'maintenance_components': ['stub'], 'maintenance_report_dir': str(tmp / 'reports'),
                      'maintenance_run_id': name}, **extra)
        (tmp / ('%s.vars.json' % name)).write_text(json.dumps(extra))
        proc = stub_nodes.playbook(['-i', str(tmp / ('%s.inventory.json' % name)), os.path.join(ROOT, 'playbooks', playbook),
                                    '-e', '@%s' % (tmp / ('%s.vars.json' % name))], ANSIBLE_NOCOLOR='1')
        path = tmp / 'reports' / name / 'report.json'
        return proc, (json.loads(path.read_text()) if path.exists() else None)

    return run, tmp


def test_outside_the_window_the_run_is_refused(lab):
    run, tmp = lab
    proc, report = run('refused', 'site.yml', {'a': {}}, {'maintenance_calendar': CLOSED})
    assert proc.returncode == 2 and report is None
    assert 'refused: outside any maintenance window' in proc.stdout
    assert not (tmp / 'reports' / 'refused').exists()


def test_window_closing_leaves_the_rest_for_the_next_window(lab):
    run, tmp = lab
    proc, report = run('closing', 'site.yml', {'a': {'maintenance_node_duration': '10m'},
                                               'b': {'maintenance_node_duration': '2h'},
                                               'c': {'maintenance_node_duration': '2h'}},
                       {'maintenance_calendar': open_for(60)})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [h['status'] for h in report['hosts']] == ['updated', 'postponed', 'postponed']
    assert report['run']['outcome'] == 'stopped' and report['left_for_next_window'] == ['b', 'c']
    assert report['run']['kind'] == 'monthly' and report['run']['window']['decision'] == 'inside_window'
    assert "the window 'test' closes at" in report['run']['stopped']
    assert set(report['hosts'][0]['times']) == {'drain', 'work', 'upgraded', 'warm', 'undrained'}
    summary = (tmp / 'reports' / 'latest-summary.txt').read_text()
    assert summary.startswith('Maintenance run closing (monthly): STOPPED - 1 of 3 nodes done, 2 left for the next window (b, c)')
    assert 'Maintenance run closing (monthly): STOPPED' in proc.stdout  # printed at the end of the run
    html = (tmp / 'reports' / 'closing' / 'report.html').read_text()
    assert '<svg' in html and 'b: serving; left for the next window' in html
    for name in os.listdir(tmp / 'reports' / 'closing'):
        assert stat.S_IMODE(os.stat(tmp / 'reports' / 'closing' / name).st_mode) == 0o644


def test_emergency_outside_the_window_stops_at_a_failed_node(lab):
    run, tmp = lab
    proc, refused = run('no-reason', 'emergency.yml', {'a': {}}, {'maintenance_calendar': CLOSED})
    assert proc.returncode == 2 and refused is None and 'an emergency run needs its reason' in proc.stdout
    proc, report = run('emergency', 'emergency.yml', {'a': {}, 'b': {'stub_fail_update': True}, 'c': {}},
                       {'maintenance_calendar': CLOSED, 'maintenance_emergency_reason': 'DSA-0000-1 critical, approved'})
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert [h['status'] for h in report['hosts']] == ['updated', 'failed', 'not_reached']
    assert report['run']['outcome'] == 'failed' and report['run']['kind'] == 'emergency'
    assert report['run']['emergency'] is True and report['run']['emergency_reason'] == 'DSA-0000-1 critical, approved'
    assert report['run']['stopped'].startswith('b failed (stub update failed on b)')
    history = json.loads((tmp / 'reports' / 'history.json').read_text())['runs']
    assert [h['name'] for h in history][-2:] == ['closing', 'emergency']
    assert 'emergency run: DSA-0000-1 critical, approved' in (tmp / 'reports' / 'latest-summary.txt').read_text()


def test_rollback_needs_a_reason_and_rolls_each_node_back(lab):
    run, tmp = lab
    proc, report = run('rollback-no-reason', 'rollback.yml', {'a': {}}, {})
    assert proc.returncode == 2 and report is None and 'a rollback needs its reason' in proc.stdout
    proc, report = run('rollback', 'rollback.yml', {'a': {}, 'b': {}}, {'maintenance_rollback_reason': 'pkg 1.1 is slow'})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report['run']['kind'] == 'rollback' and report['run']['window']['reason'] == 'a rollback: pkg 1.1 is slow'
    assert [h['status'] for h in report['hosts']] == ['updated', 'updated']
    assert report['hosts'][0]['components'] == [{'component': 'stub', 'name': 'stub', 'reason': 'rollback', 'from': 'current',
                                                 'to': 'the recorded previous version', 'rolled_back': False}]
    assert set(report['hosts'][1]['times']) == {'drain', 'work', 'upgraded', 'warm', 'undrained'}


def test_housekeeping_and_client_counts_in_the_report(lab):
    # maint (issue 17 housekeeping): keep 2 - the current and the previous version stay; a failed node is left alone
    run, tmp = lab
    roots = {}
    for host in ('a', 'b'):
        root = tmp / 'versions' / host
        for index, name in enumerate(['r1', 'r2', 'r3', 'r4']):
            (root / name).mkdir(parents=True)
            os.utime(root / name, (index + 1, index + 1))
        os.symlink('r3', root / 'current')  # r4 is newer but not in use: the previous version
        roots[host] = root
    spec = {'versions': [{'kind': 'model', 'path': '{{ housekeeping_root }}', 'keep': 2}]}
    counts = tmp / 'load-live.json'  # the load client's --live counts (item 3: failed requests seen by the clients)
    counts.write_text(json.dumps({'phases': {'gpu-rollout': {'requests': 40, 'ok': 39, 'failed': 1, 'truncated': 0}}}))
    proc, report = run('housekeeping', 'emergency.yml',
                       {'a': {'housekeeping_root': str(roots['a'])},
                        'b': {'housekeeping_root': str(roots['b']), 'stub_fail_update': True}},
                       {'maintenance_calendar': CLOSED, 'maintenance_emergency_reason': 'test of the housekeeping',
                        'maintenance_housekeeping': spec, 'maintenance_load_counts': str(counts)})
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert sorted(os.listdir(roots['a'])) == ['current', 'r3', 'r4']
    assert sorted(os.listdir(roots['b'])) == ['current', 'r1', 'r2', 'r3', 'r4']
    assert report['cleaned'] == ['a: %s (removed)' % (roots['a'] / 'r1'), 'a: %s (removed)' % (roots['a'] / 'r2')]
    assert '## Cleaned up in the window' in (tmp / 'reports' / 'housekeeping' / 'report.md').read_text()
    assert report['failed_requests']['count'] == 1 and report['failed_requests']['total'] == 40
    assert 'failed requests during the run: 1 of 40 (client-side, %s)' % counts in proc.stdout
