# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_pull integrity (issue 11): lock, on-disk verification, If-Range resume, size cap, ENOSPC, names, redirects,
redacted manifests. Servers on 127.0.0.1 only."""

from __future__ import annotations

import datetime
import errno
import hashlib
import http.server
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _http_transfer as transfer
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _model_store as store_module
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient, ModelError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull

A = os.urandom(3 * 1024 * 1024 + 11)
B = os.urandom(3 * 1024 * 1024 + 11)
TOKEN = 'tok-integrity-5150'
ROOT = Path(__file__).resolve().parents[4]
LAB_SERVER = ROOT / 'tests' / 'lab' / 'model_sources' / 'model_source_server.py'


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Server(http.server.ThreadingHTTPServer):
    """Files with ETag, Range and If-Range, and knobs for the faults of issue 11."""

    daemon_threads = True

    def __init__(self, tls=None):
        super().__init__(('127.0.0.1', 0), Handler)
        self.files = {}
        self.redirects = {}  # path -> Location
        self.requests = []  # (method, path, headers dict)
        self.cut_after = None
        self.no_length = False  # close-delimited bodies (no Content-Length)
        self.extra = b''  # bytes sent after the file (with no_length)
        self.honour_if_range = True
        self.scheme = 'http'
        if tls:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = 'https'

    @property
    def base(self):
        return '%s://127.0.0.1:%d' % (self.scheme, self.server_address[1])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def do_HEAD(self):  # pylint: disable=invalid-name
        self.serve(head=True)

    def do_GET(self):  # pylint: disable=invalid-name
        self.serve(head=False)

    def serve(self, head):
        srv = self.server
        srv.requests.append((self.command, self.path, dict(self.headers)))
        if self.path in srv.redirects:
            self.send_response(302)
            self.send_header('Location', srv.redirects[self.path])
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        data = srv.files.get(self.path.split('?', 1)[0])
        if data is None:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        etag = '"%s"' % sha(data)[:16]
        start = 0
        rng = self.headers.get('Range')
        if rng and (not srv.honour_if_range or self.headers.get('If-Range', etag) == etag):
            start = int(rng.split('=')[1].split('-')[0])
            self.send_response(206)
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        if srv.no_length:
            self.send_header('Connection', 'close')
            self.close_connection = True
        else:
            self.send_header('Content-Length', str(len(data) - start))
        self.send_header('ETag', etag)
        self.end_headers()
        if head:
            return
        body = data[start:] + (srv.extra if srv.no_length else b'')
        if srv.cut_after is not None:
            body, srv.cut_after = body[:srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()


def start(tls=None):
    srv = Server(tls)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def server():
    srv = start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def other():
    srv = start()
    yield srv
    srv.shutdown()
    srv.server_close()


def params(tmp_path, **kwargs):
    base = dict(name='llama', version='v1', source='http', url=None, sha256=None, files=None, dest_root=str(tmp_path / 'models'),
                keep=1, state='present', activate=True, verify='quick', free_space_margin=0, timeout=5, retries=0)
    base.update(kwargs)
    return base


def pull(tmp_path, retries=0, headers=None, **kwargs):
    client = HttpClient(retries=max(retries, 0), backoff=0.01, timeout=5, headers=headers, secrets=[TOKEN])
    return ModelPull(params(tmp_path, retries=retries, **kwargs), http_client=client, free_space=lambda path: 10 ** 12).run()


def store(tmp_path):
    return tmp_path / 'models' / 'llama'


def staging(tmp_path):
    return store(tmp_path) / '.staging' / 'v1'


# -- resume only with If-Range ------------------------------------------------------------------------------

def test_partial_of_an_older_upstream_file_is_not_resumed(tmp_path, server):
    """Run 1 is cut while the server has A; the server now has B (new ETag): run 2 must start again from 0."""
    server.files['/m.bin'] = A
    server.cut_after = 1024 * 1024
    with pytest.raises(ModelError, match='next run resumes'):
        pull(tmp_path, url=server.base + '/m.bin', sha256=sha(B))
    assert (staging(tmp_path) / 'm.bin.partial').stat().st_size == 1024 * 1024
    server.files['/m.bin'] = B
    server.requests.clear()
    result = pull(tmp_path, url=server.base + '/m.bin', sha256=sha(B))
    assert result['changed'] and (store(tmp_path) / 'current' / 'm.bin').read_bytes() == B
    gets = [h for m, p, h in server.requests if m == 'GET']
    assert gets[0].get('If-Range') == '"%s"' % sha(A)[:16]  # the validator of the partial's origin, not of the new file
    assert result['bytes_transferred'] == len(B)


def test_a_206_of_changed_content_restarts_from_zero(tmp_path, server):
    """A server that ignores If-Range answers 206 with another ETag: the partial is dropped, not appended to."""
    server.files['/m.bin'] = A
    server.cut_after = 1024 * 1024
    with pytest.raises(ModelError):
        pull(tmp_path, url=server.base + '/m.bin', sha256=sha(B))
    server.files['/m.bin'] = B
    server.honour_if_range = False
    result = pull(tmp_path, url=server.base + '/m.bin', sha256=sha(B), retries=1)
    assert (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == B and result['changed']


def test_partial_without_recorded_validator_is_not_resumed(tmp_path, server):
    server.files['/m.bin'] = B
    staging(tmp_path).mkdir(parents=True)
    (staging(tmp_path) / 'm.bin.partial').write_bytes(A[:1000])  # from an unknown origin
    server.requests.clear()
    pull(tmp_path, url=server.base + '/m.bin', sha256=sha(B))
    assert all('Range' not in h for m, p, h in server.requests)
    assert (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == B


def test_partial_meta_is_private_and_redacted(tmp_path, server):
    server.files['/m.bin'] = A
    server.cut_after = 1024
    url = server.base.replace('http://', 'http://user:pw-secret-77@') + '/m.bin?X-Amz-Signature=sig-secret-88'
    with pytest.raises(ModelError) as err:
        pull(tmp_path, url=url, sha256=sha(A))
    assert 'pw-secret-77' not in str(err.value) and 'sig-secret-88' not in str(err.value)
    meta = staging(tmp_path) / 'm.bin.partial.meta'
    assert oct(meta.stat().st_mode & 0o777) == '0o600'
    text = meta.read_text()
    assert 'pw-secret-77' not in text and 'sig-secret-88' not in text and '/m.bin' in text


# -- size cap, ENOSPC ---------------------------------------------------------------------------------------

def test_no_content_length_stops_at_the_pinned_size(tmp_path, server):
    server.files['/m.bin'] = A
    server.no_length = True
    server.extra = b'X' * 4096
    files = [{'url': server.base + '/m.bin', 'sha256': sha(A), 'size': len(A)}]
    with pytest.raises(ModelError, match='more than the expected size'):
        pull(tmp_path, files=files)
    assert not os.path.exists(str(staging(tmp_path) / 'm.bin.partial'))
    assert not os.path.lexists(str(store(tmp_path) / 'current'))


def test_no_content_length_with_the_pinned_size_succeeds(tmp_path, server):
    server.files['/m.bin'] = A
    server.no_length = True
    result = pull(tmp_path, files=[{'url': server.base + '/m.bin', 'sha256': sha(A), 'size': len(A)}])
    assert result['changed'] and (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == A


@pytest.mark.parametrize('path', ['copy', 'splice'])
def test_enospc_removes_the_partial_and_fails_clearly(tmp_path, server, monkeypatch, path):
    server.files['/m.bin'] = A
    calls = []
    name = 'write_all' if path == 'copy' else 'splice_out'
    real = getattr(transfer, name)

    def full_disk(fd, *args):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, *args)
    monkeypatch.setattr(transfer, name, full_disk)
    monkeypatch.setattr(transfer, 'SPLICE', path == 'splice')
    monkeypatch.setattr(transfer, 'BUFFER', 1024 * 1024)
    with pytest.raises(ModelError, match='no space left.*partial download was removed'):
        pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A), retries=3)
    assert not os.path.exists(str(staging(tmp_path) / 'm.bin.partial'))
    assert not os.path.exists(str(staging(tmp_path) / 'm.bin.partial.meta'))
    assert len(calls) == 2  # not retried


# -- verify on disk -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('path', ['copy', 'splice'])
def test_the_hash_is_of_the_file_on_disk_not_of_the_stream(tmp_path, server, monkeypatch, path):
    """A write that lands other bytes on disk than were received (here: a flipped byte) is caught."""
    server.files['/m.bin'] = A
    state = {'done': False}

    def flip(data):
        data = bytearray(data)
        if not state['done'] and len(data) > 100:
            data[100] ^= 0xff
            state['done'] = True
        return data

    def corrupting_write(fd, view):
        return transfer.os.write(fd, flip(view)) and None

    def corrupting_splice(pipe, fd, count):
        data = b''
        while len(data) < count:
            data += os.read(pipe, count - len(data))
        os.write(fd, flip(data))
    monkeypatch.setattr(transfer, 'SPLICE', path == 'splice')
    if path == 'copy':
        monkeypatch.setattr(transfer, 'write_all', corrupting_write)
    else:
        monkeypatch.setattr(transfer, 'splice_out', corrupting_splice)
    with pytest.raises(ModelError, match='checksum mismatch.*the file on disk has'):
        pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A))
    assert not os.path.lexists(str(store(tmp_path) / 'current'))
    assert not (store(tmp_path) / 'v1').exists()


def test_plain_http_bodies_are_spliced_and_verified(tmp_path, server, monkeypatch):
    server.files['/m.bin'] = A
    calls = []
    real = transfer.splice_out

    def counting(pipe, fd, count):
        calls.append(count)
        return real(pipe, fd, count)
    monkeypatch.setattr(transfer, 'splice_out', counting)
    result = pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A))
    assert result['changed'] and (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == A
    if transfer.SPLICE:
        assert sum(calls) > len(A) // 2


def test_a_complete_partial_is_rehashed_from_disk(tmp_path, server):
    server.files['/m.bin'] = A
    staging(tmp_path).mkdir(parents=True)
    (staging(tmp_path) / 'm.bin.partial').write_bytes(A[:-1] + b'?')
    store_module.write_private_json(str(staging(tmp_path) / 'm.bin.partial.meta'),
                                    {'url': server.base + '/m.bin', 'etag': '"%s"' % sha(A)[:16], 'sha256': sha(A), 'size': len(A)})
    with pytest.raises(ModelError, match='checksum mismatch'):
        pull(tmp_path, files=[{'url': server.base + '/m.bin', 'sha256': sha(A), 'size': len(A)}])
    assert not os.path.lexists(str(store(tmp_path) / 'current'))


# -- names ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('version', ['state.json', 'state', 'current', 'CURRENT', '..', '.', 'a/b', '/abs', 'x.partial',
                                     '.staging', 'v1.tmp', 'm.lock', '', 'a b', 'v\n1', 'ü', 'x' * 129])
def test_reserved_or_unsafe_version_names_are_refused(tmp_path, server, version):
    server.files['/m.bin'] = A
    with pytest.raises(ModelError, match='not usable as a directory name'):
        pull(tmp_path, version=version, url=server.base + '/m.bin', sha256=sha(A))
    assert not (tmp_path / 'models').exists()


@pytest.mark.parametrize('version', ['v1', '2026-11-01', '1.0+cu12', 'a09a3545', 'R_2'])
def test_ordinary_version_names_pass(version):
    store_module.check_version_name(version)


def test_state_json_version_cannot_break_the_store(tmp_path, server):
    server.files['/m.bin'] = A
    pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A))
    with pytest.raises(ModelError):
        pull(tmp_path, version='state.json', url=server.base + '/m.bin', sha256=sha(A))
    assert pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A))['changed'] is False


# -- URLs and redirects -------------------------------------------------------------------------------------

@pytest.mark.parametrize('url, message', [
    ('not a url', 'not a usable URL'), ('file:///etc/passwd', 'only http'), ('ftp://127.0.0.1/x', 'only http'),
    ('http://', 'no host'), ('http://127.0.0.1:99999/x', 'not a usable URL'), ('//127.0.0.1/x', 'only http'),
    ('http://127.0.0.1/ü', 'non-ASCII'),
])
def test_only_http_urls(tmp_path, url, message):
    with pytest.raises(ModelError, match=message):
        pull(tmp_path, url=url, sha256='0' * 64)
    assert not (tmp_path / 'models').exists()


def test_credentials_are_dropped_on_a_cross_origin_redirect(tmp_path, server, other):
    other.files['/m.bin'] = A
    server.redirects['/m.bin'] = other.base + '/m.bin'
    headers = {'Authorization': 'Bearer ' + TOKEN, 'X-Api-Key': 'key-' + TOKEN}
    result = pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A), headers=headers)
    assert result['changed']
    first = [h for m, p, h in server.requests]
    assert first and all(h.get('Authorization') == 'Bearer ' + TOKEN for h in first)
    seen = [h for m, p, h in other.requests]
    assert seen and not any('Authorization' in h or 'X-Api-Key' in h for h in seen)


def test_credentials_are_kept_on_a_same_origin_redirect(tmp_path, server):
    server.files['/real.bin'] = A
    server.redirects['/m.bin'] = '/real.bin'
    pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A), headers={'Authorization': 'Bearer ' + TOKEN})
    assert all(h.get('Authorization') == 'Bearer ' + TOKEN for m, p, h in server.requests)


def self_signed(tmp_path):
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / 'cert.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / 'key.pem').write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem'))
    return context


def test_https_to_http_redirect_is_refused_and_sends_nothing(tmp_path, other):
    other.files['/m.bin'] = A
    tls = start(self_signed(tmp_path))
    try:
        tls.redirects['/m.bin'] = other.base + '/m.bin'
        client = HttpClient(retries=0, timeout=5, validate_certs=False, headers={'Authorization': 'Bearer ' + TOKEN}, secrets=[TOKEN])
        with pytest.raises(ModelError, match='from https to plain http.*refused'):
            ModelPull(params(tmp_path, url=tls.base + '/m.bin', sha256=sha(A)), http_client=client,
                      free_space=lambda path: 10 ** 12).run()
        assert tls.requests and other.requests == []
    finally:
        tls.shutdown()
        tls.server_close()


def test_https_bodies_are_not_spliced(tmp_path, monkeypatch):
    """The socket of a TLS connection carries cipher text: an https body goes through Python (and is correct)."""
    monkeypatch.setattr(transfer, 'splice_out', lambda *args: pytest.fail('a TLS body was spliced'))
    tls = start(self_signed(tmp_path))
    try:
        tls.files['/m.bin'] = A
        client = HttpClient(retries=0, timeout=5, validate_certs=False)
        result = ModelPull(params(tmp_path, url=tls.base + '/m.bin', sha256=sha(A)), http_client=client,
                           free_space=lambda path: 10 ** 12).run()
        assert result['changed'] and (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == A
    finally:
        tls.shutdown()
        tls.server_close()


# -- manifests ------------------------------------------------------------------------------------------------

def test_manifest_records_redacted_urls_and_is_private(tmp_path, server):
    server.files['/m.bin'] = A
    url = server.base.replace('http://', 'http://user:pw-secret-77@') + '/m.bin?X-Amz-Signature=sig-secret-88'
    result = pull(tmp_path, url=url, sha256=sha(A))
    manifest_path = store(tmp_path) / 'v1' / '.manifest.json'
    text = manifest_path.read_text()
    assert 'pw-secret-77' not in text and 'sig-secret-88' not in text and 'user@' not in text
    assert json.loads(text)['files'][0]['url'] == server.base + '/m.bin?redacted'
    assert oct(manifest_path.stat().st_mode & 0o777) == '0o600'
    assert 'pw-secret-77' not in json.dumps(result) and 'sig-secret-88' not in json.dumps(result)
    assert oct((store(tmp_path) / 'v1' / 'm.bin').stat().st_mode & 0o044) == '0o44'  # the model stays readable


# -- ranges ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('key, value', [('keep', -1), ('free_space_margin', -1), ('timeout', 0), ('retries', -1),
                                        ('max_workers', 0), ('lock_timeout', -5), ('keep', 10 ** 6)])
def test_ranges_are_checked_before_any_change(tmp_path, server, key, value):
    server.files['/m.bin'] = A
    with pytest.raises(ModelError, match=key):
        pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A), **{key: value})
    assert not (tmp_path / 'models').exists() and server.requests == []


# -- lock and concurrency -------------------------------------------------------------------------------------

def test_a_second_run_waits_for_the_lock_then_is_a_no_op(tmp_path, server):
    server.files['/m.bin'] = A
    holder = store_module.StoreLock(str(tmp_path / 'models'), 'llama')
    with holder:
        with pytest.raises(ModelError, match='holds .*llama.lock.*pid %d' % os.getpid()):
            pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A), lock_timeout=0)
    assert server.requests == []
    assert pull(tmp_path, url=server.base + '/m.bin', sha256=sha(A))['changed']


CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient, ModelError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull
params = json.loads(sys.argv[2])
try:
    result = ModelPull(params, http_client=HttpClient(timeout=30, retries=0)).run()
    print(json.dumps({'changed': result['changed'], 'bytes': result['bytes_transferred']}))
except ModelError as exc:
    print(json.dumps({'failed': str(exc)}))
'''


def test_two_processes_pulling_the_same_version_end_with_one_verified_current(tmp_path):
    """Two real processes against the lab model source (slowed down so that they overlap) on 127.0.0.1."""
    spec = importlib.util.spec_from_file_location('model_source_server', str(LAB_SERVER))
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    (tmp_path / 'src' / 'files').mkdir(parents=True)
    (tmp_path / 'src' / 'files' / 'm.bin').write_bytes(A)
    srv = lab.start_in_background(tmp_path / 'src', slow=0.3)
    try:
        url = 'http://127.0.0.1:%d/files/m.bin' % srv.server_address[1]
        args = json.dumps(params(tmp_path, url=url, sha256=sha(A), timeout=30))
        collections = str(ROOT / 'build' / 'collections')
        procs = [subprocess.Popen([sys.executable, '-c', CHILD, collections, args], stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                  stderr=subprocess.PIPE, text=True) for dummy in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        srv.shutdown()
        srv.server_close()
    results = [json.loads(out.strip().splitlines()[-1]) for out, err in outs]
    assert all('failed' not in r for r in results), (results, [err for out, err in outs])
    assert sorted(r['changed'] for r in results) == [False, True]  # one pulled, the other found it verified
    assert sorted(r['bytes'] for r in results) == [0, len(A)]
    assert os.readlink(str(store(tmp_path) / 'current')) == 'v1'
    assert (store(tmp_path) / 'current' / 'm.bin').read_bytes() == A
    assert not list((store(tmp_path) / '.staging').rglob('*.partial'))


def test_an_empty_file_is_pulled_and_verified(tmp_path, server):
    """A zero-byte file (announced as 0 bytes) used to fail with ENOENT on the .partial that was never written."""
    server.files['/empty.txt'] = b''
    result = pull(tmp_path, url=server.base + '/empty.txt', sha256=sha(b''))
    assert result['changed'] and (store(tmp_path) / 'v1' / 'empty.txt').read_bytes() == b''
