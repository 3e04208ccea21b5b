# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""System-state manifest stored with every backup snapshot, so that a node can be rebuilt to its recorded state.

ONE source for the manifest: the backup_snapshot module imports this file, and the backup role copies this very
file onto the node (/usr/local/lib/onprem_ai/backup_manifest.py), where the backup timers run it as
`python3 backup_manifest.py --state-dir DIR --tag daily -- PATHS...`. It therefore uses the Python standard library
only; commands run through a `host` object (the collection's runner in a module, LocalHost over subprocess on the timer's side).

What cannot be read on this host is recorded as null AND named in `unreadable` (part -> why), so that "not read"
is never mistaken for "not there"; a failure of one part never stops the backup. The file is written 0600: it holds
the collection's records, which may name internal hosts.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

MANIFEST_NAME = 'backup_manifest'
MANIFEST_FILE = MANIFEST_NAME + '.json'
MANIFEST_VERSION = 2
# model_pull's dest_root (plugins/modules/model_pull.py) and the litellm_gateway role's defaults.
MODELS_ROOT = '/var/lib/onprem_ai/models'
LITELLM_INSTALL_DIR = '/opt/litellm'
LITELLM_CONFIG = '/etc/litellm/config.yaml'
SYSFS_NVIDIA_VERSION = '/sys/module/nvidia/version'
# Records of other modules of this collection that are not state of the node itself.
_OWN_RECORDS = (MANIFEST_NAME, 'dr_drill', 'backup')
# The fields of the manifest the backup_snapshot module returns (never `records`, which may hold anything).
PUBLIC_FIELDS = ('manifest_version', 'created', 'hostname', 'reason', 'tags', 'paths', 'exclude', 'packages', 'gpu',
                 'models', 'container_images', 'litellm', 'unreadable')
# Packages whose version is the user-space driver version, most authoritative first (libnvidia-compute /
# nvidia-driver-libs hold the NVML library that nvidia-smi loads). Here, in the standard-library-only file the
# backup timer runs, so that _gpu_info can use the same list.
DRIVER_PACKAGE_RES = [re.compile(p) for p in (
    r'^libnvidia-compute(-\d+)?(-server)?$',
    r'^nvidia-driver-libs$',
    r'^nvidia-utils(-\d+)?(-server)?$',
    r'^nvidia-driver(-\d+)?(-server|-open)?$',
    r'^cuda-drivers(-\d+)?$',
)]
_URL_CREDENTIALS = re.compile(r'(\w+://)[^/\s@]*@')


try:
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
except ImportError:  # run alone by the backup timer: the collection is not there
    OnpremError = Exception


class ManifestError(OnpremError):
    """A part of the manifest cannot be read (recorded in `unreadable`, never fatal)."""

    error_kind = 'unreadable'


# -- hosts: how commands are run ------------------------------------------------------------------------------
# Inside a module the host is the collection's runner (_runner.Runner: which() / execute()); this file cannot import
# it, as the backup timer runs this file alone with the standard library. LocalHost offers the same two methods.
class LocalHost(object):
    """Commands through subprocess (the backup timers), with the interface of _runner.Runner: which() and execute()."""

    def which(self, name):
        for directory in os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin').split(os.pathsep) + ['/usr/local/sbin', '/usr/sbin', '/sbin']:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        return None

    def execute(self, argv, env=None, data=None):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, input=data,
                                  env=dict(os.environ, LC_ALL='C', **(env or {})))
        except (OSError, subprocess.SubprocessError) as exc:
            return 127, '', str(exc)
        return proc.returncode, proc.stdout, proc.stderr


def ModuleHost(module):  # pylint: disable=invalid-name
    """The host of a module: the collection's runner (kept for callers not yet converted to `_runner.Runner(module)`)."""
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner  # pylint: disable=import-outside-toplevel
    return Runner(module)


# The package queries, declared here (standard library) and used by _runner.TOOLS and _pkg as well.
DPKG_QUERY = ('-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n')
RPM_QUERY = ('-qa', '--qf', '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n')


def parse_dpkg(out):
    """{name: version} of `dpkg-query -W` (DPKG_QUERY): 'ii ' installed, 'hi ' installed and held; 'rc ' (removed) left out."""
    found = {}
    for line in out.splitlines():
        parts = line.split('\t')
        if len(parts) == 3 and parts[2][1:2] == 'i':
            found[parts[0].split(':', 1)[0]] = parts[1]
    return found


