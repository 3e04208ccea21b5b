# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""System-state manifest stored with every backup snapshot, so that a node can be rebuilt to its recorded state.

Every part is optional: what cannot be read on this host is recorded as null, never an error.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import socket
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _gpu_info as gpu_info
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import sha256_file

MANIFEST_NAME = 'backup_manifest'
MANIFEST_VERSION = 1
LITELLM_CONFIGS = ['/etc/litellm/config.yaml', '/etc/litellm/config.yml', '/opt/litellm/config.yaml']
LITELLM_BINARIES = ['/opt/litellm/venv/bin/litellm', '/usr/local/bin/litellm', '/usr/bin/litellm']
# Records of other modules of this collection that are not state of the node itself.
_OWN_RECORDS = (MANIFEST_NAME, 'dr_drill', 'backup')


def excluded(path, exclude):
    """Whether restic's --exclude patterns leave out this path (absolute patterns: the path or below; others: any name)."""
    for pattern in exclude or ():
        if pattern.startswith('/'):
            if path == pattern.rstrip('/') or path.startswith(pattern.rstrip('/') + '/') or fnmatch.fnmatchcase(path, pattern):
                return True
        elif fnmatch.fnmatchcase(os.path.basename(path), pattern) or fnmatch.fnmatchcase(path, '*/' + pattern):
            return True
    return False


def tree_stats(path, exclude=()):
    """{'path', 'exists', 'files', 'bytes'} of a path (a file or a directory tree) without the excluded paths."""
    stats = {'path': path, 'exists': os.path.lexists(path), 'files': 0, 'bytes': 0}
    if os.path.isfile(path) and not os.path.islink(path):
        if not excluded(path, exclude):
            stats['files'] = 1
            stats['bytes'] = os.lstat(path).st_size
        return stats
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not excluded(os.path.join(root, d), exclude)]
        for name in files:
            full = os.path.join(root, name)
            if excluded(full, exclude):
                continue
            try:
                info = os.lstat(full)
            except OSError:
                continue
            stats['files'] += 1
            if not os.path.islink(full):
                stats['bytes'] += info.st_size
    return stats


def _packages(module):
    try:
        return pkg.installed_packages(module, ['*'])
    except pkg.PackageQueryError:
        return None


def _gpu(module):
    # _gpu_info.gather() fails the module when the package database cannot be read; the manifest must not.
    try:
        info = gpu_info.gather(module)
    except Exception:  # pylint: disable=broad-except
        return None
    driver = info.get('driver') or {}
    return {
        'driver_version': driver.get('installed_version'),
        'loaded_version': driver.get('loaded_version'),
        'max_cuda_version': driver.get('max_cuda_version'),
        'cuda_toolkits': info.get('cuda_toolkits'),
        'gpu_count': info.get('gpu_count'),
        'gpus': [g.get('name') for g in info.get('gpus') or []],
        'nvidia_packages': info.get('packages'),
    }


def _records(state_dir):
    """The collection's per-node records (/var/lib/onprem_ai/*.json) by name, or None when there are none."""
    records = {}
    for path in sorted(glob.glob(os.path.join(state_dir, '*.json'))):
        name = os.path.basename(path)[:-len('.json')]
        if name in _OWN_RECORDS:
            continue
        try:
            with open(path) as handle:
                records[name] = json.load(handle)
        except (OSError, ValueError):
            records[name] = None
    return records or None


def _models(records):
    """Model records (name, version, digest, source) from the collection's records whose name starts with 'model'."""
    if not records:
        return None
    models = []
    for name, data in sorted(records.items()):
        if not name.startswith('model') or not isinstance(data, dict):
            continue
        entries = data.get('models') if isinstance(data.get('models'), list) else [data.get('current') or data]
        for entry in entries:
            if isinstance(entry, dict):
                models.append(dict((k, entry.get(k)) for k in ('name', 'version', 'digest', 'source', 'path', 'public')))
    return models or None


def _images(module):
    docker = module.get_bin_path('docker')
    if not docker:
        return None
    rc, out, dummy = module.run_command([docker, 'images', '--digests', '--format', '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}'])
    if rc != 0:
        return None
    images = []
    for line in out.splitlines():
        parts = line.split('\t')
        if len(parts) == 4:
            images.append({'repository': parts[0], 'tag': parts[1],
                           'digest': None if parts[2] in ('<none>', '') else parts[2], 'id': parts[3]})
    return images


def _litellm(module, configs=None, binaries=None):
    config = None
    for path in configs or LITELLM_CONFIGS:
        if os.path.isfile(path):
            config = {'path': path, 'sha256': sha256_file(path)}
            break
    version = None
    for path in binaries or LITELLM_BINARIES:
        if os.path.isfile(path):
            python = os.path.join(os.path.dirname(path), 'python')
            if os.path.isfile(python):
                rc, out, dummy = module.run_command([python, '-c', 'import importlib.metadata as m; print(m.version("litellm"))'])
                if rc == 0 and out.strip():
                    version = out.strip()
            break
    if config is None and version is None:
        return None
    return {'version': version, 'config': config}


def build(module, paths, exclude=(), state_dir='/var/lib/onprem_ai', tags=None, reason=None, now=None,
          include_packages=True, include_gpu=True, litellm_configs=None, litellm_binaries=None):
    """The manifest of this node as it is now, with what the snapshot of `paths` will contain."""
    records = _records(state_dir) if os.path.isdir(state_dir) else None
    return {
        'manifest_version': MANIFEST_VERSION,
        'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
        'hostname': socket.gethostname(),
        'reason': reason,
        'tags': list(tags or []),
        'paths': [tree_stats(p, exclude) for p in paths],
        'exclude': list(exclude or []),
        'packages': _packages(module) if include_packages else None,
        'gpu': _gpu(module) if include_gpu else None,
        'models': _models(records),
        'container_images': _images(module),
        'litellm': _litellm(module, litellm_configs, litellm_binaries),
        'records': records,
    }


def compare(manifest, restored_root):
    """Check a restore (under restored_root) against the manifest's path statistics."""
    results = []
    for entry in (manifest or {}).get('paths') or []:
        if not entry.get('exists'):
            continue
        found = tree_stats(os.path.join(restored_root, entry['path'].lstrip('/')))
        # The manifest is written before the snapshot, so the manifest file itself may be counted once more.
        ok = found['exists'] and found['files'] >= entry['files']
        results.append({'path': entry['path'], 'expected_files': entry['files'], 'expected_bytes': entry['bytes'],
                        'found_files': found['files'], 'found_bytes': found['bytes'], 'ok': bool(ok)})
    return {'ok': all(r['ok'] for r in results), 'paths': results}
