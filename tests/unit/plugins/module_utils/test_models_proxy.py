# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_pull behind a proxy and with an extra CA bundle (issue 19), and its progress file. A forward proxy (absolute
URIs and CONNECT) and the origins run on 127.0.0.1 only."""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import ipaddress
import json
import os
import select
import socket
import ssl
import stat
import threading

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _http_transfer as transfer
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient, ModelError, Progress, Redactor
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull, client_for, model_secrets

from test_models_integrity import A, TOKEN, params, sha, start, store

PROXY_USER = 'puser'
PROXY_PASSWORD = 'proxy-pw-6502'


class Proxy(http.server.ThreadingHTTPServer):
    """A forward proxy: GET/HEAD with an absolute URI are forwarded, CONNECT opens a tunnel. Records what it was sent."""

    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), ProxyHandler)
        self.requests = []  # (method, target, headers)

    @property
    def url(self):
        return 'http://%s:%s@127.0.0.1:%d' % (PROXY_USER, PROXY_PASSWORD, self.server_address[1])


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def authorised(self):
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        expected = 'Basic ' + base64.b64encode(('%s:%s' % (PROXY_USER, PROXY_PASSWORD)).encode()).decode()
        if self.headers.get('Proxy-Authorization') == expected:
            return True
        self.send_response(407)
        self.send_header('Proxy-Authenticate', 'Basic realm="lab"')
        self.send_header('Content-Length', '0')
        self.end_headers()
        return False

    def forward(self):
        if not self.authorised():
            return
        target = http.client.urlsplit(self.path)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ('proxy-authorization', 'proxy-connection'))
        conn.request(self.command, target.path + ('?' + target.query if target.query else ''), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ('connection', 'transfer-encoding', 'content-length'):
                self.send_header(key, value)
        self.send_header('Content-Length', resp.getheader('Content-Length') if self.command == 'HEAD' else str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)
        conn.close()

    do_GET = forward  # noqa: N815  pylint: disable=invalid-name
    do_HEAD = forward  # noqa: N815  pylint: disable=invalid-name

    def do_CONNECT(self):  # pylint: disable=invalid-name
        if not self.authorised():
            return
        host, port = self.path.rsplit(':', 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, 'Connection established')
        self.end_headers()
        sockets = [self.connection, upstream]
        while True:
            readable = select.select(sockets, [], [], 10)[0]
            if not readable:
                break
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    upstream.close()
                    return
                (upstream if sock is self.connection else self.connection).sendall(data)
        upstream.close()


@pytest.fixture
def proxy():
    srv = Proxy()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def origin():
    srv = start()
    srv.files['/m.bin'] = A
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'no_proxy', 'all_proxy'):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def pull(tmp_path, url, **kwargs):
    redact = Redactor(model_secrets(dict(kwargs, url=url)))
    client, args = client_for(dict(params(tmp_path, url=url, sha256=sha(A)), **kwargs), redact)
    return ModelPull(args, http_client=client, free_space=lambda path: 10 ** 12).run()


def test_pull_through_the_proxy_gets_proxy_credentials_to_the_proxy_only(tmp_path, proxy, origin):
    result = pull(tmp_path, origin.base + '/m.bin', http_proxy=proxy.url, token=TOKEN)
    assert result['changed'] and (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == A
    assert proxy.requests and all(target.startswith(origin.base) for method, target, headers in proxy.requests)
    assert origin.requests, 'the origin was not reached through the proxy'
    for method, path, headers in origin.requests:
        assert 'Proxy-Authorization' not in headers and headers.get('Authorization') == 'Bearer ' + TOKEN


def test_credentials_are_dropped_on_a_change_of_origin_behind_the_proxy(tmp_path, proxy, origin):
    other = start()
    try:
        other.files['/m.bin'] = A
        origin.redirects['/r.bin'] = other.base + '/m.bin'
        result = pull(tmp_path, origin.base + '/r.bin', http_proxy=proxy.url, token=TOKEN)
        assert result['changed']
        assert other.requests and all('Authorization' not in headers for method, path, headers in other.requests)
        assert [t for m, t, h in proxy.requests if t.startswith(other.base)], 'the redirect target did not go through the proxy'
    finally:
        other.shutdown()
        other.server_close()


def test_no_proxy_bypasses_the_proxy(tmp_path, proxy, origin):
    assert pull(tmp_path, origin.base + '/m.bin', http_proxy=proxy.url, no_proxy='127.0.0.1')['changed']
    assert proxy.requests == [] and origin.requests


def test_the_proxy_environment_applies_when_no_option_is_given(tmp_path, proxy, origin, monkeypatch):
    monkeypatch.setenv('http_proxy', proxy.url)
    assert pull(tmp_path, origin.base + '/m.bin')['changed']
    assert proxy.requests
    assert PROXY_PASSWORD in ' '.join(model_secrets({}))  # the environment's proxy password is masked too


def test_the_proxy_environment_is_restored_after_a_request(tmp_path, proxy, origin, monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')
    pull(tmp_path, origin.base + '/m.bin', http_proxy=proxy.url)
    assert os.environ.get('HTTPS_PROXY') == 'http://127.0.0.1:9' and 'http_proxy' not in os.environ


def test_a_refusing_proxy_fails_without_its_password(tmp_path, proxy, origin):
    wrong = proxy.url.replace(PROXY_PASSWORD, PROXY_PASSWORD + 'x')
    with pytest.raises(ModelError) as err:
        pull(tmp_path, origin.base + '/m.bin', http_proxy=wrong)
    assert '407' in err.value.msg and PROXY_PASSWORD not in err.value.msg and err.value.error_kind == 'network'
    dead = 'http://%s:%s@127.0.0.1:9' % (PROXY_USER, PROXY_PASSWORD)
    with pytest.raises(ModelError) as err:
        pull(tmp_path, origin.base + '/m.bin', http_proxy=dead)
    assert PROXY_PASSWORD not in str(err.value)


# -- https through CONNECT, and an extra CA bundle ------------------------------------------------------------

def site_ca_and_server_context(tmp_path):
    """A site CA and a server certificate for 127.0.0.1 signed by it (as a mirror inside a site would have)."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'lab site CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / 'site-ca.pem').write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / 'server.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / 'server.key').write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / 'server.pem'), str(tmp_path / 'server.key'))
    return str(tmp_path / 'site-ca.pem'), context


