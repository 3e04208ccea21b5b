# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of the model_pull module: one run (check the options, take the model's lock, plan, precheck the disk,
download, verify, promote, switch `current`, record, apply the keep-N rule), and the http source.

The pieces, one concern each:
  _http_transfer  HTTP(S) downloads (resume, on-disk sha256, credentials, proxies, CA bundle), progress file, errors;
  _model_store    the versioned store on disk (names, lock, versions, current / previous, manifests, keep-N rule);
  _huggingface    the Hugging Face Hub source;  _ollama  the Ollama source.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _huggingface as hf
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import (
    HttpClient, ModelCorrupt, ModelError, ModelInvalid, ModelNoSpace, ModelRefused, check_url,
    clean_headers, clean_token, human_bytes, parse_headers, proxy_secrets, redact_url, url_secrets)
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._model_store import (
    MANIFEST, MANIFEST_FORMAT, ModelStore, StoreLock, check_version_name, content_digest, disk_free, sha256_file)
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._ollama import OllamaPull

PROXY_OPTIONS = ('http_proxy', 'https_proxy', 'no_proxy')


# -- options ----------------------------------------------------------------------------------------------

def model_secrets(params):
    """What must never be printed besides the no_log options: the credentials in URLs (user:password, presigned query
    strings) and of the proxies."""
    files = params.get('files') if isinstance(params.get('files'), list) else []
    urls = [params.get(k) for k in ('url', 'endpoint', 'ollama_url') + PROXY_OPTIONS]
    urls += [f.get('url') for f in files if isinstance(f, dict)]
    return [s for url in urls if isinstance(url, str) for s in url_secrets(url)] + proxy_secrets()


def proxies_of(params):
    """The proxy options given (any of them): they replace the proxy environment of the node; none: the environment."""
    given = dict((k, params.get(k)) for k in PROXY_OPTIONS if params.get(k) is not None)
    if not given:
        return None
    for key in ('http_proxy', 'https_proxy'):
        if given.get(key):
            check_url(given[key], key)
    return given


def client_for(params, redact, progress=None):
    """The HttpClient of a run, from the module's options: headers and token checked, their values added to `redact`.
    Returns (client, params with the cleaned token and headers)."""
    headers = clean_headers(parse_headers(params.get('headers')))
    redact.add(*headers.values())  # the values of a headers string become secrets only once parsed
    token = clean_token(params.get('token'))
    if token:
        redact.add(token)
        headers['Authorization'] = 'Bearer %s' % token
    client = HttpClient(headers=headers, validate_certs=params.get('validate_certs', True), timeout=params.get('timeout') or 60,
                        retries=params.get('retries', 3), redact=redact, ca_path=params.get('ca_path'),
                        proxies=proxies_of(params), progress=progress)
    return client, dict(params, token=token, headers=headers)


def check_range(params, key, low, high=None, what=None):
    value = params.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = 'from %d to %d' % (low, high) if high is not None else '>= %d' % low
        raise ModelInvalid('%s must be an integer %s (got %r)' % (what or key, bounds, value))


def validate_params(params):
    """Every option with a range or a shape, before any change."""
    check_range(params, 'keep', 0, 1000)
    check_range(params, 'free_space_margin', 0, 1 << 30, 'free_space_margin (MiB)')
    check_range(params, 'timeout', 1, 86400, 'timeout (seconds)')
    check_range(params, 'retries', 0, 100)
    check_range(params, 'max_workers', 1, 64)
    check_range(params, 'size', 0)
    check_range(params, 'lock_timeout', 0, 7 * 86400, 'lock_timeout (seconds)')
    check_range(params, 'progress_interval', 1, 3600, 'progress_interval (seconds)')
    for index, entry in enumerate(params.get('files') or []):
        if not isinstance(entry, dict):
            raise ModelInvalid('files[%d] must be a dict with url and sha256' % index)
        check_range(entry, 'size', 0, what='files[%d].size' % index)
    if params.get('url') is not None:
        check_url(params['url'])
    for index, entry in enumerate(params.get('files') or []):
        if entry.get('url') is not None:
            check_url(entry['url'], 'files[%d].url' % index)
    if params.get('source') == 'ollama' and params.get('ollama_url') is not None:
        check_url(params['ollama_url'], 'ollama_url')
    if params.get('endpoint') is not None:
        check_url(params['endpoint'], 'endpoint')
    for key in ('serving_tag',):
        if params.get('source') == 'ollama' and params.get(key) is not None:
            check_version_name(params[key], key)
    progress = params.get('progress_file')
    if progress is not None and (not isinstance(progress, str) or not os.path.isabs(progress) or progress.endswith('/')):
        raise ModelInvalid('progress_file must be an absolute file path (got %r)' % (progress if isinstance(progress, str) else type(progress).__name__))


