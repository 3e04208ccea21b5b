# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_pull's ollama and hf sources against the lab model source simulation, in-process on 127.0.0.1."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _huggingface as hf
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import HttpClient, ModelError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull

SERVER = Path(__file__).resolve().parents[4] / 'tests' / 'lab' / 'model_sources' / 'model_source_server.py'
SPEC = importlib.util.spec_from_file_location('model_source_server', str(SERVER))
mss = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mss)

COMMIT1 = '1' * 40
COMMIT2 = '2' * 40
WEIGHTS = os.urandom(2 * 1024 * 1024 + 3)
TOKEN = 'hf_lab_token_123'


@pytest.fixture
def root(tmp_path):
    src = tmp_path / 'src'
    for commit, extra in ((COMMIT1, b''), (COMMIT2, b'v2')):
        repo = src / 'hf' / 'lab-org' / 'tiny' / commit
        repo.mkdir(parents=True)
        (repo / 'config.json').write_text('{"v": "%s"}' % commit[:1])
        (repo / 'model.safetensors').write_bytes(WEIGHTS + extra)
        (repo / 'README.md').write_text('lab')
    (src / 'ollama').mkdir()
    (src / 'ollama' / 'catalog.json').write_text(json.dumps({'llama3:8b': {'size': 4096}, 'qwen:7b': {'size': 8192}}))
    return src


@pytest.fixture
def server(root):
    srv = mss.start_in_background(root)
    yield srv
    srv.shutdown()
    srv.server_close()


def base(srv):
    return 'http://127.0.0.1:%d' % srv.server_address[1]


def params(tmp_path, **kwargs):
    out = dict(name='llama3-prod', version='v1', source='ollama', model='llama3:8b', dest_root=str(tmp_path / 'models'), keep=1,
               state='present', activate=True, verify='quick', free_space_margin=0, serving_tag='latest', digest=None, size=None,
               ollama_models_dir=str(tmp_path), retries=2, url=None, sha256=None, files=None, revision=None,
               allow_patterns=None, ignore_patterns=None, endpoint=None, token=None, max_workers=2)
    out.update(kwargs)
    return out


def run(tmp_path, srv, check_mode=False, free=10 ** 12, **kwargs):
    p = params(tmp_path, **kwargs)
    p.setdefault('ollama_url', base(srv))
    if p.get('ollama_url') is None:
        p['ollama_url'] = base(srv)
    headers = {'Authorization': 'Bearer ' + p['token']} if p.get('token') else None
    client = HttpClient(timeout=5, backoff=0.01, headers=headers, secrets=[p.get('token')])
    return ModelPull(p, check_mode=check_mode, http_client=client, free_space=lambda path: free).run()


def tags(srv):
    return dict((n, m['digest']) for n, m in srv.ollama_installed.items())


def test_ollama_pull_copy_switch_previous_gc(tmp_path, server):
    result = run(tmp_path, server, ollama_url=base(server))
    assert result['changed'] and result['version'] == 'v1' and result['model_path'] == 'llama3-prod:v1'
    installed = tags(server)
    assert installed['llama3-prod:latest'] == installed['llama3-prod:v1'] == installed['llama3:8b'] == result['digest']
    again = run(tmp_path, server, ollama_url=base(server))
    assert not again['changed']
    server.ollama_installed.pop('llama3:8b')
    result = run(tmp_path, server, ollama_url=base(server), version='v2', model='qwen:7b')
    assert result['changed'] and result['previous_version'] == 'v1'
    assert tags(server)['llama3-prod:latest'] == tags(server)['qwen:7b']
    back = run(tmp_path, server, ollama_url=base(server), state='previous', version=None)
    assert back['changed'] and back['version'] == 'v1'
    assert tags(server)['llama3-prod:latest'] == tags(server)['llama3-prod:v1']
    record = json.loads((tmp_path / 'models' / 'llama3-prod' / 'state.json').read_text())
    assert record['current']['version'] == 'v1' and record['previous']['version'] == 'v2'


def test_ollama_backup_tag_restored_on_digest_mismatch(tmp_path, server):
    run(tmp_path, server, ollama_url=base(server))
    before = tags(server)
    with pytest.raises(ModelError, match='digest mismatch.*current version stays v1'):
        run(tmp_path, server, ollama_url=base(server), version='v2', digest='sha256:' + 'f' * 64)
    after = tags(server)
    assert after == before  # backup restored and removed, no v2 tag, serving tag unchanged
    assert not any(n.endswith('-onprem-backup') for n in after)


