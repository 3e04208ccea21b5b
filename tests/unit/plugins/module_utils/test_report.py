# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The change notice and the run report: what they say, the timeline picture, the history, file modes, secrets."""

from __future__ import annotations

import copy
import json
import os
import stat
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _plan as plan
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _report as report
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _windows as windows

with open(os.path.join(os.path.dirname(__file__), 'test_report.yaml'), encoding='utf-8') as _handle:
    DATA = yaml.safe_load(_handle)

CALENDAR = {'timezone': 'Europe/Berlin', 'windows': [{'name': 'monthly', 'frequency': 'monthly', 'weekday': 'tue',
                                                     'week': 2, 'start': '22:00', 'end': '02:00'}]}
DRIVER = {'component': 'gpu_stack', 'name': 'nvidia-driver', 'from': '570.124.06', 'to': '570.133.20', 'reboot': True,
          'security': False, 'risk': 'low', 'reason': 'gpu_stack_driver_version'}
OPENSSL = {'component': 'os_update', 'name': 'openssl', 'from': '3.0.15-1~deb12u1', 'to': '3.0.16-1~deb12u1',
           'reboot': False, 'security': True, 'risk': 'low', 'reason': 'DSA-5900-1'}


def notice_data():
    window = windows.Calendar.from_data(CALENDAR).status('2026-11-24T09:00:00Z')['next']
    hosts = {'gpu1': plan.plan([DRIVER, OPENSSL], advisories=[{'id': 'DSA-5900-1', 'name': 'openssl', 'severity': 'high'}]),
             'gpu2': plan.plan([])}
    return {'title': 'Monthly maintenance of the GPU fleet', 'run': 'monthly', 'window': window, 'hosts': hosts,
            'contact': 'ops@example.org, +49 30 1234', 'sequence': 1}


def test_notice_says_what_changes_risk_downtime_and_how_to_postpone():
    files = report.notice(notice_data(), dtstamp='2026-11-24T09:00:00Z')
    assert sorted(files) == ['notice.html', 'notice.ics', 'notice.md']
    md = files['notice.md']
    assert 'When: 2026-12-08T22:00:00+01:00 to 2026-12-09T02:00:00+01:00 (Europe/Berlin)' in md
    assert '- Risk: medium' in md and '- Reboot: yes, node by node' in md
    assert '- Downtime for users: none expected' in md
    assert '| gpu1 | gpu_stack | nvidia-driver | 570.124.06 -> 570.133.20 | medium | yes |' in md
    assert 'DSA-5900-1' in md and 'postponed to the next window' in md and 'ops@example.org' in md
    assert '1 of 2 (gpu1)' in md
    assert '<table>' in files['notice.html'] and '<td>nvidia-driver</td>' in files['notice.html']


def test_notice_ics_is_the_window_read_back_by_icalendar():
    icalendar = pytest.importorskip('icalendar')
    text = report.notice(notice_data(), dtstamp='2026-11-24T09:00:00Z')['notice.ics']
    assert text.endswith('\r\n')
    cal = icalendar.Calendar.from_ical(text)
    events = list(cal.walk('VEVENT'))
    assert len(events) == 1
    event = events[0]
    assert event.decoded('DTSTART').isoformat() == '2026-12-08T22:00:00+01:00'
    assert event.decoded('DTEND').isoformat() == '2026-12-09T02:00:00+01:00'
    assert str(event['SUMMARY']) == 'Monthly maintenance of the GPU fleet'
    assert 'Risk: medium' in str(event['DESCRIPTION']) and int(event['SEQUENCE']) == 1


def test_notice_without_a_window_says_so_and_has_no_ics():
    data = notice_data()
    data['window'] = None
    files = report.notice(data)
    assert 'no maintenance window is open' in files['notice.md'] and 'notice.ics' not in files


def test_notice_with_critical_security_and_vulnerabilities():
    data = notice_data()
    data['hosts']['gw1'] = plan.plan([], packages=[{'name': 'requests', 'version': '2.31.0', 'venv': '/opt/litellm'}],
                                     osv=[{'id': 'GHSA-9wx4-h78v-vm56', 'aliases': ['CVE-2024-35195'], 'affected': [
                                         {'package': {'ecosystem': 'PyPI', 'name': 'requests'},
                                          'ranges': [{'type': 'ECOSYSTEM', 'events': [{'introduced': '0'}, {'fixed': '2.32.0'}]}]}]}])
    md = report.notice(data)['notice.md']
    assert 'CRITICAL security updates' in md
    assert '| gw1 | requests | 2.31.0 | GHSA-9wx4-h78v-vm56 CVE-2024-35195 | unknown | 2.32.0 |' in md


