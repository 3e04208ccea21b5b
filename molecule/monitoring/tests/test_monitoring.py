# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After converge: the pinned stack runs and is held, node exporter 1.9.0 everywhere after the rolling update (the
missing-version update rolled back), the real Prometheus scrapes every target and fires the mismatch and stale-backup
alerts for exactly the right nodes, silences existed for exactly the maintained node during each run and none is
active after (also after the failed run), and the webhook receiver got the notices and Alertmanager's alerts."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
testinfra_hosts = RUNNER.get_hosts('all')
EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
SERVER = 'molecule-mon-server'
NODES = ['molecule-mon-server', 'molecule-mon-gpu-1', 'molecule-mon-gpu-2']


def name_of(host):
    return host.backend.get_hostname()


def api(host, url):
    """GET from the monitoring node itself (Prometheus, Alertmanager, the webhook receiver listen there)."""
    out = host.check_output('curl -fsS %s' % url)
    return json.loads(out)


def ephemeral(name):
    with open(os.path.join(EPHEMERAL, name)) as handle:
        return json.load(handle)


def test_node_exporter_updated_and_held(host):
    assert host.package('prometheus-node-exporter').version == '1.9.0-1+b4'
    assert 'hold' in host.check_output('dpkg --get-selections prometheus-node-exporter')
    assert host.service('prometheus-node-exporter').is_running
    metrics = host.check_output('curl -fsS http://127.0.0.1:9100/metrics')
    assert 'version="1.9.0"' in [line for line in metrics.splitlines() if line.startswith('node_exporter_build_info')][0]
    update = ephemeral('mon-update-%s.json' % name_of(host))
    assert update['node_exporter'] == {'from': '1.5.0-1+b6', 'to': '1.9.0-1+b4', 'rolled_back': False}


def test_server_stack(host):
    if name_of(host) != SERVER:
        return
    assert host.package('prometheus').version == '2.42.0+ds-5+deb12u1'
    assert host.package('prometheus-alertmanager').version == '0.25.0-1+b4'
    for url in ('http://127.0.0.1:9090/-/ready', 'http://127.0.0.1:9093/-/ready'):
        assert host.run('curl -fsS %s' % url).rc == 0
    assert host.run('promtool check rules /etc/prometheus/rules/onprem_ai.rules.yml').rc == 0


def test_prometheus_scrapes_the_lab(host):
    if name_of(host) != SERVER:
        return
    targets = api(host, 'http://127.0.0.1:9090/api/v1/targets')['data']['activeTargets']
    seen = {(t['labels']['job'], t['labels']['instance']): t['health'] for t in targets}
    for node in NODES:
        assert seen[('node', '%s:9100' % node)] == 'up', seen
    for node in NODES[1:]:
        assert seen[('inference', '%s:8000' % node)] == 'up', seen


def test_alerts_fire_for_exactly_the_right_nodes(host):
    if name_of(host) != SERVER:
        return
    alerts = api(host, 'http://127.0.0.1:9090/api/v1/alerts')['data']['alerts']
    firing = {(a['labels']['alertname'], a['labels']['instance']) for a in alerts if a['state'] == 'firing'}
    assert ('NvidiaDriverMismatch', 'molecule-mon-gpu-1:9100') in firing, firing
    assert ('NvidiaDriverMismatch', 'molecule-mon-gpu-2:9100') not in firing, firing
    assert ('BackupStale', 'molecule-mon-gpu-2:9100') in firing, firing
    assert not any(name == 'BackupStale' and inst != 'molecule-mon-gpu-2:9100' for name, inst in firing), firing
    assert not any(name in ('NodeDown', 'GpuLost', 'InferenceEngineDown') for name, _instance in firing), firing


def test_failed_update_rolled_back():
    failed = ephemeral('mon-failed-update.json')
    assert failed['result']['node_exporter'] == {'from': '1.9.0-1+b4', 'to': '1.9.9-1', 'rolled_back': True}
    assert 'rolled back to 1.9.0-1+b4' in failed['msg']


