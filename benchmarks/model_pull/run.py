# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark model_pull's HTTP download against plain curl, on the same local source, and time a no-op re-run.

    tools/collection-tree.sh link
    PYTHONPATH=build/collections .venv/bin/python benchmarks/model_pull/run.py [--size-mib 1024] [--rounds 3] [--workdir DIR]

The source is the lab model source simulation (tests/lab/model_sources/model_source_server.py) on 127.0.0.1.
curl and model_pull run alternately, --rounds times each, into fresh files; the table shows the median and the best
round, and the ratio of the medians (curl seconds / model_pull seconds: 1.0 is as fast as curl).
model_pull's numbers include what curl does not do: the model's lock, the sha256 of the file READ BACK FROM DISK
(a thread trailing the writer), fsync of the file, the size check on disk, the manifest, and the atomic switch.
"""

import argparse
import hashlib
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / 'tests' / 'lab' / 'model_sources' / 'model_source_server.py'


def make_file(path, size_mib):
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, 'wb') as handle:
        for index in range(size_mib):
            chunk = block[index % 256:] + block[:index % 256]  # distinct blocks, cheap to make
            handle.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def start_server(root):
    proc = subprocess.Popen([sys.executable, str(SERVER), '--root', str(root), '--port', '0'],  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r'listening on http://127\.0\.0\.1:(\d+)', line or '')
        if match:
            return proc, int(match.group(1))
    proc.kill()
    raise SystemExit('the lab model source did not start')


def fsync_file(path):
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(func, cpu=None):
    """Wall seconds of func(); with cpu (a list), also appends the CPU seconds (user + system) it used, this process's
    threads and the children it waited for (curl), not the source server's."""
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.monotonic()
    func()
    seconds = time.monotonic() - start
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    if cpu is not None:
        cpu.append(sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before)))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--workdir', default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='model_pull_bench.', dir=args.workdir))
    proc = None
    try:
        (work / 'src' / 'files').mkdir(parents=True)
        sha = make_file(work / 'src' / 'files' / 'model.bin', args.size_mib)
        size = args.size_mib << 20
        proc, port = start_server(work / 'src')
        url = 'http://127.0.0.1:%d/files/model.bin' % port
        curl = shutil.which('curl')
        times = {'curl -o': [], 'curl -o, then fsync (durable, like model_pull)': [], 'curl -o, then sha256sum': [],
                 'model_pull (lock, download, sha256 on disk, switch)': []}
        cpu = dict((name, []) for name in times)
        params = dict(name='bench', version='v1', source='http', url=url, sha256=sha, files=None, dest_root=str(work / 'store'),
                      keep=1, state='present', activate=True, verify='quick', free_space_margin=0)
        out = work / 'curl.bin'
        for dummy in range(args.rounds):
            if curl:
                seconds = timed(lambda: subprocess.run([curl, '-sS', '--fail', '-o', str(out), url], check=True), cpu['curl -o'])
                times['curl -o'].append(seconds)
                synced = timed(lambda: fsync_file(out), cpu['curl -o, then fsync (durable, like model_pull)'])
                times['curl -o, then fsync (durable, like model_pull)'].append(seconds + synced)
                cpu['curl -o, then fsync (durable, like model_pull)'][-1] += cpu['curl -o'][-1]
                sums = timed(lambda: subprocess.run(['sha256sum', str(out)], check=True, stdout=subprocess.DEVNULL),
                             cpu['curl -o, then sha256sum'])
                times['curl -o, then sha256sum'].append(seconds + sums)
                cpu['curl -o, then sha256sum'][-1] += cpu['curl -o'][-1]
                out.unlink()
            shutil.rmtree(work / 'store', ignore_errors=True)
            first = {}
            seconds = timed(lambda: first.update(ModelPull(params, http_client=HttpClient(timeout=60)).run()),
                            cpu['model_pull (lock, download, sha256 on disk, switch)'])
            assert first['changed'] and first['bytes_transferred'] == size, first
            times['model_pull (lock, download, sha256 on disk, switch)'].append(seconds)
        again = {}
        noop = timed(lambda: again.update(ModelPull(params, http_client=HttpClient(timeout=60)).run()))
        assert not again['changed']
        full = timed(lambda: ModelPull(dict(params, verify='full'), http_client=HttpClient(timeout=60)).run())
        print('model_pull benchmark: %d MiB file from the lab model source on 127.0.0.1, %d rounds, %d CPUs, load %.1f, %s'
              % (args.size_mib, args.rounds, os.cpu_count(), os.getloadavg()[0], time.strftime('%Y-%m-%d %H:%M')))
        print('%-54s %9s %9s %9s %9s' % ('method', 'median s', 'best s', 'MiB/s', 'CPU s'))
        for name, secs in times.items():
            if secs:
                median = statistics.median(secs)
                print('%-54s %9.2f %9.2f %9.1f %9.2f' % (name, median, min(secs), size / median / (1 << 20), statistics.median(cpu[name])))
        print('%-54s %9.4f %9s %9s %9s' % ('model_pull no-op re-run (verify: quick)', noop, '-', '-', '-'))
        print('%-54s %9.2f %9s %9s %9s' % ('model_pull no-op re-run (verify: full, re-hash)', full, '-', '-', '-'))
        if times['curl -o']:
            pulls = times['model_pull (lock, download, sha256 on disk, switch)']
            print('model_pull speed relative to curl -o: %.2fx (median), %.2fx (best)'
                  % (statistics.median(times['curl -o']) / statistics.median(pulls), min(times['curl -o']) / min(pulls)))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
