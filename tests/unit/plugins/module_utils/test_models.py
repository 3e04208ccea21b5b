# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _model_store as store_module
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _models as models
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient, ModelError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull

WEIGHTS_V1 = os.urandom(3 * 1024 * 1024 + 17)
WEIGHTS_V2 = os.urandom(2 * 1024 * 1024 + 5)
CONFIG = b'{"arch": "test"}\n'
TOKEN = 'hf_secret_token_value'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class FileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), Handler)
        self.files = {'/v1/model.bin': WEIGHTS_V1, '/v2/model.bin': WEIGHTS_V2, '/v1/config.json': CONFIG,
                      '/private/model.bin': WEIGHTS_V2}
        self.cut_after = None  # bytes: close the connection once after sending that many
        self.requests = []

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def _body(self):
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get('Range')))
        if self.path.startswith('/private/') and self.headers.get('Authorization') != 'Bearer ' + TOKEN:
            self.send_response(401)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return None, None
        data = server.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return None, None
        etag = '"%s"' % sha(data)[:16]
        start = 0
        rng = self.headers.get('Range')
        if rng and self.headers.get('If-Range', etag) == etag:
            start = int(rng.split('=')[1].split('-')[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return None, None
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(data) - start))
        self.send_header('ETag', etag)
        self.send_header('Accept-Ranges', 'bytes')
        self.end_headers()
        return data, start

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._body()

    def do_GET(self):  # pylint: disable=invalid-name
        data, start = self._body()
        if data is None:
            return
        body = data[start:]
        cut = self.server.cut_after
        if cut is not None:
            self.server.cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def params(tmp_path, **kwargs):
    base = dict(name='llama', version='v1', source='http', url=None, sha256=None, files=None, dest_root=str(tmp_path / 'models'),
                keep=1, state='present', activate=True, verify='quick', free_space_margin=0)
    base.update(kwargs)
    return base


def pull(tmp_path, server, check_mode=False, free=10 ** 12, retries=2, **kwargs):
    client = HttpClient(retries=retries, backoff=0.01, timeout=5, secrets=[TOKEN],
                        headers=kwargs.pop('headers', None))
    return ModelPull(params(tmp_path, **kwargs), check_mode=check_mode, http_client=client, free_space=lambda path: free).run()


def v1(server):
    return dict(version='v1', url=server.base + '/v1/model.bin', sha256=sha(WEIGHTS_V1))


def v2(server):
    return dict(version='v2', url=server.base + '/v2/model.bin', sha256=sha(WEIGHTS_V2))


def current(tmp_path):
    return os.readlink(str(tmp_path / 'models' / 'llama' / 'current'))


def test_pull_first_version_makes_it_current(tmp_path, server):
    result = pull(tmp_path, server, **v1(server))
    assert result['changed'] and result['version'] == 'v1'
    assert result['bytes_transferred'] == len(WEIGHTS_V1) == result['size']
    assert result['previous_version'] is None
    assert current(tmp_path) == 'v1'
    with open(str(tmp_path / 'models' / 'llama' / 'current' / 'model.bin'), 'rb') as handle:
        assert handle.read() == WEIGHTS_V1
    manifest = json.loads((tmp_path / 'models' / 'llama' / 'v1' / '.manifest.json').read_text())
    assert manifest['files'][0]['sha256'] == sha(WEIGHTS_V1)
    assert result['digest'] == manifest['digest'] and result['digest'].startswith('sha256:')
    assert not os.listdir(str(tmp_path / 'models' / 'llama' / '.staging'))


def test_several_files_with_paths(tmp_path, server):
    files = [{'url': server.base + '/v1/model.bin', 'sha256': sha(WEIGHTS_V1), 'path': 'weights/model.bin', 'size': None},
             {'url': server.base + '/v1/config.json', 'sha256': 'sha256:' + sha(CONFIG), 'path': None, 'size': None}]
    result = pull(tmp_path, server, files=files)
    assert sorted(f['path'] for f in result['files']) == ['config.json', 'weights/model.bin']
    assert (tmp_path / 'models' / 'llama' / 'v1' / 'weights' / 'model.bin').stat().st_size == len(WEIGHTS_V1)


