# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""model_pull's Ollama source: the Ollama HTTP API of the node (docs/api.md). Versions are the tags <name>:<version>,
the serving name is <name>:<serving_tag> (switched with /api/copy); the record lives in the model store's state.json.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import (
    ModelCorrupt, ModelError, ModelInvalid, ModelNetworkError, ModelNoSpace, ModelRefused, human_bytes)


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
            raise ModelNetworkError('cannot reach the Ollama API at %s: %s (is ollama.service running?)' % (self.base, exc)) from None
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
            raise ModelRefused('Ollama has no model %s to copy to %s' % (source, destination))
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
        totals = {}
        last = None
        progress = self.http.progress
        progress.set('pulling through the Ollama API')
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
                    raise ModelNetworkError('Ollama could not pull %s: %s' % (model, event['error']))
                last = event.get('status')
                if event.get('digest') and event.get('completed') is not None:
                    completed[event['digest']] = event['completed']
                    totals[event['digest']] = event.get('total') or 0
                    progress.total, progress.pos = sum(totals.values()) or None, sum(completed.values())
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
        """The keep-N rule of the store, applied to the version tags."""
        self.puller.removed = self.store.expire(record, self.params['keep'], lambda version: self.api.delete(self.vtag(version)) or None)

    def present(self):
        params = self.params
        version = params['version']
        if not params.get('model'):
            raise ModelInvalid('source=ollama needs model (the Ollama model to pull, for example llama3.1:8b)')
        if version == params['serving_tag']:
            raise ModelInvalid('version must differ from serving_tag %s' % params['serving_tag'])
        pin = (params.get('digest') or '').lower().replace('sha256:', '') or None
        record = self.store.load_record()
        current = (record.get('current') or {}).get('version')
        tags = self.api.tags()
        vtag = self.vtag(version)
        if vtag in tags:
            info = tags[vtag]
            if pin and info.get('digest') != pin:
                raise ModelRefused('%s is already in Ollama with digest %s, not %s; versions are immutable: use a new version name'
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
            raise ModelNoSpace('not enough disk space for %s under %s: %s announced, %s free; nothing was pulled'
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
                raise ModelCorrupt('digest mismatch for %s: expected %s, Ollama has %s; the pulled model was discarded and the current '
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
                raise ModelNetworkError('pull of %s interrupted %d times (%s); Ollama keeps partial blobs, the next run resumes'
                                        % (source, attempts, detail))

    def previous(self):
        record = self.store.load_record()
        current = (record.get('current') or {}).get('version')
        target = (record.get('previous') or {}).get('version')
        if not target:
            raise ModelRefused('no previous version of %s is recorded in %s' % (self.base, self.store.record_path()))
        tags = self.api.tags()
        info = tags.get(self.vtag(target))
        if info is None:
            raise ModelRefused('the previous version %s is no longer in Ollama; the current version stays %s' % (self.vtag(target), current))
        if current == target and (tags.get(self.serving) or {}).get('digest') == info.get('digest'):
            return self.result(target, False, current, info)
        if not self.puller.check_mode:
            self.api.copy(self.vtag(target), self.serving)
            self.puller.save_record(record, target, {'digest': info.get('digest'), 'source': 'ollama', 'size': info.get('size')}, current)
        return self.result(target, True, current, info)

    def absent(self):
        version = self.params.get('version')
        record = self.store.load_record()
        if version and version == (record.get('current') or {}).get('version'):
            raise ModelRefused('version %s is the current version of %s: switch to another one first' % (version, self.base))
        tags = self.api.tags()
        names = [self.vtag(version)] if version else [t for t in tags if t.split(':', 1)[0] == self.base]
        present = [t for t in names if t in tags]
        if present and not self.puller.check_mode:
            for tag in present:
                self.api.delete(tag)
        return {'changed': bool(present), 'version': version, 'model_path': ', '.join(names), 'previous_version': None, 'source': 'ollama'}
