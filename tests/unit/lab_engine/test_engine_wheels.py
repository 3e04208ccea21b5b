# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's engine wheels (tests/lab/inference_server/build_wheels.py): valid, reproducible, and their `vllm`
command serves the lab inference server with the flags the model_server role renders, or fails like a broken
engine release."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location('build_wheels', ROOT / 'tests/lab/inference_server/build_wheels.py')
build_wheels = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(build_wheels)


@pytest.fixture(scope='module')
def wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheels')
    assert build_wheels.main([str(out)]) == 0
    return out


def _vllm(wheel, *args, config=None):
    env = {'PYTHONPATH': str(wheel), 'PYTHONUNBUFFERED': '1', 'LAB_INFERENCE_CONFIG': str(config or '/nonexistent')}
    return subprocess.Popen([sys.executable, '-c', 'import sys, lab_vllm; sys.exit(lab_vllm.main())', *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_versions_one_broken(wheels):
    names = sorted(p.name for p in wheels.glob('*.whl'))
    assert names == [f'lab_inference_server-{v}-py3-none-any.whl' for v in ('1.0.0', '1.1.0', '1.2.0')]
    assert set(build_wheels.FAULTS) == {'1.2.0'}


def test_record_hashes_and_entry_point(wheels):
    with zipfile.ZipFile(wheels / 'lab_inference_server-1.1.0-py3-none-any.whl') as whl:
        info = 'lab_inference_server-1.1.0.dist-info'
        record = whl.read(f'{info}/RECORD').decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(',', 2)
            if name.endswith('RECORD'):
                continue
            data = whl.read(name)
            assert digest == 'sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            assert int(size) == len(data)
        assert 'vllm = lab_vllm:main' in whl.read(f'{info}/entry_points.txt').decode()
        assert 'Version: 1.1.0' in whl.read(f'{info}/METADATA').decode()


def test_reproducible(wheels, tmp_path):
    again = build_wheels.build(tmp_path, '1.0.0')
    assert again.read_bytes() == (wheels / again.name).read_bytes()


def test_version_command(wheels):
    proc = _vllm(wheels / 'lab_inference_server-1.0.0-py3-none-any.whl', '--version')
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == '1.0.0'


def test_serve_with_role_flags(wheels, tmp_path):
    model = tmp_path / 'model'
    model.mkdir()
    config = tmp_path / 'lab.json'
    config.write_text(json.dumps({'node_name': 'unit-node', 'first_token_latency_ms': 0, 'tokens': 2,
                                  'token_interval_ms': 0}))
    proc = _vllm(wheels / 'lab_inference_server-1.1.0-py3-none-any.whl', 'serve', str(model), '--host', '127.0.0.1',
                 '--port', '0', '--served-model-name', 'm1', '--max-model-len', '2048',
                 '--gpu-memory-utilization', '0.85', '--tensor-parallel-size', '1', config=config)
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r'listening on http://127\.0\.0\.1:(\d+)', line)
            port = match and match.group(1)
        assert port, 'the server did not start'
        base = f'http://127.0.0.1:{port}'
        with urllib.request.urlopen(f'{base}/version', timeout=5) as resp:
            assert json.load(resp) == {'version': '1.1.0'}
        with urllib.request.urlopen(f'{base}/v1/models', timeout=5) as resp:
            card = json.load(resp)['data'][0]
        assert card['id'] == 'm1' and card['max_model_len'] == 2048
        req = urllib.request.Request(f'{base}/v1/completions', data=json.dumps({'model': 'm1', 'prompt': 'x', 'max_tokens': 1}).encode(),
                                     headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert 'node=unit-node' in json.load(resp)['choices'][0]['text']
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_broken_release_fails_at_start(wheels, tmp_path):
    proc = _vllm(wheels / 'lab_inference_server-1.2.0-py3-none-any.whl', 'serve', str(tmp_path), '--port', '0')
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert 'Engine core initialization failed' in err


def test_missing_model_path_fails(wheels, tmp_path):
    proc = _vllm(wheels / 'lab_inference_server-1.0.0-py3-none-any.whl', 'serve', str(tmp_path / 'absent'), '--port', '0')
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and 'not a valid model identifier' in err
