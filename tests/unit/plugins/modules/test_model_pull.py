# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_pull's main(): argument handling, secrets in every output, clear failures (issue 11). The lab model source runs
in-process on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.modules import model_pull

from fuzz import FUZZ_SETTINGS, JUNK_WITH_INFINITY, mutated_args, run_module
from lab_source import mss


TOKEN = 'tok-module-31337'
HEADER_SECRET = 'hdr-secret-4242'
DATA = os.urandom(300 * 1024 + 7)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp('src')
    (root / 'files').mkdir()
    (root / 'files' / 'm.bin').write_bytes(DATA)
    open_srv = mss.start_in_background(root)
    private = mss.start_in_background(root, token=TOKEN)
    yield {'open': 'http://127.0.0.1:%d' % open_srv.server_address[1], 'private': 'http://127.0.0.1:%d' % private.server_address[1]}
    for srv in (open_srv, private):
        srv.shutdown()
        srv.server_close()


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            model_pull.main()
    text = capsys.readouterr().out.strip().splitlines()[-1]  # the lab source logs its requests to stdout before
    out = json.loads(text)
    out['rc'] = exit_info.value.code
    out['_text'] = text
    return out


def test_token_with_a_trailing_newline_is_stripped_and_never_printed(capsys, tmp_path, source):
    out = run(capsys, name='m', version='v1', url=source['private'] + '/files/m.bin', sha256=SHA, token=TOKEN + '\n',
              dest_root=str(tmp_path))
    assert out['rc'] == 0 and out['changed'], out
    assert TOKEN not in out['_text']


@pytest.mark.parametrize('token', [TOKEN[:5] + '\n' + TOKEN[5:], TOKEN + '\r\nX-Injected: 1', TOKEN + '\x00'])
def test_token_with_an_inner_control_character_fails_clearly(capsys, tmp_path, source, token):
    out = run(capsys, name='m', version='v1', url=source['private'] + '/files/m.bin', sha256=SHA, token=token, dest_root=str(tmp_path))
    assert out['failed'] and 'control' in out['msg'] and 'Traceback' not in out['_text']
    assert TOKEN[:5] not in out['_text'] and TOKEN[5:] not in out['_text']


@pytest.mark.parametrize('headers', [
    'X-Api-Key=' + HEADER_SECRET,
    json.dumps({'X-Api-Key': HEADER_SECRET}),
    {'X-Api-Key': HEADER_SECRET},
])
def test_headers_in_any_form_are_masked(capsys, tmp_path, source, headers):
    # a 404 (failure path) and a success: the value appears nowhere, the invocation included
    bad = run(capsys, name='m', version='v1', url=source['open'] + '/files/nope.bin', sha256=SHA, headers=headers,
              dest_root=str(tmp_path))
    assert bad['failed'] and 'HTTP 404' in bad['msg']
    good = run(capsys, name='m', version='v1', url=source['open'] + '/files/m.bin', sha256=SHA, headers=headers,
               dest_root=str(tmp_path))
    assert good['changed']
    for out in (bad, good):
        assert HEADER_SECRET not in out['_text']


def test_a_header_value_with_a_newline_fails_without_quoting_it(capsys, tmp_path, source):
    out = run(capsys, name='m', version='v1', url=source['open'] + '/files/m.bin', sha256=SHA,
              headers={'X-Api-Key': HEADER_SECRET + '\nX-Evil: 1'}, dest_root=str(tmp_path))
    assert out['failed'] and 'X-Api-Key' in out['msg'] and HEADER_SECRET not in out['_text']


@pytest.mark.parametrize('url, message', [('not a url', 'not a usable URL'), ('file:///etc/passwd', 'only http'),
                                          ('ftp://127.0.0.1/m.bin', 'only http')])
def test_only_http_urls_with_a_clear_message(capsys, tmp_path, url, message):
    out = run(capsys, name='m', version='v1', url=url, sha256=SHA, dest_root=str(tmp_path / 'store'))
    assert out['failed'] and message in out['msg'] and 'Traceback' not in out['_text']
    assert not (tmp_path / 'store').exists()


@pytest.mark.parametrize('key, value', [('keep', -1), ('free_space_margin', -5), ('timeout', 0), ('retries', -2),
                                        ('lock_timeout', -1), ('max_workers', 0)])
def test_ranges_fail_before_any_change(capsys, tmp_path, source, key, value):
    out = run(capsys, name='m', version='v1', url=source['open'] + '/files/m.bin', sha256=SHA, dest_root=str(tmp_path / 'store'),
              **{key: value})
    assert out['failed'] and key in out['msg']
    assert not (tmp_path / 'store').exists()


def test_credentials_in_urls_are_masked_in_results(capsys, tmp_path, source):
    url = source['open'].replace('http://', 'http://user:pw-url-secret@') + '/files/m.bin?X-Amz-Signature=sig-url-secret'
    out = run(capsys, name='m', version='v1', url=url, sha256=SHA, dest_root=str(tmp_path))
    assert out['changed']
    assert 'pw-url-secret' not in out['_text'] and 'sig-url-secret' not in out['_text']
    manifest = (tmp_path / 'm' / 'v1' / '.manifest.json').read_text()
    assert 'pw-url-secret' not in manifest and 'sig-url-secret' not in manifest


def test_state_json_version_is_refused(capsys, tmp_path, source):
    out = run(capsys, name='m', version='state.json', url=source['open'] + '/files/m.bin', sha256=SHA, dest_root=str(tmp_path))
    assert out['failed'] and 'not usable as a directory name' in out['msg']