def test_report_of_a_run_stopped_by_the_window_lists_the_nodes_left():
    files, norm = report.report(DATA['window_closed'])
    assert norm['run']['outcome'] == 'stopped' and norm['left_for_next_window'] == ['gpu2', 'gpu3']
    assert norm['summary'][0] == ('Maintenance run 2026-12-08-monthly (monthly): STOPPED - 1 of 3 nodes done, '
                                  '2 left for the next window (gpu2, gpu3)')
    md = files['report.md']
    assert '- Left for the next window: gpu2, gpu3' in md
    assert '| gpu1 | updated | nvidia-driver 570.124.06 -> 570.133.20 | 52s | 40s |' in md
    assert 'ttft_ms 120, tokens_per_second 48.0' in md and 'ttft_ms 118, tokens_per_second 49.1' in md
    assert '0 of 1234 (load client through the gateway)' in md
    assert '- gpu1 models llama -> 1.0.1' in md
    data = json.loads(files['report.json'])
    assert data['hosts'][0]['drained_seconds'] == 52.0 and data['run']['duration_seconds'] == 1800.0


def test_report_of_a_rolled_back_node_says_what_happened():
    files, norm = report.report(DATA['rolled_back'])
    assert norm['run']['outcome'] == 'failed'
    assert norm['rolled_back'] == [{'host': 'gpu2', 'why': 'validation failed (chat completion: HTTP 500); rolled back to 570.124.06'}]
    md = files['report.md']
    assert '## Rolled back' in md and 'nvidia-driver 570.124.06 -> 570.133.20 (rolled back to 570.124.06)' in md
    assert '- Stopped: gpu2 failed its validation: the run stops' in md
    assert 'unknown (no client-side count was given)' in md
    assert '| gpu2 | NO | chat completion: FAILED |' in md


def svg_of(html_text):
    start = html_text.index('<svg')
    return ET.fromstring(html_text[start:html_text.index('</svg>') + 6])


def rects(svg):
    return [r for r in svg.iter('{http://www.w3.org/2000/svg}rect') if r.find('{http://www.w3.org/2000/svg}title') is not None]


def test_timeline_draws_each_node_when_it_served_drained_and_failed():
    files, _norm = report.report(DATA['rolled_back'])
    svg = svg_of(files['report.html'])
    titles = [r.find('{http://www.w3.org/2000/svg}title').text for r in rects(svg)]
    assert 'gpu1: serving, 21:00:00 - 21:01:00' in titles
    assert 'gpu1: draining (out of routing, requests finishing), 21:01:00 - 21:01:10' in titles
    assert 'gpu1: out of service: update, reboot, verify, 21:01:10 - 21:02:10' in titles
    assert 'gpu2: warm-up and back into routing, 21:05:00 - 21:05:02' in titles
    assert any(t.startswith('gpu3: serving; left for the next window') for t in titles)
    # the bars of one node follow each other without gaps or overlaps, inside the plot
    bars = [r for r in rects(svg) if r.find('{http://www.w3.org/2000/svg}title').text.startswith('gpu1:')]
    xs = [(float(r.get('x')), float(r.get('x')) + float(r.get('width'))) for r in bars]
    assert all(abs(a[1] - b[0]) < 1.01 for a, b in zip(xs, xs[1:]))
    assert '&#x2716;' in files['report.html'] or '\u2716' in files['report.html']


def test_timeline_of_a_node_that_never_came_back():
    data = copy.deepcopy(DATA['rolled_back'])
    data['hosts'][1].update(status='failed', error='stopped answering',
                            times={'drain': '2026-12-08T21:03:00Z', 'work': '2026-12-08T21:03:10Z'})
    data['run']['finished'] = '2026-12-08T21:10:00Z'
    files, _norm = report.report(data)
    titles = [r.find('{http://www.w3.org/2000/svg}title').text for r in rects(svg_of(files['report.html']))]
    assert 'gpu2: failed after out of service: update, reboot, verify: stopped answering, 21:03:10 - 21:10:00' in titles
    del data['run']['finished']  # the last timestamp ends the picture; the failure still shows
    files, _norm = report.report(data)
    titles = [r.find('{http://www.w3.org/2000/svg}title').text for r in rects(svg_of(files['report.html']))]
    assert any(t.startswith('gpu2: failed after') for t in titles)


def test_no_timestamps_no_picture():
    files, _norm = report.report({'run': {'name': 'x'}, 'hosts': [{'host': 'a', 'status': 'unchanged'}]})
    assert 'No timestamps were recorded' in files['report.html']