def parse_rpm(out):
    """{name: epoch:version-release} of `rpm -qa` (RPM_QUERY)."""
    return dict(line.split('\t', 1) for line in out.splitlines() if '\t' in line)


# -- parts ----------------------------------------------------------------------------------------------------
def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


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


def packages(host):
    """{name: version} of the installed packages (dpkg: 'ii'/'hi'; rpm: epoch:version-release)."""
    for tool, query, parse in (('dpkg-query', DPKG_QUERY, parse_dpkg), ('rpm', RPM_QUERY, parse_rpm)):
        path = host.which(tool)
        if path:
            rc, out, err = host.execute([path] + list(query))
            if rc != 0:
                raise ManifestError('%s failed (rc=%s): %s' % (tool, rc, (err or out).strip()[-300:]))
            return parse(out)
    raise ManifestError('neither dpkg-query nor rpm found')


def _upstream(version):
    return str(version).split(':', 1)[-1].split('-', 1)[0] if version else None


def installed_driver_version(packages):
    """Upstream driver version from installed package versions ({name: version}), or None."""
    for pattern in DRIVER_PACKAGE_RES:
        names = sorted(n for n in packages if pattern.match(n))
        if names:
            return _upstream(packages[names[0]])
    return None


def gpu(host, installed_packages, sysfs_version=SYSFS_NVIDIA_VERSION):
    """NVIDIA driver (installed per the packages, loaded per sysfs, reported by nvidia-smi), CUDA, GPUs."""
    nvidia = dict((n, v) for n, v in (installed_packages or {}).items()
                  if n.startswith(('nvidia-', 'libnvidia-', 'cuda-drivers', 'cuda-toolkit-', 'cuda-compat-')))
    installed = installed_driver_version(nvidia)
    loaded = None
    if os.path.isfile(sysfs_version):
        with open(sysfs_version) as handle:
            loaded = handle.read().strip() or None
    result = {'driver_version': installed, 'loaded_version': loaded, 'smi_driver_version': None, 'max_cuda_version': None,
              'gpu_count': None, 'gpus': None, 'nvidia_packages': nvidia if installed_packages is not None else None,
              'cuda_toolkits': sorted(os.path.basename(p) for p in glob.glob('/usr/local/cuda-*')), 'nvidia_smi_error': None}
    smi = host.which('nvidia-smi')
    if not smi:
        if installed is None and loaded is None:
            return None
        return result
    rc, out, err = host.execute([smi, '--query-gpu=name,driver_version', '--format=csv,noheader'])
    if rc != 0:
        # What the packages and sysfs said stays; the GPUs are unknown (null), and why is said.
        result['nvidia_smi_error'] = 'nvidia-smi failed (rc=%s): %s' % (rc, (err or out).strip()[-300:])
        return result
    rows = [[c.strip() for c in line.split(',')] for line in out.splitlines() if line.strip()]
    result['gpus'] = [row[0] for row in rows]
    result['gpu_count'] = len(rows)
    result['smi_driver_version'] = rows[0][1] if rows and len(rows[0]) > 1 else None
    rc, out, dummy = host.execute([smi, '--version'])
    if rc == 0:
        cuda = [line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('CUDA Version')]
        result['max_cuda_version'] = cuda[0] if cuda else None
    if result['driver_version'] is None:
        result['driver_version'] = result['smi_driver_version'] or loaded
    return result


def records(state_dir):
    """The collection's per-node records (<state_dir>/*.json) by name, or None when there are none."""
    found = {}
    for path in sorted(glob.glob(os.path.join(state_dir, '*.json'))):
        name = os.path.basename(path)[:-len('.json')]
        if name in _OWN_RECORDS:
            continue
        try:
            with open(path) as handle:
                found[name] = json.load(handle)
        except (OSError, ValueError):
            found[name] = None
    return found or None


def _clean(value):
    """A string without URL credentials or query strings (presigned URLs), for the fields copied from records."""
    if not isinstance(value, str):
        return value
    value = _URL_CREDENTIALS.sub(r'\1', value)
    return value.split('?', 1)[0] if '://' in value else value


