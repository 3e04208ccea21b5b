# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The models role never prints a per-model token (issue 11): ansible-playbook on localhost (connection local), the lab
model source in-process on 127.0.0.1, one entry that succeeds and one that fails, at default verbosity and with -vvv."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_source import ROOT, mss


TOKEN = 'tok-role-8675309'
OTHER = 'tok-role-other-1234'
HEADER = 'hdr-role-2718'
URL_PASSWORD = 'pw-role-1618'
DATA = b'role test weights\n' * 1000

PLAYBOOK = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: onprem_ai.maintenance.models
'''


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp('src')
    (root / 'files').mkdir()
    (root / 'files' / 'm.bin').write_bytes(DATA)
    srv = mss.start_in_background(root, token=TOKEN)
    yield 'http://127.0.0.1:%d' % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def play(tmp_path, source, verbosity):
    good = {'name': 'good', 'version': 'v1', 'url': source + '/files/m.bin', 'sha256': hashlib.sha256(DATA).hexdigest(),
            'token': TOKEN, 'headers': {'X-Api-Key': HEADER}}
    bad = {'name': 'bad', 'version': 'v1', 'url': source.replace('http://', 'http://u:%s@' % URL_PASSWORD) + '/files/nope.bin',
           'sha256': '0' * 64, 'token': OTHER}
    extra = {'models_list': [good, bad], 'models_dest_root': str(tmp_path / 'store'), 'models_warm_up': False}
    (tmp_path / 'vars.json').write_text(json.dumps(extra))
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'build' / 'collections'),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
            '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', '@%s' % (tmp_path / 'vars.json'),
            str(tmp_path / 'play.yml')] + (['-' + 'v' * verbosity] if verbosity else [])
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize('verbosity', [0, 3])
def test_models_role_never_prints_a_token(tmp_path, source, verbosity):
    rc, out = play(tmp_path, source, verbosity)
    assert rc != 0 and 'HTTP 401' in out, out[-3000:]  # the bad entry (another token) failed, the good one was pulled
    assert os.readlink(str(tmp_path / 'store' / 'good' / 'current')) == 'v1', out[-3000:]
    for secret in (TOKEN, OTHER, HEADER, URL_PASSWORD):
        assert secret not in out, 'printed at verbosity %d' % verbosity
    assert 'good v1' in out and 'bad v1' in out  # the loop labels name the entries
