# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Client load through the LiteLLM gateway during maintenance, with the real OpenAI Python client.

Some threads send chat completions in turn streamed and not streamed, until a stop file appears or a
time limit passes (the loop is bounded). Every answer is checked against what the lab inference server
sends: "[node=... model=... version=...]" followed by exactly max_tokens " tok" and finish_reason "stop".
A streamed answer that ends early - even when the gateway closes it with [DONE] as if it were complete -
counts as truncated. The current phase (a word the test writes to --phase-file) is recorded with each
request, so the report says what failed during which step. The API key is read from an environment
variable, never from the command line. Only the given base URL is contacted (the lab's gateway).

    gateway_load.py --base-url http://GATEWAY:4000/v1 --api-key-env LAB_GATEWAY_KEY --model M \\
        --phase-file F --stop-file S --report out.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import threading
import time

import openai

PREFIX = re.compile(r'^\[node=(?P<node>\S+) model=(?P<model>\S+) version=(?P<version>\S+)\]')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--base-url', required=True)
    parser.add_argument('--api-key-env', required=True, help='name of the environment variable holding the key')
    parser.add_argument('--model', required=True)
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--max-tokens', type=int, default=40)
    parser.add_argument('--timeout', type=float, default=60.0, help='per request, seconds')
    parser.add_argument('--max-seconds', type=float, default=900.0, help='hard bound on the whole run')
    parser.add_argument('--phase-file', help='its content names the current phase')
    parser.add_argument('--stop-file', help='the run ends when this file exists')
    parser.add_argument('--report', required=True)
    parser.add_argument('--live', help='rewritten after each answer: the counts so far (JSON), for tests to poll')
    parser.add_argument('--events', help='one JSON line per request: start, end, phase, stream, outcome, node')
    parser.add_argument('--answers', choices=('lab', 'any'), default='lab',
                        help='lab: the lab inference server\'s exact answer; any: a real engine\'s (llama-server with a '
                             'tiny random model): any text, finish_reason stop or length, a streamed answer must end '
                             'with a finish_reason')
    parser.add_argument('--stall-seconds', type=float, default=20.0,
                        help='a request that takes longer than this counts as stalled (answered or not)')
    args = parser.parse_args(argv)
    if args.clients < 1 or args.max_tokens < 1:
        parser.error('--clients and --max-tokens must be positive')
    if not os.environ.get(args.api_key_env):
        parser.error('environment variable %s is empty' % args.api_key_env)
    return args


def read_phase(path):
    if not path:
        return 'run'
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read().strip() or 'run'
    except OSError:
        return 'run'


def check_answer(text, finish_reason, max_tokens):
    """None when the answer is whole, else why not."""
    match = PREFIX.match(text or '')
    if not match:
        return 'no lab prefix in %r' % (text or '')[:80]
    tokens = text[match.end():].count(' tok')
    if tokens != max_tokens:
        return 'truncated: %d of %d tokens' % (tokens, max_tokens)
    if finish_reason != 'stop':
        return 'finish_reason %r' % finish_reason
    return None


def check_any_answer(finish_reason):
    """None when a real engine's answer ended properly (any text), else why not."""
    if finish_reason is None:
        return 'truncated: no finish_reason'
    if finish_reason not in ('stop', 'length'):
        return 'finish_reason %r' % finish_reason
    return None


def one_request(client, args, stream):
    """(outcome, node, detail): outcome is ok, failed or truncated."""
    messages = [{'role': 'user', 'content': 'gateway maintenance load'}]
    try:
        if stream:
            text, finish, node = '', None, None
            chunks = client.chat.completions.create(model=args.model, messages=messages, max_tokens=args.max_tokens,
                                                    stream=True)
            for chunk in chunks:
                for choice in chunk.choices:
                    text += choice.delta.content or ''
                    finish = choice.finish_reason or finish
            problem = check_answer(text, finish, args.max_tokens) if args.answers == 'lab' else check_any_answer(finish)
        else:
            answer = client.chat.completions.create(model=args.model, messages=messages, max_tokens=args.max_tokens)
            text = answer.choices[0].message.content if answer.choices else ''
            finish = answer.choices[0].finish_reason if answer.choices else None
            problem = check_answer(text, finish, args.max_tokens) if args.answers == 'lab' else check_any_answer(finish)
    except openai.APIError as exc:  # connection errors, timeouts and HTTP errors
        return 'failed', None, '%s: %s' % (type(exc).__name__, str(exc)[:200])
    match = PREFIX.match(text or '')
    node = match.group('node') if match else None
    if problem:
        return ('truncated' if problem.startswith('truncated') or problem.startswith('finish_reason') else 'failed'), node, problem
    return 'ok', node, None


class Tally:
    def __init__(self, args=None):
        self.lock = threading.Lock()
        self.phases = collections.OrderedDict()
        self.samples = []
        self.live = getattr(args, 'live', None)
        self.events = getattr(args, 'events', None)
        self.stall = getattr(args, 'stall_seconds', 20.0)

    def add(self, phase, stream, outcome, node, detail, started=None, ended=None):
        with self.lock:
            entry = self.phases.setdefault(phase, {'requests': 0, 'streamed': 0, 'ok': 0, 'failed': 0, 'truncated': 0,
                                                   'stalled': 0, 'nodes': collections.Counter()})
            entry['requests'] += 1
            entry['streamed'] += int(stream)
            entry[outcome] += 1
            stalled = started is not None and ended is not None and ended - started > self.stall
            entry['stalled'] += int(stalled)
            if node:
                entry['nodes'][node] += 1
            if stalled and len(self.samples) < 20:
                self.samples.append({'phase': phase, 'stream': stream, 'outcome': 'stalled',
                                     'detail': '%.1f s' % (ended - started)})
            if detail and len(self.samples) < 20:
                self.samples.append({'phase': phase, 'stream': stream, 'outcome': outcome, 'detail': detail})
            if self.events and started is not None:
                with open(self.events, 'a', encoding='utf-8') as handle:
                    handle.write(json.dumps({'start': round(started, 3), 'end': round(ended, 3), 'phase': phase,
                                             'stream': stream, 'outcome': outcome, 'node': node}) + '\n')
            if self.live:
                counts = dict((name, dict(value, nodes=dict(value['nodes']))) for name, value in self.phases.items())
                with open(self.live + '.tmp', 'w', encoding='utf-8') as handle:
                    json.dump({'phases': counts}, handle)
                os.replace(self.live + '.tmp', self.live)


def worker(index, args, tally, deadline):
    client = openai.OpenAI(base_url=args.base_url, api_key=os.environ[args.api_key_env], max_retries=0,
                           timeout=args.timeout)
    stream = bool(index % 2)
    while time.monotonic() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        phase = read_phase(args.phase_file)
        started = time.time()
        outcome, node, detail = one_request(client, args, stream)
        tally.add(phase, stream, outcome, node, detail, started, time.time())
        if outcome != 'ok':
            time.sleep(0.2)  # no tight loop against a gateway that refuses
        stream = not stream


def main(argv=None):
    args = parse_args(argv)
    tally = Tally(args)
    started = time.time()
    deadline = time.monotonic() + args.max_seconds
    threads = [threading.Thread(target=worker, args=(i, args, tally, deadline), daemon=True) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.max_seconds + args.timeout + 5)
    phases = collections.OrderedDict()
    for phase, entry in tally.phases.items():
        phases[phase] = dict(entry, nodes=dict(entry['nodes']))
    totals = {key: sum(p[key] for p in phases.values())
              for key in ('requests', 'streamed', 'ok', 'failed', 'truncated', 'stalled')}
    report = {'client': 'openai %s' % openai.__version__, 'clients': args.clients, 'max_tokens': args.max_tokens,
              'seconds': round(time.time() - started, 1), 'phases': phases, 'totals': totals, 'samples': tally.samples}
    with open(args.report, 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=2)
    header = ('phase', 'requests', 'streamed', 'ok', 'failed', 'truncated', 'stalled', 'nodes')
    print('%-28s %9s %9s %7s %7s %10s %8s  %s' % header)
    for phase, entry in phases.items():
        nodes = ', '.join('%s=%d' % kv for kv in sorted(entry['nodes'].items()))
        row = (phase, entry['requests'], entry['streamed'], entry['ok'], entry['failed'], entry['truncated'],
               entry['stalled'], nodes)
        print('%-28s %9d %9d %7d %7d %10d %8d  %s' % row)
    row = ('total', totals['requests'], totals['streamed'], totals['ok'], totals['failed'], totals['truncated'],
           totals['stalled'])
    print('%-28s %9d %9d %7d %7d %10d %8d' % row)
    return 0 if totals['requests'] and not totals['failed'] and not totals['truncated'] and not totals['stalled'] else 1


if __name__ == '__main__':
    sys.exit(main())
