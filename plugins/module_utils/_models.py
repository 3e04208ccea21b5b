# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of the model_pull module: a versioned model store with an atomic `current` pointer.

Layout under <dest_root>/:
  .<name>.lock               the model's lock (flock), held by a run from its first read to its last write
  <name>/<version>/          one directory per version, the model files plus .manifest.json (0600, URLs redacted)
  <name>/current -> <version>  relative symlink, switched atomically (temporary link + rename)
  <name>/.staging/<version>/ downloads in progress (<file>.partial, resumed with Range + If-Range, and
                             <file>.partial.meta: the validator of the response that started it)
  <name>/state.json          activation order, current and previous version (written atomically)

Versions and names are whitelisted (letters, digits, . _ + -; not `current`, `state`, nor *.json, *.partial, ...).
What a download verifies: see _model_transfer (the sha256 of the file read back from disk, before `current` moves).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import re
import time
import traceback
import urllib.error

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._model_transfer import (
    HttpClient, ModelError, StoreLock, check_version_name, redact_url, validate_params, write_private_json)

try:
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects
    HAS_HF = True
    HF_IMPORT_ERROR = None
except ImportError:
    HAS_HF = False
    HF_IMPORT_ERROR = traceback.format_exc()

CHUNK = 1024 * 1024
MANIFEST = '.manifest.json'
STAGING = '.staging'
CURRENT = 'current'
STATE_NAME = 'state'
MANIFEST_FORMAT = 1


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


def human_bytes(num):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(num) < 1024 or unit == 'TiB':
            return '%.1f %s' % (num, unit) if unit != 'B' else '%d B' % num
        num /= 1024.0
    return '%d B' % num  # pragma: no cover


def hf_selection(params):
    if not params.get('model') or not params.get('revision'):
        raise ModelError('source=hf needs model (the repository id, org/name) and revision (a commit sha)')
    return {'repo': params['model'], 'revision': params['revision'],
            'allow_patterns': sorted(params.get('allow_patterns') or []) or None,
            'ignore_patterns': sorted(params.get('ignore_patterns') or []) or None}