@pytest.mark.parametrize('data,error', [
    ({'run': {}, 'hosts': []}, 'hosts: no host'),
    ({'hosts': [{'host': 'a', 'status': 'exploded'}]}, "hosts[0].status: 'exploded'"),
    ({'hosts': [{'status': 'updated'}]}, 'hosts[0]: {host, status'),
    ({'hosts': [{'host': 'a', 'status': 'updated', 'times': {'drain': 'yesterday'}}]}, "'yesterday' is not a time"),
    ({'hosts': [{'host': 'a', 'status': 'updated', 'times': {'drain': '2026-12-08T21:00:00'}}]}, 'has no UTC offset'),
    ({'run': {'gateway_api_key': 'sk-1234'}, 'hosts': [{'host': 'a'}]}, 'data.run.gateway_api_key: the notice and report'),
])
def test_bad_report_data(data, error):
    with pytest.raises(report.ReportError) as info:
        report.report(data)
    assert error in info.value.msg


def test_secret_named_key_without_a_value_is_fine():
    report.report({'run': {'password_file': None}, 'hosts': [{'host': 'a', 'status': 'unchanged'}]})


def test_history_is_kept_files_are_0644_and_a_rerun_changes_nothing(tmp_path):
    dest = str(tmp_path / 'reports')
    for i, case in enumerate(['window_closed', 'rolled_back']):
        files, norm = report.report(DATA[case])
        changed, paths = report.write(dest, 'run-%d' % i, files, entry=report.history_entry('run-%d' % i, norm), keep=24)
        assert changed == paths
    history = json.loads((tmp_path / 'reports' / 'history.json').read_text())['runs']
    assert [h['name'] for h in history] == ['run-0', 'run-1'] and history[1]['outcome'] == 'failed'
    assert (tmp_path / 'reports' / 'latest-summary.txt').read_text().startswith('Maintenance run r2 (monthly): FAILED')
    for root, dirs, names in os.walk(dest):
        for name in names:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o644
        for name in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o755
    files, norm = report.report(DATA['rolled_back'])
    changed, _paths = report.write(dest, 'run-1', files, entry=report.history_entry('run-1', norm), keep=24)
    assert changed == []
    changed, _paths = report.write(dest, 'run-2', files, entry=report.history_entry('run-2', norm), keep=2)
    history = json.loads((tmp_path / 'reports' / 'history.json').read_text())['runs']
    assert [h['name'] for h in history] == ['run-1', 'run-2']


def test_check_mode_writes_nothing(tmp_path):
    files, norm = report.report(DATA['rolled_back'])
    changed, paths = report.write(str(tmp_path / 'r'), 'run', files, entry=report.history_entry('run', norm), check_mode=True)
    assert changed == paths and not (tmp_path / 'r').exists()


def test_bad_name_and_unreadable_history(tmp_path):
    with pytest.raises(report.ReportError, match='not a file name'):
        report.write(str(tmp_path), '../up', {'a': 'b'})
    (tmp_path / 'history.json').write_text('{broken')
    files, norm = report.report(DATA['rolled_back'])
    with pytest.raises(report.ReportError, match='cannot be read'):
        report.write(str(tmp_path), 'run', files, entry=report.history_entry('run', norm))