def normalise_files(params):
    """The files of an http source: [{'url', 'path', 'sha256', 'size'}]."""
    files = []
    for entry in params.get('files') or []:
        files.append(dict(entry))
    if params.get('url'):
        files.append({'url': params['url'], 'sha256': params.get('sha256'), 'path': None, 'size': None})
    if not files:
        raise ModelInvalid('source=http needs url (with sha256) or files')
    seen = set()
    for entry in files:
        if not entry.get('url'):
            raise ModelInvalid('every entry of files needs a url')
        sha = str(entry.get('sha256') or '').lower()
        if sha.startswith('sha256:'):
            sha = sha[len('sha256:'):]
        if len(sha) != 64 or any(c not in '0123456789abcdef' for c in sha):
            raise ModelInvalid('%s: sha256 must be the 64 hex digits of the file (pinning is mandatory)' % redact_url(entry['url']))
        entry['sha256'] = sha
        path = entry.get('path') or entry['url'].split('?', 1)[0].rstrip('/').rsplit('/', 1)[-1]
        norm = os.path.normpath(path) if isinstance(path, str) else ''
        if not norm or os.path.isabs(norm) or norm.split(os.sep)[0] == '..' or norm in ('.', MANIFEST) \
                or norm.endswith(('.partial', '.partial.meta', '.tmp')) or '\x00' in norm:
            raise ModelInvalid('%s: invalid file path %r (relative, inside the version directory)' % (redact_url(entry['url']), path))
        if norm in seen:
            raise ModelInvalid('file path %s appears twice' % norm)
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
        """Checks every option, then runs under the model's lock (held from the first read to the last write). The
        progress file (when there is one) says `running` from then on, and `done` or `failed` at the end."""
        started = time.monotonic()
        params = self.params
        try:
            check_version_name(params['name'], 'name')
            if params.get('version') is not None:
                check_version_name(params['version'])
            validate_params(params)
            if params.get('source') == 'hf' and params.get('state') == 'present' and not hf.HAS_HF:
                raise ModelError(missing_required_lib('huggingface_hub'), 'missing_library', exception=hf.HF_IMPORT_ERROR)
        except ModelError as exc:
            exc.details.update(name=params.get('name'), version=params.get('version'))
            raise
        if params.get('source') == 'ollama':
            ollama = OllamaPull(self)
            handler = {'present': ollama.present, 'previous': ollama.previous, 'absent': ollama.absent}[params['state']]
        else:
            handler = {'present': self.present, 'previous': self.previous, 'absent': self.absent}[params['state']]
        lock_timeout = params.get('lock_timeout')
        progress = self.http.progress.start()
        ok = False
        try:
            progress.set('waiting for the lock of the model')
            with StoreLock(self.store.root, params['name'], 3600 if lock_timeout is None else lock_timeout, self.check_mode):
                progress.set('planning')
                result = handler()
            ok = True
        except ModelError as exc:
            exc.details.update(name=params['name'], version=params.get('version'))
            raise
        except OSError as exc:
            raise ModelError(self.http.redact(exc), 'no_space' if exc.errno in (28, 122) else 'io',
                             name=params['name'], version=params.get('version')) from None
        finally:
            progress.finish(ok)
        result.setdefault('source', params.get('source'))
        result.setdefault('bytes_transferred', 0)
        result['name'] = params['name']
        result['duration'] = round(time.monotonic() - started, 3)
        result['warnings'] = self.warnings
        return result

    # -- records ---------------------------------------------------------------------------------------

    def load_record(self):
        return self.store.load_record()

    def save_record(self, record, version, manifest, previous):
        return self.store.save_record(record, version, manifest, previous, now=self.now())

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
            selection = hf.hf_selection(params)

            def same(manifest):
                return manifest.get('selection') == selection

            def pull(record, current, previous_version):
                return hf.pull_hf(self, version, selection, record, current, previous_version)
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
                raise ModelRefused('version %s of %s is already in %s with other files, checksums or revision; versions are immutable: '
                                   'pull under a new version name, or remove this one with state=absent first'
                                   % (version, params['name'], self.store.version_dir(version)))
            problems = self.store.check(version, manifest, full=params['verify'] == 'full')
            if problems:
                if current == version:
                    raise ModelCorrupt('the current version %s of %s is damaged: %s; roll back with state=previous or pull a new version'
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
        progress = self.http.progress
        progress.set('downloading %d file%s' % (len(files), 's' if len(files) > 1 else ''), total=None if unknown else total)
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
                raise ModelCorrupt(self.http.redact(
                    'checksum mismatch for %s of %s %s (%s): expected sha256 %s, the file on disk has %s; the download was '
                    'discarded and the current version stays %s'
                    % (entry['path'], params['name'], version, redact_url(entry['url']), entry['sha256'], got, current or '(none)')))
            if os.path.exists(partial):
                os.replace(partial, final)  # the same inode that was read back and hashed
                if os.path.exists(partial + '.meta'):
                    os.unlink(partial + '.meta')
            entries.append({'path': entry['path'], 'size': os.path.getsize(final), 'sha256': got, 'url': redact_url(entry['url'])})
            progress.file_done(entries[-1]['size'])
        progress.set('verified, switching')
        return self.promote(staging, version, entries, {'source': 'http'}, record, current, previous_version,
                            transferred, to_transfer)

    def precheck(self, version, to_transfer):
        params = self.params
        needed = to_transfer + params['free_space_margin'] * 1024 * 1024
        free = self.free_space(self.store.dir)
        if needed > free:
            raise ModelNoSpace('not enough disk space for %s %s under %s: %s to download plus a margin of %d MiB, %s free; '
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

    # -- previous / absent / gc --------------------------------------------------------------------------

    def previous(self):
        record = self.load_record()
        current = self.store.current()
        target = (record.get('previous') or {}).get('version')
        if not target:
            raise ModelRefused('no previous version of %s is recorded in %s' % (self.params['name'], self.store.record_path()))
        manifest = self.store.read_manifest(target)
        if manifest is None:
            raise ModelRefused('the previous version %s of %s is no longer in %s (garbage-collected or removed)'
                               % (target, self.params['name'], self.store.dir))
        problems = self.store.check(target, manifest, full=self.params['verify'] == 'full')
        if problems:
            raise ModelCorrupt('the previous version %s is damaged: %s; the current version stays %s' % (target, '; '.join(problems), current))
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
            raise ModelRefused('version %s is the current version of %s: switch to another one first' % (version, self.params['name']))
        exists = os.path.lexists(self.store.version_dir(version)) or os.path.lexists(self.store.staging_dir(version))
        if exists and not self.check_mode:
            for path in (self.store.version_dir(version), self.store.staging_dir(version)):
                if os.path.lexists(path):
                    shutil.rmtree(path)
        return {'changed': exists, 'version': version, 'model_path': self.store.version_dir(version), 'previous_version': None}

    def collect(self, record):
        """The keep-N rule of the store (_model_store.kept_versions), applied to the version directories."""
        def remove(version):
            if not os.path.isfile(os.path.join(self.store.version_dir(version), MANIFEST)):
                return False
            self.store.remove(version)
            return True

        self.removed = self.store.expire(record, self.params['keep'], remove, current=self.store.current())
        return self.removed