def hf_error(exc):
    """A short message for a huggingface_hub error, with the HTTP status when there is one."""
    response = getattr(exc, 'response', None)
    status = getattr(response, 'status_code', None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = {401: ' (authentication refused: check the token)', 403: ' (forbidden: check the token and the repository access)',
            404: ' (not found: check the repository, revision and file names)'}.get(status, '')
    return '%s%s%s' % (type(exc).__name__ + ': ' if status is None else 'HTTP %s: ' % status, text, hint)


def hash_file_and_blob(path, chunk=CHUNK):
    """(sha256, git blob sha1) of a file: the Hub names LFS files by sha256 and the others by their git blob id."""
    size = os.path.getsize(path)
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b'blob %d\x00' % size)  # nosec: git object id, not security
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            sha256.update(block)
            blob.update(block)
    return sha256.hexdigest(), blob.hexdigest()


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
        path = os.path.join(self.version_dir(version), MANIFEST)
        try:
            with open(path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ModelError('cannot read %s: %s (remove the version with state=absent and pull it again)' % (path, exc)) from exc
        return data

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


def normalise_files(params):
    """The files of an http source: [{'url', 'path', 'sha256', 'size'}]."""
    files = []
    for entry in params.get('files') or []:
        files.append(dict(entry))
    if params.get('url'):
        files.append({'url': params['url'], 'sha256': params.get('sha256'), 'path': None, 'size': None})
    if not files:
        raise ModelError('source=http needs url (with sha256) or files')
    seen = set()
    for entry in files:
        if not entry.get('url'):
            raise ModelError('every entry of files needs a url')
        sha = str(entry.get('sha256') or '').lower()
        if sha.startswith('sha256:'):
            sha = sha[len('sha256:'):]
        if len(sha) != 64 or any(c not in '0123456789abcdef' for c in sha):
            raise ModelError('%s: sha256 must be the 64 hex digits of the file (pinning is mandatory)' % redact_url(entry['url']))
        entry['sha256'] = sha
        path = entry.get('path') or entry['url'].split('?', 1)[0].rstrip('/').rsplit('/', 1)[-1]
        norm = os.path.normpath(path) if isinstance(path, str) else ''
        if not norm or os.path.isabs(norm) or norm.split(os.sep)[0] == '..' or norm in ('.', MANIFEST) \
                or norm.endswith(('.partial', '.partial.meta', '.tmp')) or '\x00' in norm:
            raise ModelError('%s: invalid file path %r (relative, inside the version directory)' % (redact_url(entry['url']), path))
        if norm in seen:
            raise ModelError('file path %s appears twice' % norm)
        seen.add(norm)
        entry['path'] = norm
        entry['size'] = int(entry['size']) if entry.get('size') is not None else None
    return files


class ModelPull(object):
    """One model_pull run: plan, precheck, download, verify, promote, record, collect garbage."""

    def __init__(self, params, check_mode=False, http_client=None, free_space=disk_free, now=time.time):
        self.params = params
        self.check_mode = check_mode
        self.http = http_client or HttpClient()
        self.free_space = free_space
        self.now = now
        self.store = ModelStore(params['dest_root'], params['name'])
        self.warnings = []
        self.removed = []

    def run(self):
        """Checks every option, then runs under the model's lock (held from the first read to the last write)."""
        started = time.monotonic()
        check_version_name(self.params['name'], 'name')
        if self.params.get('version') is not None:
            check_version_name(self.params['version'])
        validate_params(self.params)
        if self.params.get('source') == 'ollama':
            ollama = OllamaPull(self)
            handler = {'present': ollama.present, 'previous': ollama.previous, 'absent': ollama.absent}[self.params['state']]
        else:
            handler = {'present': self.present, 'previous': self.previous, 'absent': self.absent}[self.params['state']]
        lock_timeout = self.params.get('lock_timeout')
        with StoreLock(self.store.root, self.params['name'], 3600 if lock_timeout is None else lock_timeout, self.check_mode):
            result = handler()
        result.setdefault('source', self.params.get('source'))
        result.setdefault('bytes_transferred', 0)
        result['name'] = self.params['name']
        result['duration'] = round(time.monotonic() - started, 3)
        result['warnings'] = self.warnings
        return result

    # -- records ---------------------------------------------------------------------------------------

    def load_record(self):
        try:
            return state.load(self.store.dir, STATE_NAME)
        except state.StateError as exc:
            raise ModelError(str(exc)) from exc

    def save_record(self, record, version, manifest, previous):
        current = {'version': version, 'digest': manifest.get('digest'), 'source': manifest.get('source'),
                   'size': manifest.get('size')}
        prev = {'version': previous} if previous else (record.get('previous') or None)
        new = state.record_change(record, current, prev, now=self.now())
        order = [v for v in record.get('versions', []) if v != version] + [version]
        new['versions'] = order
        try:
            state.save(self.store.dir, STATE_NAME, new)
        except state.StateError as exc:
            raise ModelError(str(exc)) from exc
        return new

    def result_for(self, version, manifest, changed, previous, transferred=0, extra=None):
        result = {
            'changed': changed,
            'version': version,
            'digest': manifest.get('digest') if manifest else None,
            'revision': manifest.get('revision') if manifest else None,
            'size': manifest.get('size', 0) if manifest else 0,
            'model_path': self.store.version_dir(version),
            'current_path': self.store.current_link,
            'previous_version': previous,
            'bytes_transferred': transferred,
            'source': (manifest or {}).get('source', self.params.get('source')),
            'files': [{'path': f['path'], 'size': f['size'], 'sha256': f['sha256']} for f in (manifest or {}).get('files', [])],
            'removed_versions': list(self.removed),
        }
        result.update(extra or {})
        return result

    # -- present -----------------------------------------------------------------------------------------

    def present(self):
        params = self.params
        version = params['version']
        check_version_name(version)
        if params['source'] == 'hf':
            selection = hf_selection(params)

            def same(manifest):
                return manifest.get('selection') == selection

            def pull(record, current, previous_version):
                return self.pull_hf(version, selection, record, current, previous_version)
        else:
            files = normalise_files(params)
            wanted = dict((f['path'], f['sha256']) for f in files)

            def same(manifest):
                return dict((f['path'], f['sha256']) for f in manifest.get('files', [])) == wanted

            def pull(record, current, previous_version):
                return self.pull_http(version, files, record, current, previous_version)
        record = self.load_record()
        current = self.store.current()
        previous_version = current if current != version else (record.get('previous') or {}).get('version')
        manifest = self.store.read_manifest(version)
        if manifest is not None:
            if not same(manifest):
                raise ModelError('version %s of %s is already in %s with other files, checksums or revision; versions are immutable: '
                                 'pull under a new version name, or remove this one with state=absent first'
                                 % (version, params['name'], self.store.version_dir(version)))
            problems = self.store.check(version, manifest, full=params['verify'] == 'full')
            if problems:
                if current == version:
                    raise ModelError('the current version %s of %s is damaged: %s; roll back with state=previous or pull a new version'
                                     % (version, params['name'], '; '.join(problems)))
                if self.check_mode:
                    return self.result_for(version, manifest, True, current, extra={'bytes_to_transfer': manifest.get('size', 0),
                                                                                    'repaired': problems})
                self.warnings.append('version %s was damaged (%s): downloading it again' % (version, '; '.join(problems)))
                staging = self.store.staging_dir(version)
                if os.path.isdir(staging):
                    shutil.rmtree(staging)
                os.makedirs(os.path.dirname(staging), exist_ok=True)
                os.replace(self.store.version_dir(version), staging)
                os.unlink(os.path.join(staging, MANIFEST))
                manifest = None
            else:
                changed = current != version and params['activate']
                if changed and not self.check_mode:
                    self.store.switch(version)
                    record = self.save_record(record, version, manifest, current)
                    self.collect(record)
                return self.result_for(version, manifest, changed, previous_version if changed or current == version else current,
                                       extra={'bytes_to_transfer': 0})
        return pull(record, current, previous_version)

    def staged(self, staging, entry):
        """Bytes of `entry` already in the staging directory (complete file or .partial)."""
        final = os.path.join(staging, entry['path'])
        if os.path.isfile(final):
            return os.path.getsize(final)
        partial = final + '.partial'
        return os.path.getsize(partial) if os.path.isfile(partial) else 0

    def pull_http(self, version, files, record, current, previous_version):
        params = self.params
        staging = self.store.staging_dir(version)
        for entry in files:
            if entry['size'] is None:
                entry['size'] = self.http.head(entry['url'])[0]
        unknown = [f['path'] for f in files if f['size'] is None]
        total = sum(f['size'] or 0 for f in files)
        to_transfer = sum(max((f['size'] or 0) - self.staged(staging, f), 0) for f in files)
        self.precheck(version, to_transfer)
        if unknown:
            self.warnings.append('the server announced no size for %s: the disk-space check could not count them' % ', '.join(unknown))
        plan = {'bytes_to_transfer': to_transfer, 'files_to_pull': [f['path'] for f in files]}
        if self.check_mode:
            result = self.result_for(version, None, True, current if params['activate'] else previous_version, extra=plan)
            result['size'] = total
            return result
        transferred = 0
        entries = []
        os.makedirs(staging, mode=0o755, exist_ok=True)
        for entry in files:
            final = os.path.join(staging, entry['path'])
            os.makedirs(os.path.dirname(final), exist_ok=True)
            partial = final + '.partial'
            got = None
            if os.path.isfile(final):
                got = sha256_file(final)
                if got != entry['sha256']:  # left from a damaged version: fetch it again
                    os.unlink(final)
                    got = None
            if got is None:
                count, got = self.http.download(entry['url'], partial, entry['size'], entry['sha256'])
                transferred += count
            if got != entry['sha256']:
                for path in (partial, partial + '.meta', final):
                    if os.path.exists(path):
                        os.unlink(path)
                raise ModelError(self.http.redact(
                    'checksum mismatch for %s of %s %s (%s): expected sha256 %s, the file on disk has %s; the download was '
                    'discarded and the current version stays %s'
                    % (entry['path'], params['name'], version, redact_url(entry['url']), entry['sha256'], got, current or '(none)')))
            if os.path.exists(partial):
                os.replace(partial, final)  # the same inode that was read back and hashed
                if os.path.exists(partial + '.meta'):
                    os.unlink(partial + '.meta')
            entries.append({'path': entry['path'], 'size': os.path.getsize(final), 'sha256': got, 'url': redact_url(entry['url'])})
        return self.promote(staging, version, entries, {'source': 'http'}, record, current, previous_version,
                            transferred, to_transfer)

    def precheck(self, version, to_transfer):
        params = self.params
        needed = to_transfer + params['free_space_margin'] * 1024 * 1024
        free = self.free_space(self.store.dir)
        if needed > free:
            raise ModelError('not enough disk space for %s %s under %s: %s to download plus a margin of %d MiB, %s free; '
                             'nothing was downloaded (free space, lower keep, or pull to another dest_root)'
                             % (params['name'], version, self.store.dir, human_bytes(to_transfer), params['free_space_margin'], human_bytes(free)))

    def promote(self, staging, version, entries, extra, record, current, previous_version, transferred, to_transfer):
        """Write the manifest, move the verified staging directory into place, switch `current`, collect."""
        params = self.params
        manifest = {'format': MANIFEST_FORMAT, 'name': params['name'], 'version': version,
                    'files': entries, 'size': sum(e['size'] for e in entries), 'digest': content_digest(entries),
                    'pulled_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.now()))}
        manifest.update(extra)
        self.store.write_manifest(staging, manifest)
        target = self.store.version_dir(version)
        if os.path.lexists(target):
            shutil.rmtree(target)  # a leftover without a manifest
        os.replace(staging, target)
        changed_current = False
        if params['activate'] and current != version:
            self.store.switch(version)
            record = self.save_record(record, version, manifest, current)
            changed_current = True
            self.collect(record)
        return self.result_for(version, manifest, True, current if changed_current else previous_version, transferred,
                               extra={'bytes_to_transfer': to_transfer})

    def pull_hf(self, version, selection, record, current, previous_version):
        """Hugging Face Hub through huggingface_hub: list the files of the commit, precheck, snapshot_download, verify."""
        params = self.params
        if not HAS_HF:
            raise ModelError('source=hf needs the Python library huggingface_hub on the target')
        if not re.match(r'^[0-9a-f]{40}$', selection['revision']):
            self.warnings.append('revision %s is not a commit sha: the version is pinned to what it points at now' % selection['revision'])
        staging = self.store.staging_dir(version)
        api = huggingface_hub.HfApi(endpoint=params.get('endpoint'), token=params.get('token') or False)
        try:
            commit = selection['revision']
            if not re.match(r'^[0-9a-f]{40}$', commit):
                commit = api.repo_info(selection['repo'], revision=commit).sha
            tree = [f for f in api.list_repo_tree(selection['repo'], recursive=True, revision=commit)
                    if isinstance(f, huggingface_hub.hf_api.RepoFile)]
            tree = list(filter_repo_objects(tree, allow_patterns=selection['allow_patterns'],
                                            ignore_patterns=selection['ignore_patterns'], key=lambda f: f.path))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise ModelError(self.http.redact('Hugging Face Hub: cannot list %s at %s: %s'
                                              % (selection['repo'], selection['revision'], hf_error(exc)))) from None
        if not tree:
            raise ModelError('no file of %s at %s matches allow_patterns/ignore_patterns' % (selection['repo'], commit))
        total = sum(f.size for f in tree)
        staged = 0
        for entry in tree:
            path = os.path.join(staging, entry.path)
            if os.path.isfile(path) and os.path.getsize(path) == entry.size:
                staged += entry.size
        to_transfer = total - staged
        self.precheck(version, to_transfer)
        if self.check_mode:
            result = self.result_for(version, None, True, current if params['activate'] else previous_version,
                                     extra={'bytes_to_transfer': to_transfer, 'files_to_pull': [f.path for f in tree]})
            result.update({'size': total, 'revision': commit})
            return result
        os.makedirs(staging, mode=0o755, exist_ok=True)
        try:
            huggingface_hub.snapshot_download(selection['repo'], revision=commit, local_dir=staging,
                                              allow_patterns=selection['allow_patterns'], ignore_patterns=selection['ignore_patterns'],
                                              endpoint=params.get('endpoint'), token=params.get('token') or False,
                                              max_workers=params.get('max_workers') or 8)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise ModelError(self.http.redact('Hugging Face Hub: download of %s at %s failed: %s; what was downloaded stays in %s'
                                              % (selection['repo'], commit, hf_error(exc), staging))) from None
        entries = []
        for entry in tree:
            path = os.path.join(staging, entry.path)
            sha256, blob = hash_file_and_blob(path)
            expected = entry.lfs.sha256 if entry.lfs is not None else None
            if (expected and sha256 != expected) or (not expected and entry.blob_id and blob != entry.blob_id):
                os.unlink(path)
                raise ModelError('checksum mismatch for %s of %s at %s: the file was discarded and the current version stays %s'
                                 % (entry.path, selection['repo'], commit, current or '(none)'))
            entries.append({'path': entry.path, 'size': entry.size, 'sha256': sha256})
        shutil.rmtree(os.path.join(staging, '.cache'), ignore_errors=True)
        return self.promote(staging, version, entries, {'source': 'hf', 'revision': commit, 'selection': selection},
                            record, current, previous_version, to_transfer, to_transfer)

    # -- previous / absent / gc --------------------------------------------------------------------------

    def previous(self):
        record = self.load_record()
        current = self.store.current()
        target = (record.get('previous') or {}).get('version')
        if not target:
            raise ModelError('no previous version of %s is recorded in %s' % (self.params['name'], state.state_path(self.store.dir, STATE_NAME)))
        manifest = self.store.read_manifest(target)
        if manifest is None:
            raise ModelError('the previous version %s of %s is no longer in %s (garbage-collected or removed)'
                             % (target, self.params['name'], self.store.dir))
        problems = self.store.check(target, manifest, full=self.params['verify'] == 'full')
        if problems:
            raise ModelError('the previous version %s is damaged: %s; the current version stays %s' % (target, '; '.join(problems), current))
        if current == target:
            return self.result_for(target, manifest, False, current)
        if not self.check_mode:
            self.store.switch(target)
            record = self.save_record(record, target, manifest, current)
        return self.result_for(target, manifest, True, current)

    def absent(self):
        version = self.params.get('version')
        if not version:
            exists = os.path.lexists(self.store.dir)
            if exists and not self.check_mode:
                shutil.rmtree(self.store.dir)
            return {'changed': exists, 'version': None, 'model_path': self.store.dir, 'previous_version': self.store.current() if exists else None}
        check_version_name(version)
        current = self.store.current()
        if current == version:
            raise ModelError('version %s is the current version of %s: switch to another one first' % (version, self.params['name']))
        exists = os.path.lexists(self.store.version_dir(version)) or os.path.lexists(self.store.staging_dir(version))
        if exists and not self.check_mode:
            for path in (self.store.version_dir(version), self.store.staging_dir(version)):
                if os.path.lexists(path):
                    shutil.rmtree(path)
        return {'changed': exists, 'version': version, 'model_path': self.store.version_dir(version), 'previous_version': None}

    def collect(self, record):
        """Keep the current version and the `keep` most recently current ones before it; remove older ones."""
        current = self.store.current()
        order = [v for v in record.get('versions', []) if v != current]
        keep = set(order[-self.params['keep']:]) if self.params['keep'] > 0 else set()
        previous = (record.get('previous') or {}).get('version')
        if previous and self.params['keep'] > 0:
            keep.add(previous)
        removed = []
        for version in order:
            if version not in keep and os.path.isfile(os.path.join(self.store.version_dir(version), MANIFEST)):
                self.store.remove(version)
                removed.append(version)
        if removed:
            record['versions'] = [v for v in record.get('versions', []) if v not in removed]
            state.save(self.store.dir, STATE_NAME, record)
        self.removed = removed
        return removed


# -- Ollama ----------------------------------------------------------------------------------------------

def ollama_tag(name):
    return name if ':' in name.rsplit('/', 1)[-1] else name + ':latest'


class OllamaApi(object):
    """The Ollama HTTP API of the node (docs/api.md): pull, tags, show, copy, delete."""

    def __init__(self, client, base_url):
        self.http = client
        self.base = base_url.rstrip('/')

    def call(self, method, path, body=None):
        url = self.base + path
        try:
            resp = self.http.open_json(url, method, body)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method in ('DELETE', 'POST') and path != '/api/pull':
                return None
            raise self.http.http_error(url, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ModelError('cannot reach the Ollama API at %s: %s (is ollama.service running?)' % (self.base, exc)) from None
        return resp

    def tags(self):
        resp = self.call('GET', '/api/tags')
        try:
            data = json.loads(resp.read() or b'{}')
        finally:
            resp.close()
        return dict((ollama_tag(m.get('name') or m.get('model')), m) for m in data.get('models', []))

    def copy(self, source, destination):
        resp = self.call('POST', '/api/copy', {'source': source, 'destination': destination})
        if resp is None:
            raise ModelError('Ollama has no model %s to copy to %s' % (source, destination))
        resp.close()

    def delete(self, model):
        resp = self.call('DELETE', '/api/delete', {'model': model})
        if resp is not None:
            resp.close()
        return resp is not None

    def pull(self, model):
        """Stream /api/pull; returns (ok, last status or error, bytes completed as reported)."""
        resp = self.call('POST', '/api/pull', {'model': model, 'stream': True})
        completed = {}
        last = None
        try:
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as exc:
                    return False, 'stream cut: %s' % exc, sum(completed.values())
                if not line:
                    return False, 'stream ended before success (last: %s)' % last, sum(completed.values())
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if 'error' in event:
                    raise ModelError('Ollama could not pull %s: %s' % (model, event['error']))
                last = event.get('status')
                if event.get('digest') and event.get('completed') is not None:
                    completed[event['digest']] = event['completed']
                if last == 'success':
                    return True, last, sum(completed.values())
        finally:
            resp.close()


class OllamaPull(object):
    """model_pull for source=ollama: versions are tags <name>:<version>, the serving tag is <name>:<serving_tag>."""

    def __init__(self, puller):
        self.puller = puller
        self.params = puller.params
        self.api = OllamaApi(puller.http, self.params['ollama_url'])
        self.store = puller.store
        self.base = self.params['name']
        self.serving = '%s:%s' % (self.base, self.params['serving_tag'])

    def vtag(self, version):
        return '%s:%s' % (self.base, version)

    def result(self, version, changed, previous, info=None, transferred=0, extra=None):
        out = {'changed': changed, 'version': version, 'digest': (info or {}).get('digest'), 'revision': None,
               'size': (info or {}).get('size', 0), 'model_path': self.vtag(version) if version else None, 'current_path': self.serving,
               'previous_version': previous, 'bytes_transferred': transferred, 'source': 'ollama', 'files': [],
               'removed_versions': list(self.puller.removed)}
        out.update(extra or {})
        return out

    def activate(self, record, version, info, current):
        self.api.copy(self.vtag(version), self.serving)
        manifest = {'digest': info.get('digest'), 'source': 'ollama', 'size': info.get('size')}
        os.makedirs(self.store.dir, exist_ok=True)
        record = self.puller.save_record(record, version, manifest, current)
        self.collect(record)

    def collect(self, record):
        current = (record.get('current') or {}).get('version')
        order = [v for v in record.get('versions', []) if v != current]
        keep = set(order[-self.params['keep']:]) if self.params['keep'] > 0 else set()
        previous = (record.get('previous') or {}).get('version')
        if previous and self.params['keep'] > 0:
            keep.add(previous)
        removed = [v for v in order if v not in keep]
        for version in removed:
            self.api.delete(self.vtag(version))
        if removed:
            record['versions'] = [v for v in record.get('versions', []) if v not in removed]
            state.save(self.store.dir, STATE_NAME, record)
        self.puller.removed = removed

    def present(self):
        params = self.params
        version = params['version']
        if not params.get('model'):
            raise ModelError('source=ollama needs model (the Ollama model to pull, for example llama3.1:8b)')
        if version == params['serving_tag']:
            raise ModelError('version must differ from serving_tag %s' % params['serving_tag'])
        pin = (params.get('digest') or '').lower().replace('sha256:', '') or None
        record = self.puller.load_record()
        current = (record.get('current') or {}).get('version')
        tags = self.api.tags()
        vtag = self.vtag(version)
        if vtag in tags:
            info = tags[vtag]
            if pin and info.get('digest') != pin:
                raise ModelError('%s is already in Ollama with digest %s, not %s; versions are immutable: use a new version name'
                                 % (vtag, info.get('digest'), pin))
            serving = tags.get(self.serving) or {}
            changed = params['activate'] and (serving.get('digest') != info.get('digest') or current != version)
            if changed and not self.puller.check_mode:
                self.activate(record, version, info, current)
            return self.result(version, changed, current if changed else (record.get('previous') or {}).get('version'), info,
                               extra={'bytes_to_transfer': 0})
        free = self.puller.free_space(params['ollama_models_dir'])
        size = params.get('size')
        if size is not None and size + params['free_space_margin'] * 1024 * 1024 > free:
            raise ModelError('not enough disk space for %s under %s: %s announced, %s free; nothing was pulled'
                             % (params['model'], params['ollama_models_dir'], human_bytes(size), human_bytes(free)))
        if size is None:
            self.puller.warnings.append('no size given for %s: the Ollama API announces none before a pull, so the disk-space check was skipped'
                                        % params['model'])
        if self.puller.check_mode:
            return self.result(version, True, current, extra={'bytes_to_transfer': size, 'files_to_pull': [params['model']]})
        source = ollama_tag(params['model'])
        backup = None
        if source in tags:  # a pull overwrites the tag in place: keep what was there
            backup = '%s-onprem-backup' % source
            self.api.copy(source, backup)
        try:
            transferred = self.pull_with_retries(source)
            info = self.api.tags().get(source) or {}
            if pin and info.get('digest') != pin:
                raise ModelError('digest mismatch for %s: expected %s, Ollama has %s; the pulled model was discarded and the current '
                                 'version stays %s' % (source, pin, info.get('digest'), current or '(none)'))
            self.api.copy(source, vtag)
        except ModelError:
            if backup:
                self.api.copy(backup, source)
            elif source not in tags:
                self.api.delete(source)
            raise
        finally:
            if backup:
                self.api.delete(backup)
        if params['activate']:
            self.activate(record, version, info, current)
        return self.result(version, True, current, info, transferred, extra={'bytes_to_transfer': info.get('size')})

    def pull_with_retries(self, source):
        attempts = 0
        while True:
            ok, detail, completed = self.api.pull(source)
            if ok:
                return completed
            attempts += 1
            if attempts > self.params['retries']:
                raise ModelError('pull of %s interrupted %d times (%s); Ollama keeps partial blobs, the next run resumes'
                                 % (source, attempts, detail))

    def previous(self):
        record = self.puller.load_record()
        current = (record.get('current') or {}).get('version')
        target = (record.get('previous') or {}).get('version')
        if not target:
            raise ModelError('no previous version of %s is recorded in %s' % (self.base, state.state_path(self.store.dir, STATE_NAME)))
        tags = self.api.tags()
        info = tags.get(self.vtag(target))
        if info is None:
            raise ModelError('the previous version %s is no longer in Ollama; the current version stays %s' % (self.vtag(target), current))
        if current == target and (tags.get(self.serving) or {}).get('digest') == info.get('digest'):
            return self.result(target, False, current, info)
        if not self.puller.check_mode:
            self.api.copy(self.vtag(target), self.serving)
            self.puller.save_record(record, target, {'digest': info.get('digest'), 'source': 'ollama', 'size': info.get('size')}, current)
        return self.result(target, True, current, info)

    def absent(self):
        version = self.params.get('version')
        record = self.puller.load_record()
        if version and version == (record.get('current') or {}).get('version'):
            raise ModelError('version %s is the current version of %s: switch to another one first' % (version, self.base))
        tags = self.api.tags()
        names = [self.vtag(version)] if version else [t for t in tags if t.split(':', 1)[0] == self.base]
        present = [t for t in names if t in tags]
        if present and not self.puller.check_mode:
            for tag in present:
                self.api.delete(tag)
        return {'changed': bool(present), 'version': version, 'model_path': ', '.join(names), 'previous_version': None, 'source': 'ollama'}