def test_silences_exactly_the_maintained_node_during_and_none_after():
    """With rollout_alertmanager_url: an ok run of gpu.yml on gpu-2, a failed site.yml run (gpu-1 rolled back, gpu-2
    never started: no silence for it)."""
    for run, node in (('ok', 'molecule-mon-gpu-2'), ('failed', 'molecule-mon-gpu-1')):
        record = ephemeral('mon-run-%s.json' % run)
        assert record['rc'] == (0 if run == 'ok' else 2), (run, record['rc'])
        tag = '[onprem_ai.maintenance:mon-%s]' % run
        watched = [s for s in ephemeral('mon-watch-%s.json' % run) if tag in (s['comment'] or '')]
        assert watched and all('active' in s['states'] for s in watched), watched
        silenced = {(m['name'], m['value']) for s in watched for m in s['matchers']}
        assert silenced == {('instance', '%s(:[0-9]+)?' % node)}, silenced
        left = [s for s in record['silences_after'] if s['status']['state'] != 'expired']
        assert left == [], left


def test_webhook_got_notices_and_alerts(host):
    if name_of(host) != SERVER:
        return
    lines = api(host, 'http://127.0.0.1:9095/notices')
    notices = [x['body'] for x in lines if x['path'] == '/notices']
    events = [(n['event'], n['host']) for n in notices]
    for node in NODES:
        assert ('start', node) in events, events
    assert ('rollback', 'molecule-mon-gpu-2') in events, events
    assert ('end', 'localhost') in events, events
    alerts = [a for x in lines if x['path'] == '/alerts' for a in x['body'].get('alerts', [])]
    assert {'NvidiaDriverMismatch', 'BackupStale'} <= {a['labels']['alertname'] for a in alerts}


def test_probe_stops_the_run_rolls_back_and_the_report_shows_it():
    """site.yml under a live probe whose backend (gpu-2's engine) failed mid-run: after gpu-1's warm-up the probe said
    abort, gpu-1 was rolled back, no further node was started, and the report has the probe's timeline, its verdicts
    and Prometheus' before / after table (from the real Prometheus)."""
    with open(os.path.join(EPHEMERAL, 'reports', 'mon-failed', 'report.json')) as handle:
        report = json.load(handle)
    status = {h['host']: h['status'] for h in report['hosts']}
    assert status == {'molecule-mon-gpu-1': 'rolled_back', 'molecule-mon-gpu-2': 'not_reached'}, status
    gpu1 = [h for h in report['hosts'] if h['host'] == 'molecule-mon-gpu-1'][0]
    assert 'live probe says stop' in gpu1['error'], gpu1['error']
    assert 'no further node was started' in report['run']['stopped'], report['run']
    probe = report['probe']
    states = [r['state'] for r in probe['runs']]
    assert 'ok' in states and 'errors' in states and states.index('ok') < states.index('errors'), probe['runs']
    verdicts = [m['verdict'] for m in probe['marks'] if m.get('verdict')]
    assert verdicts[0] == 'ok' and 'abort' in verdicts, probe['marks']
    assert probe['phases']['during']['failed'] > 0 and probe['phases']['before']['failed'] == 0, probe['phases']
    with open(os.path.join(EPHEMERAL, 'reports', 'mon-failed', 'report.md')) as handle:
        markdown = handle.read()
    for heading in ('## Live probe', '### Probe timeline', '### Probe verdicts', '## Prometheus before and after'):
        assert heading in markdown, heading
    prom = report['prometheus']
    assert not prom.get('error'), prom
    rows = {r['name']: r for r in prom['rows']}
    assert rows['completed requests/s']['before'] is not None and rows['completed requests/s']['after'] is not None
    assert rows['targets up']['before'] > 0 and rows['targets up']['points_after'] > 0, rows['targets up']