def test_proxy_password_is_masked_and_the_progress_file_says_failed(capsys, tmp_path):
    progress = tmp_path / 'progress.json'
    out = run(capsys, name='m', version='v1', url='http://127.0.0.1:9/m.bin', sha256=SHA, dest_root=str(tmp_path / 'store'),
              http_proxy='http://u:proxy-pw-9999@127.0.0.1:9', retries=0, timeout=2, progress_file=str(progress))
    assert out['failed'] and out['error_kind'] == 'network' and 'proxy-pw-9999' not in out['_text']
    assert json.loads(progress.read_text())['state'] == 'failed'


def test_progress_file_says_failed_when_the_options_are_refused(capsys, tmp_path):
    progress = tmp_path / 'progress.json'
    out = run(capsys, name='m', version='v1', url='http://127.0.0.1:9/m.bin', sha256=SHA, dest_root=str(tmp_path / 'store'),
              headers={'X-Bad': 'a\nb'}, progress_file=str(progress))
    assert out['failed'] and out['error_kind'] == 'invalid'
    assert json.loads(progress.read_text())['state'] == 'failed'


def test_progress_file_says_failed_when_ansible_refuses_the_arguments(capsys, tmp_path):
    progress = tmp_path / 'progress.json'
    out = run(capsys, name='m', version='v1', url='http://127.0.0.1:9/m.bin', sha256=SHA, keep='many', progress_file=str(progress))
    assert out['failed'] and json.loads(progress.read_text())['state'] == 'failed'


def test_progress_file_of_a_pull(capsys, tmp_path, source):
    progress = tmp_path / 'progress.json'
    out = run(capsys, name='m', version='v1', url=source['open'] + '/files/m.bin', sha256=SHA, dest_root=str(tmp_path / 'store'),
              progress_file=str(progress), progress_interval=1)
    data = json.loads(progress.read_text())
    assert out['changed'] and data['state'] == 'done' and data['bytes_done'] == len(DATA)


# -- property test: generated bad input ----------------------------------------------------------------------

VALID = {'name': 'm', 'version': 'v1', 'url': 'http://127.0.0.1:9/m.bin', 'sha256': SHA, 'token': TOKEN,
         'headers': {'X-Api-Key': HEADER_SECRET}, 'keep': 1, 'timeout': 2, 'retries': 0, 'free_space_margin': 0,
         'lock_timeout': 0}
KEYS = ['name', 'version', 'url', 'sha256', 'files', 'keep', 'free_space_margin', 'timeout', 'retries', 'lock_timeout',
        'state', 'source', 'headers', 'size', 'max_workers', 'verify', 'activate', 'serving_tag', 'ollama_url', 'endpoint',
        'http_proxy', 'https_proxy', 'no_proxy', 'ca_path', 'progress_interval']


@FUZZ_SETTINGS
@given(args=mutated_args(VALID, KEYS, infinity=True))
@example(args=dict(VALID, files=False))
@example(args=dict(VALID, url='not a url'))
@example(args=dict(VALID, url='file:///etc/passwd'))
@example(args=dict(VALID, headers='X-Api-Key=' + HEADER_SECRET))
@example(args=dict(VALID, headers=json.dumps({'X-Api-Key': HEADER_SECRET}), keep='x'))
@example(args=dict(VALID, version='state.json'))
@example(args=dict(VALID, keep=-1))
@example(args=dict(VALID, timeout=float('inf')))  # OverflowError inside ansible-core's int check
def test_generated_bad_input_fails_cleanly(tmp_path, args):
    """Whatever the arguments: exit or fail_json with a message, never a traceback, nothing written outside the store,
    the token and the header value never printed. Port 9 on 127.0.0.1 refuses connections: nothing leaves the host."""
    store = tmp_path / 'store'
    args['dest_root'] = str(store)
    if args.get('source') == 'hf':
        args['source'] = 'http'  # huggingface_hub would talk to the network
    if args.get('ollama_url') is not None or args.get('source') == 'ollama':
        args['ollama_url'] = 'http://127.0.0.1:9'
    run_module(model_pull.main, args, allowed_root=tmp_path, secrets=[TOKEN, HEADER_SECRET])


@FUZZ_SETTINGS
@given(token=st.text(min_size=1, max_size=30), headers=JUNK_WITH_INFINITY)
@example(token='\n', headers=None)
@example(token='\r\nX: 1', headers=None)
@example(token='x', headers='X-Api-Key=' + HEADER_SECRET)
@example(token='x', headers='{"X-Api-Key": "%s"}' % HEADER_SECRET)
@example(token='x', headers={'X-Api-Key': HEADER_SECRET + '\n'})
def test_generated_tokens_and_headers_never_leak(tmp_path, token, headers):
    args = dict(VALID, dest_root=str(tmp_path / 'store'), token=TOKEN + token, headers=headers)
    result = run_module(model_pull.main, args, allowed_root=tmp_path, secrets=[TOKEN, HEADER_SECRET])
    assert result.get('failed')  # port 9 refuses, or the input is refused


@FUZZ_SETTINGS
@given(files=st.lists(st.dictionaries(st.sampled_from(['url', 'sha256', 'path', 'size']), JUNK_WITH_INFINITY, max_size=4), max_size=3))
@example(files=[{'size': float('-inf')}])
@example(files=[{'url': 'http://127.0.0.1:9/m.bin', 'sha256': SHA, 'size': float('inf')}])
@example(files=False)
def test_generated_files_fail_cleanly(tmp_path, files):
    args = dict(VALID, dest_root=str(tmp_path / 'store'), files=files)
    args.pop('url')
    args.pop('sha256')
    run_module(model_pull.main, args, allowed_root=tmp_path, secrets=[TOKEN, HEADER_SECRET])