def test_report_from_the_rollout_record_and_inference_check_results():
    """The shared sequence's record (filter rollout_record) and the registered inference_check results as they are."""
    record = [
        {'host': 'gpu1', 'status': 'updated', 'updated': ['gpu_stack'], 'rolled_back': [], 'drained_on': [],
         'changes': [{'component': 'onprem_ai.maintenance.gpu_stack', 'name': 'nvidia-driver', 'from': '570.124.06',
                      'to': '570.133.20', 'reboot': False, 'security': False, 'risk': 'medium', 'reason': 'x'}],
         'times': {'drain': 1796763660.0, 'work': 1796763670.0, 'upgraded': 1796763700.0, 'warm': 1796763710.0,
                   'undrained': 1796763712.0}, 'error': None, 'phase': None, 'postponed_reason': None},
        {'host': 'gpu2', 'status': 'rolled_back', 'updated': ['gpu_stack'], 'rolled_back': ['gpu_stack'],
         'changes': [{'component': 'onprem_ai.maintenance.gpu_stack', 'name': 'nvidia-driver', 'from': '570.124.06',
                      'to': '570.133.20'}],
         'times': {'drain': 1796763720.0, 'work': 1796763730.0, 'upgraded': 1796763760.0, 'warm': 1796763790.0,
                   'undrained': 1796763792.0}, 'error': 'validation: chat completion failed'},
        {'host': 'gpu3', 'status': 'postponed', 'changes': [], 'times': {},
         'postponed_reason': "the window 'monthly' closes at 02:00, in 20m, and a node needs 30m"},
        {'host': 'gpu4', 'status': 'unreachable', 'phase': 'the drain and update', 'changes': [], 'times': {'drain': 1796763700.0}},
    ]
    validation = {
        'gpu1': {'changed': False, 'passed': True, 'checks': [{'name': 'chat completion', 'passed': True, 'reason': 'ok'}],
                 'figures': {'ttft_p50_ms': 80, 'latency_p95_ms': 410, 'tokens_per_s': 51.2, 'error_rate': 0.0},
                 'baseline': {'captured': '2026-12-01', 'figures': {'ttft_p50_ms': 82, 'latency_p95_ms': 400, 'tokens_per_s': 50.0}}},
        'gpu2': {'failed': True, 'passed': False,
                 'invocation': {'module_args': {'api_key': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}},
                 'checks': [{'name': 'chat completion', 'passed': False, 'reason': 'HTTP 500'}]},
        'gpu3': {'skipped': True},
    }
    files, norm = report.report({'run': {'name': 'r', 'kind': 'monthly', 'finished': 1796763900}, 'hosts': record,
                                 'validation': validation})
    assert norm['run']['outcome'] == 'failed' and norm['left_for_next_window'] == ['gpu3']
    md = files['report.md']
    assert 'nvidia-driver 570.124.06 -> 570.133.20 (rolled back to 570.124.06)' in md
    assert '| gpu1 | yes | chat completion: ok | ttft_p50_ms 82, latency_p95_ms 400, tokens_per_s 50.0 | ' \
           'ttft_p50_ms 80, latency_p95_ms 410, tokens_per_s 51.2, error_rate 0.0 |' in md
    assert '| gpu2 | NO | chat completion: FAILED |' in md and '| gpu3 | not run |' in md
    assert "gpu3: postponed - left for the next window - the window 'monthly' closes" in '\n'.join(norm['summary'])
    assert 'gpu4: unreachable - stopped answering during the drain and update' in '\n'.join(norm['summary'])
    assert norm['run']['stopped'] == 'gpu2 rolled back (validation: chat completion failed): no further node was started'


def test_stopped_by_the_window_says_why_from_the_postponed_nodes():
    _files, norm = report.report({'run': {'name': 'r'}, 'hosts': [
        {'host': 'a', 'status': 'updated', 'times': {}},
        {'host': 'b', 'status': 'postponed', 'postponed_reason': "the window 'monthly' closes in 5m"}]})
    assert norm['run']['outcome'] == 'stopped' and norm['run']['stopped'] == "the window 'monthly' closes in 5m"


def test_notice_lists_the_proactive_recommendations():
    data = notice_data()
    data['hosts']['gpu2'] = plan.plan([], checks={'gateway': {'num_retries': 0}, 'engine_gpu_memory_utilization': None})
    md = report.notice(data)['notice.md']
    assert '## Proactive maintenance (drift, housekeeping, tuning)' in md
    assert '| gpu2 | gateway retries | the gateway does not retry | allow 1-2 retries' in md
    assert '| gpu2 | engine GPU memory share | the engine\'s GPU memory share cannot be read | find out: it cannot be read |' in md


def test_notice_lists_what_the_window_cleans_up():
    # maint (issue 17 housekeeping)
    data = notice_data()
    data['hosts']['gpu2'] = plan.plan([], checks={'images': {'images': [
        {'id': 'a', 'repository': 'lab/engine', 'tag': '1', 'created': '1'},
        {'id': 'b', 'repository': 'lab/engine', 'tag': '2', 'created': '2'}], 'used': []}})
    md = report.notice(data)['notice.md']
    assert '## Cleaned up in the window' in md
    assert '| gpu2 | lab/engine:1 | unused, older than the previous version |' in md
    assert '| gpu2 | unused container images | 2 unused: lab/engine:1, lab/engine:2 |' in md


def test_failed_requests_counted_by_the_load_client():
    # maint (issue 17, item 3): the lab load client's --live counts, failed and truncated answers count as failed
    counts = {'phases': {'gpu-rollout': {'requests': 100, 'ok': 97, 'failed': 2, 'truncated': 1, 'stalled': 0},
                         'idle': {'requests': 20, 'ok': 20, 'failed': 0, 'truncated': 0}}, 'source': 'client-side, x.json'}
    _files, norm = report.report({'run': {'name': 'r'}, 'hosts': [{'host': 'a', 'status': 'updated', 'times': {}}],
                                  'failed_requests': counts})
    assert norm['failed_requests']['count'] == 3 and norm['failed_requests']['total'] == 120
    assert norm['failed_requests']['phases']['gpu-rollout'] == {'requests': 100, 'failed': 3}
    assert norm['summary'][-1] == 'failed requests during the run: 3 of 120 (client-side, x.json)'
    assert report.failed_requests_from_client({'phases': {'a': {'requests': 'many'}}})['count'] is None
    assert report.failed_requests_from_client(None)['count'] is None
