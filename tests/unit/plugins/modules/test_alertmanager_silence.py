# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""alertmanager_silence against the REAL Alertmanager: Debian 12's prometheus-alertmanager (0.25.0, installed on the
host by tools/ensure-host.sh), run as a plain process on 127.0.0.1 with a temporary storage dir, a minimal config and
a free port; started and stopped by the `alertmanager` fixture (bounded wait for /-/ready)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _alertmanager as am
from ansible_collections.onprem_ai.maintenance.plugins.modules import alertmanager_silence

BINARY = '/usr/bin/prometheus-alertmanager'
CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'
READY_WAIT = 30  # seconds; it is ready in well under a second here


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(name='alertmanager', scope='module')
def fixture_alertmanager(tmp_path_factory):
    if not os.access(BINARY, os.X_OK):
        pytest.fail('%s is missing: install prometheus-alertmanager (tools/ensure-host.sh does)' % BINARY)
    root = tmp_path_factory.mktemp('alertmanager')
    (root / 'am.yml').write_text(CONFIG)
    port = _free_port()
    url = 'http://127.0.0.1:%d' % port
    log = open(root / 'am.log', 'wb')  # pylint: disable=consider-using-with
    proc = subprocess.Popen([BINARY, '--config.file=%s' % (root / 'am.yml'), '--storage.path=%s' % (root / 'data'),
                             '--web.listen-address=127.0.0.1:%d' % port, '--cluster.listen-address='],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_WAIT
        while True:
            try:
                with urllib.request.urlopen(url + '/-/ready', timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail('alertmanager did not become ready in %d s: %s' % (READY_WAIT, (root / 'am.log').read_text()[-2000:]))
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def run(args, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            alertmanager_silence.main()
    return json.loads(out.getvalue())


def all_silences(url):
    with urllib.request.urlopen(url + '/api/v2/silences', timeout=5) as answer:
        return json.load(answer)


def tagged(url, tag, states=('active', 'pending')):
    return [s for s in all_silences(url) if '[onprem_ai.maintenance:%s]' % tag in s['comment']
            and s['status']['state'] in states]


def test_present_is_idempotent_extends_and_absent_expires(alertmanager):
    args = {'url': alertmanager, 'tag': 'run-1', 'hosts': ['gpu-1', 'gpu-2.lab', 'gpu-1'], 'duration': '1h'}
    first = run(args)
    assert first['changed'] and len(first['created']) == 2 and not first.get('failed')
    assert first['alertmanager']['version'] == '0.25.0'
    live = tagged(alertmanager, 'run-1')
    assert sorted(s['id'] for s in live) == sorted(first['created'])
    assert {s['matchers'][0]['value'] for s in live} == {'gpu-1(:[0-9]+)?', r'gpu-2\.lab(:[0-9]+)?'}
    assert all(s['matchers'][0]['isRegex'] and s['status']['state'] == 'active' for s in live)

    again = run(args)
    assert not again['changed'] and sorted(again['kept']) == sorted(first['created'])
    assert len(tagged(alertmanager, 'run-1')) == 2

    longer = run(dict(args, duration='3h'), diff=True)
    assert longer['changed'] and sorted(longer['extended']) == sorted(first['created']) and not longer['created']
    assert len(tagged(alertmanager, 'run-1')) == 2  # extended in place, not duplicated
    assert longer['diff']['before']['silences'][0]['ends_at'] < longer['diff']['after']['silences'][0]['ends_at']
    shorter = run(args)  # never shortened
    assert not shorter['changed']

    one = run(dict(args, hosts=['gpu-1'], state='absent'))
    assert one['changed'] and len(one['expired']) == 1
    assert [s['matchers'][0]['value'] for s in tagged(alertmanager, 'run-1')] == [r'gpu-2\.lab(:[0-9]+)?']
    rest = run({'url': alertmanager, 'tag': 'run-1', 'state': 'absent'})
    assert rest['changed'] and rest['silences'] == [] and not tagged(alertmanager, 'run-1')
    assert not run({'url': alertmanager, 'tag': 'run-1', 'state': 'absent'})['changed']


def test_check_mode_changes_nothing_and_reports_the_plan(alertmanager):
    args = {'url': alertmanager, 'tag': 'run-check', 'hosts': ['gpu-9'], 'duration': '30m'}
    planned = run(args, check_mode=True, diff=True)
    assert planned['changed'] and planned['created'] == [None] and not tagged(alertmanager, 'run-check')
    assert planned['diff']['before'] == {'silences': []}
    assert planned['diff']['after']['silences'][0]['matchers'] == ['instance=~"gpu-9(:[0-9]+)?"']
    real = run(args)
    removal = run(dict(args, state='absent'), check_mode=True)
    assert removal['changed'] and removal['expired'] == real['created'] and len(tagged(alertmanager, 'run-check')) == 1
    run(dict(args, state='absent'))


def test_pending_silences_and_other_tags(alertmanager):
    other = run({'url': alertmanager, 'tag': 'someone-else', 'hosts': ['gpu-1'], 'duration': '1h'})
    future = am.format_time(am.datetime.datetime.now(am.datetime.timezone.utc) + am.datetime.timedelta(hours=2))
    args = {'url': alertmanager, 'tag': 'run-2', 'hosts': ['gpu-1'], 'host_label': 'host', 'host_match': 'exact',
            'matchers': [{'name': 'alertname', 'value': 'NodeDown|GPU.*', 'op': '=~'},
                         {'name': 'severity', 'value': 'info', 'op': '!='}],
            'starts_at': future, 'duration': '1h'}
    made = run(args)
    live = tagged(alertmanager, 'run-2')
    assert [s['status']['state'] for s in live] == ['pending'] and live[0]['id'] == made['created'][0]
    got = sorted((m['name'], m['value'], m['isRegex'], m['isEqual']) for m in live[0]['matchers'])
    assert got == [('alertname', 'NodeDown|GPU.*', True, True), ('host', 'gpu-1', False, True),
                   ('severity', 'info', False, False)]
    assert not run(args)['changed']
    gone = run({'url': alertmanager, 'tag': 'run-2', 'state': 'absent'})
    assert gone['expired'] == made['created'] and not tagged(alertmanager, 'run-2')
    assert [s['id'] for s in tagged(alertmanager, 'someone-else')] == other['created']  # untouched
    run({'url': alertmanager, 'tag': 'someone-else', 'state': 'absent'})


def test_exclusive_expires_hosts_that_left(alertmanager):
    base = {'url': alertmanager, 'tag': 'run-3', 'duration': '1h'}
    run(dict(base, hosts=['a', 'b']))
    now = run(dict(base, hosts=['b', 'c'], exclusive=True))
    assert len(now['expired']) == 1 and len(now['created']) == 1 and len(now['kept']) == 1
    assert sorted(s['matchers'][0]['value'] for s in tagged(alertmanager, 'run-3')) == ['b(:[0-9]+)?', 'c(:[0-9]+)?']
    run(dict(base, state='absent'))


def test_the_real_server_refuses_and_the_module_fails_cleanly(alertmanager):
    every = run({'url': alertmanager, 'tag': 'run-4', 'matchers': [{'name': 'job', 'value': '', 'op': '='}]})
    assert every['failed'] and every['error_kind'] == 'options' and 'every alert' in every['msg']
    past = run({'url': alertmanager, 'tag': 'run-4', 'hosts': ['x'], 'ends_at': '2020-01-01T00:00:00Z'})
    assert past['failed'] and past['error_kind'] == 'options' and 'must last' in past['msg']
    # a Go regexp Python would take but RE2 refuses (a backreference): Alertmanager's 400 is the message
    bad = run({'url': alertmanager, 'tag': 'run-4', 'hosts': [r'(a)\1'], 'host_match': 'regex'})
    assert bad['failed'] and bad['error_kind'] == 'refused' and 'HTTP 400' in bad['msg'] and bad['created'] == []
    assert not tagged(alertmanager, 'run-4')
    gone = run({'url': 'http://127.0.0.1:%d' % _free_port(), 'tag': 'run-4', 'state': 'absent', 'timeout': 2})
    assert gone['failed'] and gone['error_kind'] == 'unreachable'


def test_credentials_never_show(alertmanager):
    # Alertmanager without --web.config.file ignores the header; the secrets must not appear in any output
    secret = 'tok-Secret-7788'
    ok = run({'url': alertmanager, 'tag': 'run-5', 'hosts': ['h'], 'bearer_token': secret}, diff=True)
    assert not ok.get('failed') and secret not in json.dumps(ok)
    url = alertmanager.replace('http://', 'http://ops:pw-Secret-99@')
    down = run({'url': url.replace(alertmanager.rsplit(':', 1)[1], str(_free_port())), 'tag': 'run-5',
                'state': 'absent', 'username': 'ops', 'password': 'basic-Secret-11', 'timeout': 2})
    assert down['failed'] and 'pw-Secret-99' not in json.dumps(down) and 'basic-Secret-11' not in json.dumps(down)
    run({'url': url, 'tag': 'run-5', 'state': 'absent'})
    assert not tagged(alertmanager, 'run-5')


# ----- the real Alertmanager behind TLS and basic auth (its --web.config.file) ----------------------------------
PASSWORD = 'am-Test-Pass-61'
# bcrypt of PASSWORD (cost 4, made once with Python's crypt.METHOD_BLOWFISH): Alertmanager's basic_auth_users wants one
PASSWORD_HASH = '$2b$04$vGGg2oXb40jbLn37O1uC2OwG2dqPHs2dH7dQey8khTp6ZFaO7YbTS'


def _certificates(root):
    """A CA and a server certificate for 127.0.0.1 (cryptography, in the venv): (ca.pem, cert.pem, key.pem)."""
    # pylint: disable=import-outside-toplevel
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'onprem_ai test CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [root / 'ca.pem', root / 'cert.pem', root / 'key.pem']
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return [str(p) for p in paths]


@pytest.fixture(name='secure_alertmanager', scope='module')
def fixture_secure_alertmanager(tmp_path_factory):
    # pylint: disable=import-outside-toplevel
    import base64
    import ssl

    if not os.access(BINARY, os.X_OK):
        pytest.fail('%s is missing: install prometheus-alertmanager (tools/ensure-host.sh does)' % BINARY)
    root = tmp_path_factory.mktemp('alertmanager-tls')
    ca, cert, key = _certificates(root)
    (root / 'am.yml').write_text(CONFIG)
    (root / 'web.yml').write_text('tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ops: %s\n'
                                  % (cert, key, PASSWORD_HASH))
    port = _free_port()
    url = 'https://127.0.0.1:%d' % port
    log = open(root / 'am.log', 'wb')  # pylint: disable=consider-using-with
    proc = subprocess.Popen([BINARY, '--config.file=%s' % (root / 'am.yml'), '--storage.path=%s' % (root / 'data'),
                             '--web.listen-address=127.0.0.1:%d' % port, '--cluster.listen-address=',
                             '--web.config.file=%s' % (root / 'web.yml')], stdout=log, stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=ca)
    auth = 'Basic ' + base64.b64encode(('ops:' + PASSWORD).encode()).decode()
    try:
        deadline = time.monotonic() + READY_WAIT
        while True:
            try:
                request = urllib.request.Request(url + '/-/ready', headers={'Authorization': auth})
                with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail('alertmanager (TLS) did not become ready in %d s: %s' % (READY_WAIT, (root / 'am.log').read_text()[-2000:]))
            time.sleep(0.1)
        yield url, ca
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_tls_and_basic_auth(secure_alertmanager):
    url, ca = secure_alertmanager
    args = {'url': url, 'tag': 'run-tls', 'hosts': ['gpu-1'], 'username': 'ops', 'password': PASSWORD, 'ca_path': ca}
    made = run(args, diff=True)
    assert made['changed'] and len(made['created']) == 1 and PASSWORD not in json.dumps(made)
    assert not run(args)['changed']
    wrong = run(dict(args, password='not-The-Pass-9'))
    assert wrong['failed'] and wrong['error_kind'] == 'refused' and 'HTTP 401' in wrong['msg']
    assert 'not-The-Pass-9' not in json.dumps(wrong)
    untrusted = run(dict(args, ca_path=None))
    assert untrusted['failed'] and untrusted['error_kind'] == 'unreachable' and 'CERTIFICATE_VERIFY_FAILED' in untrusted['msg']
    unchecked = run(dict(args, ca_path=None, validate_certs=False, state='absent'))
    assert unchecked['changed'] and unchecked['expired'] == made['created']
    token = run(dict(args, username=None, password=None, bearer_token='tok-Wrong-77'))
    assert token['failed'] and 'HTTP 401' in token['msg'] and 'tok-Wrong-77' not in json.dumps(token)
