# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup benchmark: restic first snapshot vs unchanged second snapshot vs restore, and tar+zstd of the same data.

    python3 benchmarks/backup/run.py [--size-mib 200] [--keep]

Generates test data in a temporary directory (three quarters incompressible like model weights, one quarter
text like configuration and logs), then times each step with the restic and zstd of this host.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PASSWORD = 'benchmark-only-password'
MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'plugins', 'module_utils', '_manifest.py')


def make_data(root, size_mib):
    random_mib = size_mib * 3 // 4
    os.makedirs(os.path.join(root, 'models', 'custom'))
    os.makedirs(os.path.join(root, 'etc'))
    chunk = 1 << 20
    for index in range(4):
        with open(os.path.join(root, 'models', 'custom', 'shard-%d.safetensors' % index), 'wb') as handle:
            for dummy in range(random_mib // 4):
                handle.write(os.urandom(chunk))
    line = json.dumps({'model': 'llama-3.1-8b', 'route': 'gpu-node', 'latency_ms': 123, 'tokens': 456}) + '\n'
    text = (line * (chunk // len(line) + 1))[:chunk].encode()
    for index in range(size_mib - random_mib):
        with open(os.path.join(root, 'etc', 'log-%03d.jsonl' % index), 'wb') as handle:
            handle.write(text.replace(b'456', str(index).zfill(3).encode()))


def du(path):
    total = 0
    for base, dummy, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


def timed(args, env=None, cwd=None):
    started = time.monotonic()
    subprocess.run(args, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=200)
    parser.add_argument('--keep', action='store_true', help='keep the temporary directory')
    options = parser.parse_args()
    for tool in ('restic', 'tar', 'zstd'):
        if not shutil.which(tool):
            sys.exit('%s not found (apt-get install %s)' % (tool, tool))
    work = tempfile.mkdtemp(prefix='onprem_ai-backup-bench-')
    try:
        data = os.path.join(work, 'data')
        repo = os.path.join(work, 'repo')
        env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=os.path.join(work, 'cache'))
        make_data(data, options.size_mib)
        size = du(data)
        version = subprocess.run(['restic', 'version'], capture_output=True, text=True, check=True).stdout.split()[1]
        zstd_version = subprocess.run(['zstd', '--version'], capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(['sync'], check=True)
        rows = []
        # The system-state manifest as the timers write it before each snapshot (the module's own _manifest.py).
        state = os.path.join(work, 'state')
        rows.append(('manifest (timer writer, python3 -I)',
                     timed([sys.executable, '-I', MANIFEST, '--state-dir', state, '--tag', 'bench', '--', data]),
                     os.path.getsize(os.path.join(state, 'backup_manifest.json'))))
        timed(['restic', '--repo', repo, 'init'], env)
        rows.append(('restic first snapshot', timed(['restic', '--repo', repo, 'backup', '--host', 'bench', data], env), du(repo)))
        rows.append(('restic second snapshot (unchanged)', timed(['restic', '--repo', repo, 'backup', '--host', 'bench', data], env), du(repo)))
        target = os.path.join(work, 'restore')
        rows.append(('restic restore latest', timed(['restic', '--repo', repo, 'restore', 'latest', '--target', target], env), du(target)))
        archive = os.path.join(work, 'data.tar.zst')
        rows.append(('tar + zstd -3 (all cores), create',
                     timed(['tar', '-C', work, '-I', 'zstd -T0 -3', '-cf', archive, 'data']), os.path.getsize(archive)))
        untar = os.path.join(work, 'untar')
        os.makedirs(untar)
        rows.append(('tar + zstd, extract', timed(['tar', '-C', untar, '-I', 'zstd -d', '-xf', archive]), du(untar)))
        print('data: %.0f MiB in %s (3/4 random, 1/4 text); restic %s; %s' % (size / 1048576.0, data, version, zstd_version))
        print('%-38s %10s %12s %12s' % ('step', 'seconds', 'MiB/s', 'stored MiB'))
        for name, seconds, stored in rows:
            print('%-38s %10.2f %12.1f %12.1f' % (name, seconds, size / 1048576.0 / seconds, stored / 1048576.0))
    finally:
        if options.keep:
            print('kept %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
