# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secret sweep itself (tests/lab/secret_sweep.py): it finds a planted secret in output and in files, in clear and
in the forms a secret takes on the way (URL-encoded, HTTP basic auth, base64 of a file's content), and flags a file
holding one that others can read."""

import base64
import io
import json
import os
import sys
import tarfile
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import secret_sweep  # noqa: E402  pylint: disable=wrong-import-position,import-error

SECRETS = {'restic_password': 'sweep-rest@pass-2d9e', 'hf_token': 'hf_sweepToken6f1c93'}


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize('text, form', [
    ('PUT /repo password sweep-rest@pass-2d9e done', 'clear'),
    ('rest:https://user:%s@host:8000/' % urllib.parse.quote('sweep-rest@pass-2d9e', safe=''), 'url-encoded'),
    ('q=%s&x=1' % urllib.parse.quote_plus('a b sweep-rest@pass-2d9e'), 'url-encoded'),
    ('Authorization: Basic %s\r\n' % b64('user:sweep-rest@pass-2d9e'), 'base64'),
    ('"content": "%s", "encoding": "base64"' % b64('[global]\nkey = sweep-rest@pass-2d9e\nmore = 1\n'), 'base64'),
    ('token=%s' % base64.urlsafe_b64encode(b'\xfb\xff-sweep-rest@pass-2d9e').decode().rstrip('='), 'base64'),
    ('%s' % b64(urllib.parse.quote('user:sweep-rest@pass-2d9e')), 'base64+url-encoded'),
])
def test_finds_a_secret_in_output_in_its_forms(text, form):
    assert secret_sweep.secrets_in_text(text, SECRETS) == [('restic_password', form)]


@pytest.mark.parametrize('offset', range(4))
def test_finds_base64_at_any_alignment_of_a_longer_blob(offset):
    blob = b64('x' * offset + 'header\nhf_sweepToken6f1c93\n')
    assert secret_sweep.secrets_in_text('"content": "%s"' % blob, SECRETS) == [('hf_token', 'base64')]


def test_nothing_found_in_clean_or_masked_output():
    text = json.dumps({'msg': 'wrong repository password', 'repository': 'rest:https://user:********@host/',
                       'content': b64('nothing to see here, really')})
    assert not secret_sweep.secrets_in_text(text, SECRETS)
    assert not secret_sweep.secrets_in_text(text.encode(), SECRETS)


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for path, (content, mode, owner) in files.items():
            info = tarfile.TarInfo(path.lstrip('/'))
            info.size, info.mode, info.uname = len(content), mode, owner
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_scan_tar_flags_a_readable_secret_file_and_a_wrong_owner():
    data = _tar({
        '/etc/onprem_ai/restic.pass': (b'sweep-rest@pass-2d9e\n', 0o600, 'root'),
        '/var/lib/onprem_ai/manifest.json': (('{"url": "https://u:%s@h/"}' % urllib.parse.quote('sweep-rest@pass-2d9e')).encode(),
                                             0o644, 'root'),
        '/etc/litellm/env': (('X=%s\n' % b64('u:hf_sweepToken6f1c93')).encode(), 0o600, 'litellm'),
        '/etc/clean.conf': (b'nothing\n', 0o644, 'root'),
        '/run/systemd/transient/lab.service': (b'hf_sweepToken6f1c93', 0o644, 'root'),
    })
    found = secret_sweep.scan_tar(data, SECRETS, skip=('/run/systemd/transient/',))
    assert sorted(found) == ['/etc/litellm/env', '/etc/onprem_ai/restic.pass', '/var/lib/onprem_ai/manifest.json']
    assert found['/etc/onprem_ai/restic.pass']['private']
    assert found['/var/lib/onprem_ai/manifest.json'] == {
        'mode': 0o644, 'owner': 'root', 'secrets': [('restic_password', 'url-encoded')], 'private': False}
    assert not found['/etc/litellm/env']['private']  # owner not allowed
    assert secret_sweep.scan_tar(data, SECRETS, owners=('root', 'litellm'))['/etc/litellm/env']['private']
    lines = secret_sweep.describe(found)
    assert any('manifest.json (mode 0644, owner root): restic_password in url-encoded' in line for line in lines)
    assert not any(value in '\n'.join(lines) for value in SECRETS.values())


def test_scan_dir_reads_the_controllers_files(tmp_path):
    (tmp_path / 'tmp').mkdir()
    leak = tmp_path / 'tmp' / 'AnsiballZ_x.py'
    leak.write_text('args = %r\n' % b64('{"token": "hf_sweepToken6f1c93"}'))
    leak.chmod(0o644)
    found = secret_sweep.scan_dir(tmp_path, SECRETS)
    assert [(path.endswith('AnsiballZ_x.py'), item['private']) for path, item in found.items()] == [(True, False)]
    leak.chmod(0o600)
    assert all(item['private'] for item in secret_sweep.scan_dir(tmp_path, SECRETS).values())
