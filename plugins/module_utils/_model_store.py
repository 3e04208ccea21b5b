# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The versioned model store on disk: names, the per-model lock, versions, `current` / previous, manifests, the
activation record, and the keep-N rule (the one rule of which versions stay, for files and Ollama tags alike).

Layout under <dest_root>/:
  .<name>.lock               the model's lock (flock), held by a run from its first read to its last write
  <name>/<version>/          one directory per version, the model files plus .manifest.json (0600, URLs redacted)
  <name>/current -> <version>  relative symlink, switched atomically (temporary link + rename)
  <name>/.staging/<version>/ downloads in progress (<file>.partial, resumed with Range + If-Range, and
                             <file>.partial.meta: the validator of the response that started it)
  <name>/state.json          activation order, current and previous version (written atomically)

Versions and names are whitelisted (letters, digits, . _ + -; not `current`, `state`, nor *.json, *.partial, ...).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import (
    ModelBusy, ModelCorrupt, ModelError, ModelInvalid)

CHUNK = 1024 * 1024
MANIFEST = '.manifest.json'
STAGING = '.staging'
CURRENT = 'current'
STATE_NAME = 'state'
MANIFEST_FORMAT = 1
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$')
RESERVED_SUFFIXES = ('.json', '.partial', '.meta', '.tmp', '.lock')
RESERVED_NAMES = ('current', 'state')