def test_https_through_connect_with_the_site_ca_bundle(tmp_path, proxy):
    ca_path, context = site_ca_and_server_context(tmp_path)
    tls = start(context)
    try:
        tls.files['/m.bin'] = A
        with pytest.raises(ModelError, match='CERTIFICATE_VERIFY_FAILED|certificate verify failed'):
            pull(tmp_path, tls.base + '/m.bin', https_proxy=proxy.url)  # the system's certificates only
        result = pull(tmp_path, tls.base + '/m.bin', https_proxy=proxy.url, ca_path=ca_path, token=TOKEN)
        assert result['changed'] and (store(tmp_path) / 'v1' / 'm.bin').read_bytes() == A
        assert [m for m, t, h in proxy.requests if m == 'CONNECT'], 'no tunnel through the proxy'
        assert all('Authorization' not in h for m, t, h in proxy.requests)  # the bearer token is inside the tunnel only
        assert tls.requests[-1][2].get('Authorization') == 'Bearer ' + TOKEN
    finally:
        tls.shutdown()
        tls.server_close()


def test_an_unreadable_ca_bundle_is_a_clear_error(tmp_path):
    (tmp_path / 'bad.pem').write_text('not a certificate')
    with pytest.raises(ModelError, match='ca_path .* is not a readable PEM CA bundle'):
        HttpClient(ca_path=str(tmp_path / 'bad.pem'))


# -- progress file ----------------------------------------------------------------------------------------------