def _read_json(path):
    # _state.read_json's twin: this file runs standalone on the node and cannot import the collection's modules.
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ManifestError('cannot read %s: %s' % (path, exc)) from exc
    return data if isinstance(data, dict) else None


def model_store(models_root):
    """The models as model_pull keeps them; the ONLY reader of model_pull's files in this collection.

    Contract with plugins/module_utils/_models.py (model_pull), under its dest_root (default MODELS_ROOT):
      <root>/<name>/state.json               {'current': {'version', 'digest', 'source', 'size'}, 'previous': {...},
                                              'versions': [activation order], 'history': [...]}
      <root>/<name>/current -> <version>      relative link to the served version (sources http and hf)
      <root>/<name>/<version>/.manifest.json  {'name', 'version', 'digest', 'size', 'files': [...], 'source', ...}
      <root>/<name>/.staging/                 downloads in progress (ignored here)
    source=ollama keeps state.json only (its versions are Ollama tags). Only the fields below are copied: a manifest
    may hold source URLs, which are never recorded.
    """
    if not os.path.isdir(models_root):
        return None
    found = []
    for name in sorted(os.listdir(models_root)):
        store = os.path.join(models_root, name)
        if name.startswith('.') or not os.path.isdir(store) or os.path.islink(store):
            continue
        state = _read_json(os.path.join(store, 'state.json')) or {}
        current = state.get('current') if isinstance(state.get('current'), dict) else {}
        link = os.path.join(store, 'current')
        version = os.path.basename(os.readlink(link).rstrip('/')) if os.path.islink(link) else current.get('version')
        if version is None:
            continue
        manifest = {}
        if version and '/' not in version and not version.startswith('.'):
            manifest = _read_json(os.path.join(store, version, '.manifest.json')) or {}
        previous = state.get('previous') if isinstance(state.get('previous'), dict) else {}
        found.append({
            'name': name,
            'version': version,
            'digest': manifest.get('digest') or current.get('digest'),
            'size': manifest.get('size', current.get('size')),
            'source': _clean(manifest.get('source') or current.get('source')),
            'revision': _clean(manifest.get('revision')),
            'files': len(manifest.get('files') or []) if manifest else None,
            'path': os.path.join(store, version) if manifest else None,
            'previous_version': previous.get('version'),
        })
    return found


def images(host):
    docker = host.which('docker')
    if not docker:
        return None
    rc, out, err = host.execute([docker, 'images', '--digests', '--format', '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}'])
    if rc != 0:
        raise ManifestError('docker images failed (rc=%s): %s' % (rc, (err or out).strip()[-300:]))
    found = []
    for line in out.splitlines():
        parts = line.split('\t')
        if len(parts) == 4:
            found.append({'repository': parts[0], 'tag': parts[1],
                          'digest': None if parts[2] in ('<none>', '') else parts[2], 'id': parts[3]})
    return found


def litellm(host, install_dir=LITELLM_INSTALL_DIR, config_path=LITELLM_CONFIG):
    """LiteLLM as the litellm_gateway role installs it: <install_dir>/venvs/<version>, <install_dir>/current -> it."""
    config = {'path': config_path, 'sha256': sha256_file(config_path)} if os.path.isfile(config_path) else None
    current = os.path.join(install_dir, 'current')
    venvs = os.path.join(install_dir, 'venvs')
    if not os.path.lexists(current) and config is None:
        return None
    result = {'install_dir': install_dir, 'venv': None, 'version': None, 'config': config,
              'versions': sorted(os.listdir(venvs)) if os.path.isdir(venvs) else []}
    if os.path.lexists(current):
        venv = os.path.realpath(current)
        result['venv'] = os.path.basename(venv)
        python = os.path.join(venv, 'bin', 'python')
        if not os.path.isfile(python):
            raise ManifestError('%s points at %s, which has no bin/python' % (current, venv))
        rc, out, err = host.execute([python, '-c', 'import importlib.metadata as m; print(m.version("litellm"))'])
        if rc != 0 or not out.strip():
            raise ManifestError('cannot read the litellm version of %s: %s' % (venv, (err or out).strip()[-300:]))
        result['version'] = out.strip()
    return result


