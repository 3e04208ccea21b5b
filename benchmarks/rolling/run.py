# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rolling benchmark: playbooks/gpu.yml on the lab's three GPU nodes under streamed client load.

    flock /tmp/lab.lock .venv/bin/python benchmarks/rolling/run.py [--driver 570] [--inflight gateway|metrics|connections]
        [--no-reset] [--png out.png] [--log DIR]

Resets the lab (tests/lab/lab.yml: three nodes on driver 550, one gateway), sets up the gateway
(playbooks/gateway.yml), starts the lab's OpenAI client load (tests/lab/load_client, four clients, half
streamed), waits for steady traffic, runs gpu.yml, then runs it again (a no-op). Meanwhile it reads the
gateway's HAProxy stats page every half second to see when each node is out of routing. Prints per node:
time drained, time of the node's own work (driver, reload or reboot, verify, warm-up: from gpu.yml's
summary), the ratio, requests failed / truncated while it was drained, p50 / p99 latency before and during
the rollout; then the no-op re-run's wall time and changed count. Draws answers per second per node over
time, drained periods shaded, failed or truncated requests marked (PNG, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
NODES = ['lab-gpu-1', 'lab-gpu-2', 'lab-gpu-3']
GATEWAY = 'lab-gateway-1'
SUMMARY = re.compile(r"(lab-gpu-\d): (\S+) -> (\S+) \(([^)]*)\), verified, drained ([\d.]+) s for ([\d.]+) s of its own work")


def run(argv, **kwargs):
    started = time.time()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)
    return proc, time.time() - started