def test_progress_file_is_private_and_says_done(tmp_path, origin):
    path = tmp_path / 'progress.json'
    progress = Progress(str(path), interval=1, name='llama', version='v1')
    client = HttpClient(timeout=5, retries=0, progress=progress, headers={'Authorization': 'Bearer ' + TOKEN})
    url = origin.base.replace('http://', 'http://u:url-pw-1234@') + '/m.bin?X-Amz-Signature=sig-4321'
    result = ModelPull(params(tmp_path, url=url, sha256=sha(A)), http_client=client, free_space=lambda p: 10 ** 12).run()
    assert result['changed']
    data = json.loads(path.read_text())
    assert data['state'] == 'done' and data['bytes_done'] == len(A) == data['bytes_total'] and data['name'] == 'llama'
    assert 'llama v1' in data['line'] and '100%' in data['line']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    for secret in ('url-pw-1234', 'sig-4321', TOKEN, '127.0.0.1'):
        assert secret not in text


def test_progress_file_says_failed(tmp_path, origin):
    path = tmp_path / 'progress.json'
    client = HttpClient(timeout=5, retries=0, progress=Progress(str(path), interval=1, name='llama', version='v1'))
    with pytest.raises(ModelError):
        ModelPull(params(tmp_path, url=origin.base + '/m.bin', sha256='0' * 64), http_client=client,
                  free_space=lambda p: 10 ** 12).run()
    assert json.loads(path.read_text())['state'] == 'failed'


def test_progress_line_has_rate_and_eta():
    clock = [100.0]
    progress = Progress('/nonexistent-dir/p.json', interval=5, name='m', version='v2', now=lambda: clock[0])
    progress.total = 10 * 1024 ** 3
    progress.phase = 'downloading 1 file'
    progress.snapshot()
    clock[0] += 10
    progress.pos = 1024 ** 3
    data = progress.snapshot()
    assert data['rate'] == 1024 ** 3 // 10 and data['eta'] == 90
    assert data['line'] == 'm v2: downloading 1 file, 1.0 GiB of 10.0 GiB (10%), 102.4 MiB/s, ETA 1 min 30 s, 10 s elapsed'
    progress.write()  # an unwritable path never fails the pull


def test_progress_is_counted_in_the_transfer_loops(tmp_path, origin, monkeypatch):
    seen = []

    class Recording(Progress):
        def file_done(self, size):
            seen.append(self.pos)
            super().file_done(size)

    for splice in (True, False):
        monkeypatch.setattr(transfer, 'SPLICE', splice)
        client = HttpClient(timeout=5, retries=0, progress=Recording(None))
        ModelPull(params(tmp_path / str(splice), url=origin.base + '/m.bin', sha256=sha(A)), http_client=client,
                  free_space=lambda p: 10 ** 12).run()
    assert seen == [len(A), len(A)]


def test_huggingface_hub_gets_the_proxies_and_a_bundle_with_the_site_ca(tmp_path, monkeypatch):
    """huggingface_hub's HTTP client reads proxies and CA bundles from the environment: set for its calls, then restored."""
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _huggingface as hf  # pylint: disable=import-outside-toplevel
    ca_path, dummy = site_ca_and_server_context(tmp_path)
    monkeypatch.setenv('SSL_CERT_FILE', '/before')
    before = os.environ.get('REQUESTS_CA_BUNDLE')
    client = HttpClient(proxies={'https_proxy': 'http://127.0.0.1:3128', 'no_proxy': 'localhost'}, ca_path=ca_path)
    with hf.hub_environment(client):
        assert os.environ['https_proxy'] == 'http://127.0.0.1:3128' and os.environ['no_proxy'] == 'localhost'
        bundle = open(os.environ['REQUESTS_CA_BUNDLE']).read()
        assert os.environ['SSL_CERT_FILE'] == os.environ['REQUESTS_CA_BUNDLE']
        assert open(ca_path).read().strip() in bundle and bundle.count('BEGIN CERTIFICATE') > 1  # the system's too
    assert os.environ['SSL_CERT_FILE'] == '/before' and os.environ.get('REQUESTS_CA_BUNDLE') == before
    assert 'https_proxy' not in os.environ
