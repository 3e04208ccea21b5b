# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strategies benchmark: a model update (tiny-llama v1 -> v2 on llama.cpp's llama-server) of the lab nodes behind
the real LiteLLM gateway, under the real OpenAI client's load (four clients, half streamed), with each strategy of
playbooks/model_update.yml and all-at-once as the baseline.

    make lab-llama-server && flock /tmp/lab.lock .venv/bin/python benchmarks/strategies/run.py [--keep]

Brings up the molecule scenario `strategies` (create, prepare, converge: the nodes serve v1 with llama-server, the
gateway routes through HAProxy to every node's blue and green server), then per strategy: puts every node back on
v1 (all at once, no load), starts the client, 10 s of steady traffic ("before"), the update ("during"), 10 s
after; for blue-green the switch is followed by a switch-back, timed. Prints one Markdown row per strategy:
requests, failed, truncated, p50 / p99 latency before / during / after, the update's wall time, the switch-back's
time (the HAProxy runtime step, and the whole playbook). Destroys the scenario at the end unless --keep.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
KEY = 'sk-lab-strategies-master-7c6b5a'  # the scenario's lab master key (molecule/strategies/molecule.yml)
STRATEGIES = ('all_at_once', 'rolling', 'canary', 'blue_green')


def env():
    out = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''),
               ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    return out


def run(argv, check=True):
    started = time.time()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, env=env())
    if check and proc.returncode != 0:
        sys.exit('%s failed (rc %d):\n%s' % (' '.join(argv), proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    return proc, time.time() - started


def inventory():
    found = sorted(glob.glob(os.path.expanduser('~/.ansible/tmp/molecule.*.strategies/inventory')), key=os.path.getmtime)
    if not found:
        sys.exit('no inventory of the molecule scenario strategies (did converge run?)')
    return found[-1]


def update(inv, *extra, check=True):
    return run(['ansible-playbook', '-i', inv, 'playbooks/model_update.yml'] + list(extra), check=check)


def gateway_address():
    proc, dummy = run(['docker', 'inspect', '-f', '{{(index .NetworkSettings.Networks "onprem-ai-lab").IPAddress}}',
                       'molecule-str-gateway-1'])
    return proc.stdout.strip()


def percentile(values, fraction):
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def keep_log(log_dir, name, proc):
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, name + '.log'), 'w', encoding='utf-8') as handle:
            handle.write(proc.stdout + '\n' + proc.stderr)


def one(strategy, inv, base_url, work, log_dir=None):
    update(inv, '-e', 'model_update_strategy=all_at_once', '-e', 'model_update_model_file=/srv/models/tiny-llama-v1.gguf')
    phase = os.path.join(work, 'phase')
    stop = os.path.join(work, 'stop-' + strategy)
    events = os.path.join(work, 'events-%s.jsonl' % strategy)
    with open(phase, 'w', encoding='utf-8') as handle:
        handle.write('before\n')
    client = subprocess.Popen(
        [os.path.join(VENV_BIN, 'python'), 'tests/lab/load_client/gateway_load.py', '--base-url', base_url,
         '--api-key-env', 'LAB_GATEWAY_KEY', '--model', 'tiny-llama', '--answers', 'any', '--max-tokens', '16',
         '--phase-file', phase, '--stop-file', stop, '--max-seconds', '900', '--report',
         os.path.join(work, 'report-%s.json' % strategy), '--events', events],
        cwd=ROOT, env=dict(env(), LAB_GATEWAY_KEY=KEY), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    row = {'strategy': strategy, 'switch_back': ''}
    try:
        time.sleep(10)
        with open(phase, 'w', encoding='utf-8') as handle:
            handle.write('during\n')
        extra = ['-e', 'model_update_strategy=%s' % strategy, '-e', 'model_update_model_file=/srv/models/tiny-llama-v2.gguf']
        if strategy == 'blue_green':
            extra += ['-e', 'rollout_blue_green_retire=false']
        proc, row['wall'] = update(inv, *extra, check=False)
        keep_log(log_dir, strategy, proc)
        row['rc'] = proc.returncode
        if strategy == 'blue_green' and proc.returncode == 0:
            proc, wall = update(inv, '-e', 'model_update_strategy=blue_green', '-e', 'rollout_blue_green_action=switch_back',
                                check=False)
            keep_log(log_dir, strategy + '-switch-back', proc)
            step = re.search(r'gateways switched in ([0-9.]+) s', proc.stdout)
            row['switch_back'] = '%s s step, %.1f s playbook' % (step.group(1) if step else '?', wall)
        with open(phase, 'w', encoding='utf-8') as handle:
            handle.write('after\n')
        time.sleep(10)
    finally:
        open(stop, 'w', encoding='utf-8').close()
        client.wait(timeout=120)
    rows = [json.loads(line) for line in open(events, encoding='utf-8')]
    row['requests'] = len(rows)
    row['failed'] = sum(1 for r in rows if r['outcome'] == 'failed')
    row['truncated'] = sum(1 for r in rows if r['outcome'] == 'truncated')
    for name in ('before', 'during', 'after'):
        times = [(r['end'] - r['start']) * 1000 for r in rows if r['phase'] == name and r['outcome'] == 'ok']
        row[name] = '%.0f / %.0f' % (percentile(times, 0.5), percentile(times, 0.99))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--keep', action='store_true', help='leave the scenario up at the end')
    parser.add_argument('--log', metavar='DIR', help='keep the output of every model_update.yml run in DIR')
    parser.add_argument('--strategies', default=','.join(STRATEGIES),
                        help='comma-separated, from %s (default: all, in this order)' % ', '.join(STRATEGIES))
    args = parser.parse_args(argv)
    unknown = set(args.strategies.split(',')) - set(STRATEGIES)
    if unknown:
        parser.error('unknown strategies: %s' % ', '.join(sorted(unknown)))
    molecule = os.path.join(VENV_BIN, 'molecule')
    for step in ('destroy', 'create', 'prepare', 'converge'):
        run([molecule, step, '-s', 'strategies'])
    rows = []
    try:
        inv = inventory()
        base_url = 'http://%s:4000/v1' % gateway_address()
        with tempfile.TemporaryDirectory(prefix='bench-strategies-') as work:
            for strategy in args.strategies.split(','):
                rows.append(one(strategy, inv, base_url, work, args.log))
    finally:
        if not args.keep:
            run([molecule, 'destroy', '-s', 'strategies'], check=False)
    print('| strategy | rc | requests | failed | truncated | p50 / p99 ms before | during | after | wall s | switch-back |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for row in rows:
        print('| %(strategy)s | %(rc)s | %(requests)d | %(failed)d | %(truncated)d | %(before)s | %(during)s | %(after)s | '
              '%(wall).1f | %(switch_back)s |' % row)
    return 0


if __name__ == '__main__':
    sys.exit(main())