def test_noop_rerun_is_fast_and_reads_no_file(tmp_path, server, monkeypatch):
    pull(tmp_path, server, **v1(server))
    server.requests.clear()
    for where in (models, store_module):
        monkeypatch.setattr(where, 'sha256_file', lambda path: pytest.fail('re-hashed %s' % path))
    result = pull(tmp_path, server, **v1(server))
    assert not result['changed'] and result['bytes_transferred'] == 0
    assert server.requests == []
    assert result['duration'] < 1


def test_verify_full_rehashes_and_finds_corruption(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    pull(tmp_path, server, **v2(server))
    path = tmp_path / 'models' / 'llama' / 'v1' / 'model.bin'
    data = bytearray(path.read_bytes())
    data[10] ^= 0xff
    path.write_bytes(bytes(data))
    assert not pull(tmp_path, server, **v2(server), verify='full')['changed']
    result = pull(tmp_path, server, **v1(server), verify='full')  # damaged and not current: downloaded again
    assert result['changed'] and result['bytes_transferred'] == len(WEIGHTS_V1)
    assert path.read_bytes() == WEIGHTS_V1 and current(tmp_path) == 'v1'


def test_resume_after_cut_connection(tmp_path, server):
    server.cut_after = 1024 * 1024
    result = pull(tmp_path, server, **v1(server))
    assert result['changed'] and current(tmp_path) == 'v1'
    ranges = [r for m, p, r in server.requests if m == 'GET']
    assert ranges == [None, 'bytes=%d-' % (1024 * 1024)]
    assert result['bytes_transferred'] == len(WEIGHTS_V1)


def test_interrupted_run_resumes_in_the_next_run(tmp_path, server):
    server.cut_after = 1024 * 1024
    with pytest.raises(ModelError, match='next run resumes'):
        pull(tmp_path, server, retries=0, **v1(server))
    partial = tmp_path / 'models' / 'llama' / '.staging' / 'v1' / 'model.bin.partial'
    assert partial.stat().st_size == 1024 * 1024
    assert not os.path.lexists(str(tmp_path / 'models' / 'llama' / 'current'))
    result = pull(tmp_path, server, **v1(server))
    assert result['bytes_transferred'] == len(WEIGHTS_V1) - 1024 * 1024
    assert (tmp_path / 'models' / 'llama' / 'v1' / 'model.bin').read_bytes() == WEIGHTS_V1


def test_checksum_mismatch_rejected_and_current_unchanged(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    bad = v2(server)
    bad['sha256'] = '0' * 64
    with pytest.raises(ModelError, match='checksum mismatch.*current version stays v1'):
        pull(tmp_path, server, **bad)
    assert current(tmp_path) == 'v1'
    assert not (tmp_path / 'models' / 'llama' / 'v2').exists()
    assert not (tmp_path / 'models' / 'llama' / '.staging' / 'v2' / 'model.bin.partial').exists()


def test_too_little_disk_refused_before_any_byte(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    server.requests.clear()
    with pytest.raises(ModelError, match='not enough disk space.*nothing was downloaded'):
        pull(tmp_path, server, free=len(WEIGHTS_V2) - 1, **v2(server))
    assert [m for m, p, r in server.requests] == ['HEAD']
    assert not (tmp_path / 'models' / 'llama' / '.staging' / 'v2').exists()
    assert current(tmp_path) == 'v1'


def test_disk_space_uses_statvfs(tmp_path, server, monkeypatch):
    class Stat(object):
        f_bavail = 10
        f_frsize = 4096
    monkeypatch.setattr(store_module.os, 'statvfs', lambda path: Stat())
    client = HttpClient(retries=0, timeout=5)
    with pytest.raises(ModelError, match='not enough disk space'):
        ModelPull(params(tmp_path, **v1(server)), http_client=client).run()
    assert os.listdir(str(tmp_path / 'models')) == ['.llama.lock']  # the store root and the model's lock, nothing else


def test_source_404(tmp_path, server):
    with pytest.raises(ModelError, match='HTTP 404.*not found'):
        pull(tmp_path, server, version='v1', url=server.base + '/nope.bin', sha256=sha(b''))


def test_bad_token_clear_error_without_the_token(tmp_path, server):
    url = server.base + '/private/model.bin?token=' + TOKEN
    with pytest.raises(ModelError) as err:
        pull(tmp_path, server, version='v1', url=url, sha256=sha(WEIGHTS_V2), headers={'Authorization': 'Bearer wrong'})
    assert 'HTTP 401' in str(err.value) and 'check the token' in str(err.value)
    assert TOKEN not in str(err.value)
    result = pull(tmp_path, server, version='v1', url=server.base + '/private/model.bin', sha256=sha(WEIGHTS_V2),
                  headers={'Authorization': 'Bearer ' + TOKEN})
    assert result['changed']


def test_check_mode_reports_bytes_and_changes_nothing(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    result = pull(tmp_path, server, check_mode=True, **v2(server))
    assert result['changed'] and result['bytes_to_transfer'] == len(WEIGHTS_V2)
    assert result['files_to_pull'] == ['model.bin'] and result['previous_version'] == 'v1'
    assert current(tmp_path) == 'v1' and not (tmp_path / 'models' / 'llama' / 'v2').exists()
    assert [m for m, p, r in server.requests if m == 'GET'] == ['GET']  # only the v1 pull


def test_previous_rolls_back_and_gc_keeps_n(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    result = pull(tmp_path, server, **v2(server))
    assert result['previous_version'] == 'v1' and current(tmp_path) == 'v2'
    result = ModelPull(params(tmp_path, state='previous', version=None)).run()
    assert result['changed'] and result['version'] == 'v1' and current(tmp_path) == 'v1'
    assert result['previous_version'] == 'v2'
    # a third version with keep=1: v2 stays (previous), nothing older exists
    server.files['/v3/model.bin'] = CONFIG
    pull(tmp_path, server, version='v3', url=server.base + '/v3/model.bin', sha256=sha(CONFIG))
    versions = sorted(store_module.ModelStore(str(tmp_path / 'models'), 'llama').versions())
    assert versions == ['v1', 'v3']  # v2 was the oldest besides the previous (v1): collected
    result = pull(tmp_path, server, version='v4', url=server.base + '/v1/config.json', sha256=sha(CONFIG), keep=0)
    assert result['removed_versions'] == ['v3'] or result['removed_versions'] == ['v1', 'v3']
    assert store_module.ModelStore(str(tmp_path / 'models'), 'llama').versions() == ['v4']


def test_switch_back_to_present_version_without_download(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    pull(tmp_path, server, **v2(server))
    server.requests.clear()
    result = pull(tmp_path, server, **v1(server))
    assert result['changed'] and result['bytes_transferred'] == 0 and current(tmp_path) == 'v1'
    assert server.requests == []


def test_versions_are_immutable(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    with pytest.raises(ModelError, match='immutable'):
        pull(tmp_path, server, version='v1', url=server.base + '/v2/model.bin', sha256=sha(WEIGHTS_V2))


def test_absent(tmp_path, server):
    pull(tmp_path, server, **v1(server))
    pull(tmp_path, server, **v2(server))
    with pytest.raises(ModelError, match='current version'):
        ModelPull(params(tmp_path, state='absent', version='v2')).run()
    assert ModelPull(params(tmp_path, state='absent', version='v1')).run()['changed']
    assert not ModelPull(params(tmp_path, state='absent', version='v1')).run()['changed']
    assert ModelPull(params(tmp_path, state='absent', version=None)).run()['changed']
    assert not (tmp_path / 'models' / 'llama').exists()


def test_previous_without_record(tmp_path):
    with pytest.raises(ModelError, match='no previous version'):
        ModelPull(params(tmp_path, state='previous', version=None)).run()


@pytest.mark.parametrize('kwargs, message', [
    ({'url': 'http://127.0.0.1:9/x.bin', 'sha256': 'abc'}, 'sha256 must be'),
    ({'files': [{'url': 'http://127.0.0.1:9/x', 'sha256': '0' * 64, 'path': '../x'}]}, 'invalid file path'),
    ({'version': '../etc', 'url': 'http://127.0.0.1:9/x.bin', 'sha256': '0' * 64}, 'not usable'),
    ({}, 'needs url'),
])
def test_invalid_input(tmp_path, kwargs, message):
    with pytest.raises(ModelError, match=message):
        ModelPull(params(tmp_path, **kwargs)).run()


def test_switch_is_a_rename_of_a_symlink(tmp_path):
    store = store_module.ModelStore(str(tmp_path), 'm')
    os.makedirs(store.version_dir('a'))
    os.makedirs(store.version_dir('b'))
    store.switch('a')
    store.switch('b')
    assert os.readlink(store.current_link) == 'b'
    assert sorted(os.listdir(store.dir)) == ['a', 'b', 'current']