def check_version_name(value, what='version'):
    """Names of models and versions become directory names next to `current`, `state.json` and `.staging`: a whitelist."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value) or value.lower() in RESERVED_NAMES \
            or value.lower().endswith(RESERVED_SUFFIXES):
        raise ModelInvalid('%s %r is not usable as a directory name: use 1 to 128 letters, digits, ".", "_", "+" or "-", starting '
                           'with a letter or digit, not "current" or "state", not ending in %s'
                           % (what, value if isinstance(value, str) and len(value) < 200 else '...', ', '.join(RESERVED_SUFFIXES)))


def sha256_file(path, chunk=CHUNK):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def content_digest(files):
    """One digest for a version: sha256 over the sorted `path sha256` lines of its files."""
    lines = ''.join('%s %s\n' % (f['path'], f['sha256']) for f in sorted(files, key=lambda f: f['path']))
    return 'sha256:' + hashlib.sha256(lines.encode('utf-8')).hexdigest()


def disk_free(path):
    """Bytes available to unprivileged writers on the file system of `path` (or its nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    stat = os.statvfs(probe)
    return stat.f_bavail * stat.f_frsize


def write_private_json(path, data):
    """A small JSON file, 0600 from its creation, written atomically."""
    state.write_json(path, data, mode=0o600)


def kept_versions(order, current, previous, keep):
    """The keep-N rule: of the versions in activation order, the current one, the `keep` most recently current before
    it, and the recorded previous one (the target of state=previous) stay; with keep=0 only the current one."""
    older = [v for v in order if v != current]
    kept = set(older[-keep:]) if keep > 0 else set()
    if previous and keep > 0:
        kept.add(previous)
    if current:
        kept.add(current)
    return kept


class StoreLock(object):
    """One lock per model for a whole run: flock on <dest_root>/.<name>.lock (outside the model directory, so that
    state=absent can remove the directory while holding it). Check mode takes it shared and creates nothing."""

    def __init__(self, root, name, timeout=3600, check_mode=False, poll=0.2):
        self.path = os.path.join(root, '.%s.lock' % name)
        self.root = root
        self.timeout = timeout
        self.check_mode = check_mode
        self.poll = poll
        self.fd = None

    def __enter__(self):
        if self.check_mode:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return self
            mode = fcntl.LOCK_SH
        else:
            os.makedirs(self.root, mode=0o755, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            mode = fcntl.LOCK_EX
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(self.fd)
                    self.fd = None
                    raise ModelBusy('another model_pull run of this model holds %s%s since more than %d s (lock_timeout): '
                                    'nothing was changed; run again when it is done' % (self.path, holder, self.timeout)) from None
                time.sleep(self.poll)
        if not self.check_mode:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, b'%d\n' % os.getpid())
        return self

    def holder(self):
        try:
            pid = os.pread(self.fd, 32, 0).decode('ascii', 'replace').strip()
        except OSError:
            pid = ''
        return ' (pid %s)' % pid if pid.isdigit() else ''

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
        return False


class ModelStore(object):
    """Versions of one model on disk."""

    def __init__(self, root, name):
        self.root = root
        self.name = name
        self.dir = os.path.join(root, name)

    def version_dir(self, version):
        return os.path.join(self.dir, version)

    def staging_dir(self, version):
        return os.path.join(self.dir, STAGING, version)

    @property
    def current_link(self):
        return os.path.join(self.dir, CURRENT)

    def current(self):
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        return os.path.basename(target.rstrip('/'))

    def read_manifest(self, version):
        return state.read_json(os.path.join(self.version_dir(version), MANIFEST), ModelCorrupt,
                               ' (remove the version with state=absent and pull it again)')

    def versions(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted(v for v in os.listdir(self.dir)
                      if not v.startswith('.') and v != CURRENT and os.path.isfile(os.path.join(self.dir, v, MANIFEST)))

    def write_manifest(self, directory, manifest):
        """0600: the manifest records (redacted) source URLs."""
        write_private_json(os.path.join(directory, MANIFEST), manifest)

    def check(self, version, manifest, full=False):
        """Problems of an installed version: missing files, wrong sizes, and with full=True wrong sha256."""
        problems = []
        for entry in manifest.get('files', []):
            path = os.path.join(self.version_dir(version), entry['path'])
            try:
                size = os.path.getsize(path)
            except OSError:
                problems.append('%s is missing' % entry['path'])
                continue
            if size != entry['size']:
                problems.append('%s has %d bytes, the manifest says %d' % (entry['path'], size, entry['size']))
            elif full and sha256_file(path) != entry['sha256']:
                problems.append('%s does not match its sha256 %s' % (entry['path'], entry['sha256']))
        return problems

    def switch(self, version):
        """Point `current` at `version` atomically: a new symlink under a temporary name renamed over the old one."""
        tmp = os.path.join(self.dir, '.%s.%d.tmp' % (CURRENT, os.getpid()))
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(version, tmp)
        os.replace(tmp, self.current_link)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, version):
        shutil.rmtree(self.version_dir(version), ignore_errors=False)

    # -- the activation record (state.json) ------------------------------------------------------------------

    def load_record(self):
        try:
            return state.load(self.dir, STATE_NAME)
        except state.StateError as exc:
            raise ModelError(str(exc), 'unreadable') from exc

    def record_path(self):
        return state.state_path(self.dir, STATE_NAME)

    def save_record(self, record, version, manifest, previous, now):
        """The record after `version` became current (`previous` was current before it)."""
        current = {'version': version, 'digest': manifest.get('digest'), 'source': manifest.get('source'),
                   'size': manifest.get('size')}
        prev = {'version': previous} if previous else (record.get('previous') or None)
        new = state.record_change(record, current, prev, now=now)
        new['versions'] = [v for v in record.get('versions', []) if v != version] + [version]
        self.write_record(new)
        return new

    def write_record(self, record):
        try:
            os.makedirs(self.dir, exist_ok=True)
            state.save(self.dir, STATE_NAME, record)
        except (OSError, state.StateError) as exc:
            raise ModelError(str(exc), 'unwritable') from exc

    def expire(self, record, keep, remove, current=None):
        """Apply the keep-N rule to the record: `remove(version)` each version that goes (it returns False when the
        version is not one to remove), and drop the removed ones from the record. Returns the versions removed."""
        current = current or (record.get('current') or {}).get('version')
        kept = kept_versions(record.get('versions', []), current, (record.get('previous') or {}).get('version'), keep)
        removed = [v for v in record.get('versions', []) if v not in kept and remove(v) is not False]
        if removed:
            record['versions'] = [v for v in record.get('versions', []) if v not in removed]
            self.write_record(record)
        return removed