def playbook(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_CALLBACK_RESULT_FORMAT='json',
               ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    return run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')] + list(args), env=env)


def changed_count(text):
    return sum(int(n) for n in re.findall(r'changed=(\d+)', text))


class StatsPoller(threading.Thread):
    """Polls HAProxy's stats page on the gateway: when each node's server is out of routing."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []  # (time, {node: status})
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            proc = subprocess.run(['docker', 'exec', GATEWAY, 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:8404/;csv'],
                                  capture_output=True, text=True, check=False)
            states = {}
            for line in proc.stdout.splitlines():
                cols = line.split(',')
                if len(cols) > 17 and cols[0].startswith('model_') and cols[1] in NODES:
                    states[cols[1]] = cols[17]
            self.samples.append((time.time(), states))
            self.stop.wait(0.5)

    def intervals(self):
        """{node: [(start, end)]} while the node was not UP (drain, maintenance, down) or unread."""
        out = {node: [] for node in NODES}
        for node in NODES:
            start = None
            for when, states in self.samples:
                up = states.get(node, 'UP').startswith('UP')
                if not up and start is None:
                    start = when
                elif up and start is not None:
                    out[node].append((start, when))
                    start = None
            if start is not None:
                out[node].append((start, self.samples[-1][0]))
        return out


def percentile(values, fraction):
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def wait_answers(live, phase, count, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with open(live, encoding='utf-8') as handle:
                if json.load(handle)['phases'].get(phase, {}).get('ok', 0) >= count:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit('no steady traffic through the gateway after %d s' % limit)


def draw(path, events, intervals, t0):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(len(NODES), 1, sharex=True, figsize=(10, 6))
    end = max(e['end'] for e in events) - t0
    for axis, node in zip(axes, NODES):
        seconds = [0] * (int(end) + 1)
        for event in events:
            if event['node'] == node and event['outcome'] == 'ok':
                seconds[int(event['end'] - t0)] += 1
        axis.plot(range(len(seconds)), seconds, drawstyle='steps-post', color='tab:blue')
        for start, stop in intervals[node]:
            axis.axvspan(start - t0, stop - t0, color='tab:orange', alpha=0.3, label='out of routing')
        bad = [e['end'] - t0 for e in events if e['outcome'] != 'ok']
        if bad:
            axis.plot(bad, [0] * len(bad), 'rx', label='failed / truncated')
        axis.set_ylabel('%s\nanswers/s' % node)
    axes[-1].set_xlabel('seconds since the load started')
    axes[0].set_title('gpu.yml rolling driver upgrade under streamed load (shaded: node out of routing)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--driver', default='570')
    parser.add_argument('--no-reset', action='store_true', help='use the lab as it is (nodes must be below --driver)')
    parser.add_argument('--png', default=os.path.join(ROOT, 'benchmarks', 'rolling', 'rolling.png'))
    parser.add_argument('--inflight', default='gateway', choices=['gateway', 'metrics', 'connections'],
                        help="rollout_inflight_source: how a drain tells that the node's requests are done (gateway: "
                             "HAProxy's drain waits for the server's sessions to be 0, nothing more is read on the node)")
    parser.add_argument('--log', help='keep the output of both gpu.yml runs (with task timings) in this directory')
    args = parser.parse_args(argv)
    if not args.no_reset:
        proc, took = playbook('tests/lab/lab.yml', '-e', 'lab_state=reset')
        print('lab reset: %.0f s, rc %d' % (took, proc.returncode))
        if proc.returncode:
            sys.exit(proc.stdout[-3000:])
    proc, took = playbook('playbooks/gateway.yml')
    print('gateway set up: %.0f s, rc %d' % (took, proc.returncode))
    if proc.returncode:
        sys.exit(proc.stdout[-3000:])
    work = tempfile.mkdtemp(prefix='rolling-bench-')
    phase, stop, live, events_path = (os.path.join(work, n) for n in ('phase', 'stop', 'live.json', 'events.jsonl'))
    with open(phase, 'w', encoding='utf-8') as handle:
        handle.write('before\n')
    address = subprocess.run(['docker', 'inspect', '-f', '{{ (index .NetworkSettings.Networks "onprem-ai-lab").IPAddress }}',
                              GATEWAY], capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, LAB_GATEWAY_KEY='sk-lab-demo-master-key')  # the lab's own key (inventories/lab)
    client = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'lab', 'load_client', 'gateway_load.py'),
                               '--base-url', 'http://%s:4000/v1' % address, '--api-key-env', 'LAB_GATEWAY_KEY',
                               '--model', 'llama-3.1-8b-instruct', '--phase-file', phase, '--stop-file', stop,
                               '--max-seconds', '1800', '--report', os.path.join(work, 'report.json'), '--live', live,
                               '--events', events_path], env=env, stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    poller = StatsPoller()
    poller.start()
    try:
        wait_answers(live, 'before', 40)
        with open(phase, 'w', encoding='utf-8') as handle:
            handle.write('rollout\n')
        extra = ['-e', 'gpu_stack_driver_version=%s' % args.driver, '-e', 'rollout_inflight_source=%s' % args.inflight]
        rollout, rollout_took = playbook('playbooks/gpu.yml', *extra)
        with open(phase, 'w', encoding='utf-8') as handle:
            handle.write('noop\n')
        noop, noop_took = playbook('playbooks/gpu.yml', *extra)
    finally:
        open(stop, 'w', encoding='utf-8').close()
        client.communicate(timeout=120)  # its own table is not printed: the totals are read from its report
        poller.stop.set()
        poller.join(5)
    with open(events_path, encoding='utf-8') as handle:
        events = [json.loads(line) for line in handle]
    if args.log:
        os.makedirs(args.log, exist_ok=True)
        for name, proc in (('rollout', rollout), ('noop', noop)):
            with open(os.path.join(args.log, 'gpu-%s.log' % name), 'w', encoding='utf-8') as handle:
                handle.write(proc.stdout + proc.stderr)
    intervals = poller.intervals()
    work_of = dict((m.group(1), (float(m.group(5)), float(m.group(6)))) for m in SUMMARY.finditer(rollout.stdout))
    before = [e['end'] - e['start'] for e in events if e['phase'] == 'before' and e['outcome'] == 'ok']
    with open(os.path.join(work, 'report.json'), encoding='utf-8') as handle:
        totals = json.load(handle)['totals']
    print('\ngpu.yml to %s (in-flight wait: %s): %.0f s, rc %d; client: %d requests, %d streamed, %d ok, %d failed, %d truncated, %d stalled' % (
        args.driver, args.inflight, rollout_took, rollout.returncode, totals['requests'], totals['streamed'], totals['ok'],
        totals['failed'], totals['truncated'], totals['stalled']))
    header = ('node', 'drained', 'own work', 'ratio', 'failed', 'cut', 'p50 bef', 'p99 bef', 'p50 dur', 'p99 dur')
    print('%-10s %9s %9s %9s %6s %6s %9s %9s %9s %9s' % header)
    for node in NODES:
        spans = intervals[node]
        drained, own = work_of.get(node, (float('nan'), float('nan')))
        during = [e for e in events if e['phase'] == 'rollout' and any(s <= e['start'] <= t for s, t in spans)]
        latencies = [e['end'] - e['start'] for e in during if e['outcome'] == 'ok']
        print('%-10s %8.1fs %8.1fs %9.2f %6d %6d %8.2fs %8.2fs %8.2fs %8.2fs' % (
            node, drained, own, drained / own if own else float('nan'),
            sum(e['outcome'] == 'failed' for e in during), sum(e['outcome'] == 'truncated' for e in during),
            percentile(before, 0.5), percentile(before, 0.99), percentile(latencies, 0.5), percentile(latencies, 0.99)))
    print('out of routing seen on the gateway (s): %s' % ', '.join(
        '%s %s' % (n, '+'.join('%.1f' % (t - s) for s, t in intervals[n]) or '-') for n in NODES))
    print('no-op re-run: %.1f s, changed=%d, rc %d' % (noop_took, changed_count(noop.stdout), noop.returncode))
    try:
        draw(args.png, events, intervals, t0)
        print('picture: %s' % os.path.relpath(args.png, ROOT))
    except ImportError:
        print('picture: matplotlib is not installed (pip install -r requirements.txt)')
    return 0 if rollout.returncode == 0 and noop.returncode == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
