# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""model_pull's Hugging Face Hub source: a repository at a commit, through huggingface_hub on the target, into the
versioned store; every file is checked against the sha256 (LFS) or the git blob id that the Hub lists.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import ssl
import tempfile
import threading
import traceback

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import (
    ModelCorrupt, ModelError, ModelInvalid, ModelNetworkError, environment, proxy_environment)
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._model_store import CHUNK

try:
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects
    HAS_HF = True
    HF_IMPORT_ERROR = None
except ImportError:
    HAS_HF = False
    HF_IMPORT_ERROR = traceback.format_exc()


def hf_selection(params):
    if not params.get('model') or not params.get('revision'):
        raise ModelInvalid('source=hf needs model (the repository id, org/name) and revision (a commit sha)')
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


def pull_hf(puller, version, selection, record, current, previous_version):
    """Hugging Face Hub through huggingface_hub: list the files of the commit, precheck, snapshot_download, verify, and
    promote through the puller (a ModelPull). The bytes on disk are counted for the progress file while it runs."""
    params = puller.params
    if not HAS_HF:
        raise ModelError('source=hf needs the Python library huggingface_hub on the target', 'missing_library')
    if not re.match(r'^[0-9a-f]{40}$', selection['revision']):
        puller.warnings.append('revision %s is not a commit sha: the version is pinned to what it points at now' % selection['revision'])
    staging = puller.store.staging_dir(version)
    api = huggingface_hub.HfApi(endpoint=params.get('endpoint'), token=params.get('token') or False)
    try:
        with hub_environment(puller.http):
            commit = selection['revision']
            if not re.match(r'^[0-9a-f]{40}$', commit):
                commit = api.repo_info(selection['repo'], revision=commit).sha
            tree = [f for f in api.list_repo_tree(selection['repo'], recursive=True, revision=commit)
                    if isinstance(f, huggingface_hub.hf_api.RepoFile)]
        tree = list(filter_repo_objects(tree, allow_patterns=selection['allow_patterns'],
                                        ignore_patterns=selection['ignore_patterns'], key=lambda f: f.path))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise ModelNetworkError(puller.http.redact('Hugging Face Hub: cannot list %s at %s: %s'
                                                   % (selection['repo'], selection['revision'], hf_error(exc)))) from None
    if not tree:
        raise ModelInvalid('no file of %s at %s matches allow_patterns/ignore_patterns' % (selection['repo'], commit))
    total = sum(f.size for f in tree)
    staged = 0
    for entry in tree:
        path = os.path.join(staging, entry.path)
        if os.path.isfile(path) and os.path.getsize(path) == entry.size:
            staged += entry.size
    to_transfer = total - staged
    puller.precheck(version, to_transfer)
    if puller.check_mode:
        result = puller.result_for(version, None, True, current if params['activate'] else previous_version,
                                   extra={'bytes_to_transfer': to_transfer, 'files_to_pull': [f.path for f in tree]})
        result.update({'size': total, 'revision': commit})
        return result
    os.makedirs(staging, mode=0o755, exist_ok=True)
    progress = puller.http.progress
    progress.set('downloading %d files through huggingface_hub' % len(tree), total=total)
    try:
        with StagingCounter(progress, staging, progress.interval), hub_environment(puller.http):
            huggingface_hub.snapshot_download(selection['repo'], revision=commit, local_dir=staging,
                                              allow_patterns=selection['allow_patterns'], ignore_patterns=selection['ignore_patterns'],
                                              endpoint=params.get('endpoint'), token=params.get('token') or False,
                                              max_workers=params.get('max_workers') or 8)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise ModelNetworkError(puller.http.redact('Hugging Face Hub: download of %s at %s failed: %s; what was downloaded '
                                                   'stays in %s' % (selection['repo'], commit, hf_error(exc), staging))) from None
    progress.pos = total
    progress.set('verifying')
    entries = []
    for entry in tree:
        path = os.path.join(staging, entry.path)
        sha256, blob = hash_file_and_blob(path)
        expected = entry.lfs.sha256 if entry.lfs is not None else None
        if (expected and sha256 != expected) or (not expected and entry.blob_id and blob != entry.blob_id):
            os.unlink(path)
            raise ModelCorrupt('checksum mismatch for %s of %s at %s: the file was discarded and the current version stays %s'
                               % (entry.path, selection['repo'], commit, current or '(none)'))
        entries.append({'path': entry.path, 'size': entry.size, 'sha256': sha256})
    shutil.rmtree(os.path.join(staging, '.cache'), ignore_errors=True)
    return puller.promote(staging, version, entries, {'source': 'hf', 'revision': commit, 'selection': selection},
                          record, current, previous_version, to_transfer, to_transfer)


@contextlib.contextmanager
def hub_environment(http):
    """huggingface_hub's HTTP client reads the proxy and CA settings from the environment: set them for the call (the
    proxies of the client, and one bundle of the system's certificates, the bundles the environment named, and the
    extra CA bundle)."""
    with proxy_environment(http.proxies):
        if not http.ca_path or not http.validate_certs:
            yield
            return
        with tempfile.TemporaryDirectory(prefix='model_pull-ca.') as tmp:
            bundle = os.path.join(tmp, 'ca-bundle.pem')
            names = ('REQUESTS_CA_BUNDLE', 'SSL_CERT_FILE', 'CURL_CA_BUNDLE')
            system = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
            sources = [system] + [os.environ.get(n) for n in names] + [http.ca_path]
            with open(bundle, 'wb') as out:
                for path in sorted(set(p for p in sources if p), key=sources.index):
                    if path and os.path.isfile(path):
                        with open(path, 'rb') as handle:
                            out.write(handle.read().rstrip(b'\n') + b'\n')
            with environment(dict((n, bundle) for n in names)):
                yield


def bytes_under(path):
    """Bytes of the files under `path` (what huggingface_hub has written so far, its .incomplete files included)."""
    total = 0
    for top, dummy, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


class StagingCounter(object):
    """Counts the bytes under the staging directory into the progress while huggingface_hub downloads (it reports to
    no caller): a thread that measures every few seconds."""

    def __init__(self, progress, staging, interval):
        self.progress = progress
        self.staging = staging
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name='model_pull-hf-progress', daemon=True)

    def run(self):
        while not self.stopping.wait(self.interval):
            self.progress.pos = bytes_under(self.staging)

    def __enter__(self):
        if self.progress.path:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        return False