# -- the manifest ---------------------------------------------------------------------------------------------
def build(host, paths, exclude=(), state_dir='/var/lib/onprem_ai', tags=None, reason=None, now=None,
          models_root=MODELS_ROOT, litellm_dir=LITELLM_INSTALL_DIR, litellm_config=LITELLM_CONFIG,
          include_packages=True, include_gpu=True):
    """The manifest of this node as it is now, with what the snapshot of `paths` will contain. Never raises for a part."""
    unreadable = {}

    def part(name, function, *args):
        try:
            return function(*args)
        except Exception as exc:  # pylint: disable=broad-except
            # Any failure of one part (a command, a file, a bug) is recorded; the backup goes on.
            unreadable[name] = '%s: %s' % (type(exc).__name__, exc) if not isinstance(exc, ManifestError) else str(exc)
            return None

    installed = part('packages', packages, host) if include_packages or include_gpu else None
    return {
        'manifest_version': MANIFEST_VERSION,
        'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
        'hostname': socket.gethostname(),
        'reason': reason,
        'tags': list(tags or []),
        'paths': [tree_stats(p, exclude) for p in paths],
        'exclude': list(exclude or []),
        'packages': installed if include_packages else None,
        'gpu': part('gpu', gpu, host, installed) if include_gpu else None,
        'models': part('models', model_store, models_root) if models_root else None,
        'container_images': part('container_images', images, host),
        'litellm': part('litellm', litellm, host, litellm_dir, litellm_config),
        'records': part('records', records, state_dir) if os.path.isdir(state_dir) else None,
        'unreadable': unreadable,
    }


def public(manifest):
    """The fields of a manifest that may be returned and logged (no `records`: they may hold anything)."""
    if not isinstance(manifest, dict):
        return None
    view = dict((k, manifest.get(k)) for k in PUBLIC_FIELDS if k in manifest)
    if isinstance(manifest.get('records'), dict):
        view['record_names'] = sorted(manifest['records'])
    return view


def write(path, data):
    """Atomically (temporary file in the same directory, fsync, rename), readable by root only (0600)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def compare(manifest, restored_root):
    """Check a restore (under restored_root) against the manifest's path statistics."""
    results = []
    for entry in (manifest or {}).get('paths') or []:
        if not isinstance(entry, dict) or not entry.get('exists') or not isinstance(entry.get('path'), str):
            continue
        found = tree_stats(os.path.join(restored_root, entry['path'].lstrip('/')))
        # The manifest is written before the snapshot, so the manifest file itself may be counted once more.
        ok = found['exists'] and found['files'] >= (entry.get('files') or 0)
        results.append({'path': entry['path'], 'expected_files': entry.get('files'), 'expected_bytes': entry.get('bytes'),
                        'found_files': found['files'], 'found_bytes': found['bytes'], 'ok': bool(ok)})
    return {'ok': all(r['ok'] for r in results), 'paths': results}


def main(argv=None):
    """The backup timers' entry point: write <state-dir>/backup_manifest.json, print its path."""
    import argparse  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description='Write the system-state manifest of this node (onprem_ai backup).')
    parser.add_argument('--state-dir', default='/var/lib/onprem_ai')
    parser.add_argument('--tag', action='append', default=[])
    parser.add_argument('--reason', default='timer')
    parser.add_argument('--exclude', action='append', default=[])
    parser.add_argument('--models-root', default=MODELS_ROOT)
    parser.add_argument('--litellm-dir', default=LITELLM_INSTALL_DIR)
    parser.add_argument('--litellm-config', default=LITELLM_CONFIG)
    parser.add_argument('paths', nargs='*')
    args = parser.parse_args(argv)
    data = build(LocalHost(), args.paths, exclude=args.exclude, state_dir=args.state_dir, tags=args.tag, reason=args.reason,
                 models_root=args.models_root, litellm_dir=args.litellm_dir, litellm_config=args.litellm_config)
    try:
        sys.stdout.write(write(os.path.join(args.state_dir, MANIFEST_FILE), data) + '\n')
    except OSError as exc:
        sys.stderr.write('cannot write the backup manifest in %s: %s\n' % (args.state_dir, exc))
        return 1
    for name, why in sorted(data['unreadable'].items()):
        sys.stderr.write('manifest: %s not recorded: %s\n' % (name, why))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