def test_ollama_error_line_in_stream(tmp_path, server):
    with pytest.raises(ModelError, match='could not pull nope:1b: pull model manifest: file does not exist'):
        run(tmp_path, server, ollama_url=base(server), model='nope:1b')
    assert tags(server) == {}


def test_ollama_cut_stream_is_pulled_again(tmp_path, root):
    srv = mss.start_in_background(root, cut_once=3)
    try:
        assert run(tmp_path, srv, ollama_url=base(srv))['changed']
        assert 'llama3-prod:latest' in tags(srv)
    finally:
        srv.shutdown()
        srv.server_close()


def test_ollama_disk_and_check_mode(tmp_path, server):
    with pytest.raises(ModelError, match='not enough disk space'):
        run(tmp_path, server, ollama_url=base(server), size=10 ** 9, free=10 ** 6)
    result = run(tmp_path, server, check_mode=True, ollama_url=base(server), size=4096)
    assert result['changed'] and result['bytes_to_transfer'] == 4096 and tags(server) == {}


def test_ollama_unreachable(tmp_path):
    p = params(tmp_path, ollama_url='http://127.0.0.1:9')
    with pytest.raises(ModelError, match='cannot reach the Ollama API'):
        ModelPull(p, http_client=HttpClient(timeout=2)).run()


def hf_params(srv, **kwargs):
    out = dict(name='tiny', source='hf', model='lab-org/tiny', revision=COMMIT1, endpoint=base(srv), ollama_url=base(srv))
    out.update(kwargs)
    return out


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    pytest.importorskip('huggingface_hub')
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf-home'))
    monkeypatch.setenv('HF_HUB_DISABLE_TELEMETRY', '1')
    monkeypatch.delenv('HF_TOKEN', raising=False)


def test_hf_pull_pinned_commit_with_patterns(tmp_path, server, hub_env):
    result = run(tmp_path, server, **hf_params(server, allow_patterns=['*.json', '*.safetensors']))
    assert result['changed'] and result['revision'] == COMMIT1 and result['source'] == 'hf'
    version_dir = tmp_path / 'models' / 'tiny' / 'v1'
    assert sorted(os.listdir(str(version_dir))) == ['.manifest.json', 'config.json', 'model.safetensors']
    assert result['size'] == len(WEIGHTS) + len('{"v": "1"}')
    entry = [f for f in result['files'] if f['path'] == 'model.safetensors'][0]
    assert entry['sha256'] == hashlib.sha256(WEIGHTS).hexdigest()
    again = run(tmp_path, server, **hf_params(server, allow_patterns=['*.json', '*.safetensors']))
    assert not again['changed'] and again['bytes_transferred'] == 0
    v2 = run(tmp_path, server, **hf_params(server, version='v2', revision=COMMIT2, allow_patterns=['*.json', '*.safetensors']))
    assert v2['changed'] and v2['previous_version'] == 'v1'
    assert os.readlink(str(tmp_path / 'models' / 'tiny' / 'current')) == 'v2'


def test_hf_check_mode_and_disk(tmp_path, server, hub_env):
    result = run(tmp_path, server, check_mode=True, **hf_params(server))
    assert result['bytes_to_transfer'] == len(WEIGHTS) + len('{"v": "1"}') + 3
    assert not (tmp_path / 'models' / 'tiny' / 'v1').exists()
    with pytest.raises(ModelError, match='not enough disk space'):
        run(tmp_path, server, free=1000, **hf_params(server))


def test_hf_unknown_revision_and_repo(tmp_path, server, hub_env):
    with pytest.raises(ModelError, match='cannot list lab-org/tiny'):
        run(tmp_path, server, **hf_params(server, revision='3' * 40))
    with pytest.raises(ModelError, match='cannot list lab-org/none'):
        run(tmp_path, server, **hf_params(server, model='lab-org/none'))


def test_hf_bad_token_clear_error_without_token(tmp_path, root, hub_env):
    srv = mss.start_in_background(root, token=TOKEN)
    try:
        with pytest.raises(ModelError) as err:
            run(tmp_path, srv, **hf_params(srv, token='wrong-' + TOKEN))
        assert '401' in str(err.value) and TOKEN not in str(err.value)
        assert run(tmp_path, srv, **hf_params(srv, token=TOKEN))['changed']
    finally:
        srv.shutdown()
        srv.server_close()


def test_hf_missing_library_reported(tmp_path, server, monkeypatch):
    monkeypatch.setattr(hf, 'HAS_HF', False)
    with pytest.raises(ModelError, match='huggingface_hub'):
        run(tmp_path, server, **hf_params(server))
