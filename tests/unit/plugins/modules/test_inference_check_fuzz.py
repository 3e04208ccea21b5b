# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of inference_check's argument handling: whatever it is given, it ends with exit_json or fail_json
with a message, never a traceback, writes only its baseline under tmp_path, and never prints a key - also against
a server that echoes the key it was sent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.modules import inference_check

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

ROOT = Path(__file__).resolve().parents[4]
_SPEC = importlib.util.spec_from_file_location('lab_inproc', str(ROOT / 'tests' / 'lab' / 'inference_server' / 'inproc.py'))
inproc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(inproc)

KEY = 'sk-fuzz-Secret-90ab'
BACKEND_KEY = 'be-fuzz-Secret-12cd'
URL_PASS = 'urlpw-Fuzz-55'
SECRETS = [KEY, BACKEND_KEY, URL_PASS]
KEYS = ['url', 'api_key_header', 'api_key', 'model', 'models', 'checks', 'prompt', 'max_tokens', 'streaming', 'expected_content',
        'expected_json_schema', 'timeout', 'backends', 'gateway_attempts', 'performance', 'baseline', 'tolerances',
        'fail_on_failed_check', 'stream_include_usage', 'validate_certs']


@pytest.fixture(name='lab', scope='module')
def fixture_lab():
    with inproc.lab_server('--api-key', KEY, '--error-percent', '30', '--first-token-latency-ms', '1',
                           '--token-interval-ms', '1', '--tokens', '2') as (url, _lab):
        yield url


def valid(lab, tmp_path):
    return {'url': lab.replace('http://', 'http://ops:%s@' % URL_PASS), 'api_key': KEY, 'model': 'llama-3-8b',
            'models': ['llama-3-8b'], 'checks': ['functional', 'performance'], 'timeout': 5,
            'backend_api_key': BACKEND_KEY, 'backends': [{'name': 'b1', 'url': lab, 'api_key': BACKEND_KEY}],
            'performance': {'count': 3, 'concurrency': 2, 'time_limit': 5}, 'baseline': 'none',
            'baseline_path': str(tmp_path / 'baseline.json'), 'use_proxy': False}


@FUZZ_SETTINGS
@given(data=st.data(), checks=st.sampled_from([['functional'], ['integration'], ['performance'], ['functional', 'integration']]),
       check_mode=st.booleans())
def test_bad_input_fails_cleanly_and_keeps_the_keys(tmp_path, lab, data, checks, check_mode):
    dry_run = tmp_path / 'check-mode-baseline.json'  # never written, whatever the examples before did
    base = dict(valid(lab, tmp_path), checks=checks, baseline='save', baseline_path=str(dry_run) if check_mode else
                str(tmp_path / 'baseline.json'))
    args = data.draw(mutated_args(base, KEYS))
    result = run_module(inference_check.main, args, allowed_root=tmp_path, secrets=SECRETS, check_mode=check_mode)
    if check_mode:
        assert not dry_run.exists() and not result.get('changed')
    assert 'passed' in result or result.get('failed')


@FUZZ_SETTINGS
@given(header=st.sampled_from(['Authorization', 'X-Api-Key', 'x-litellm-api-key']), streaming=st.sampled_from(['plain', 'stream']))
def test_a_server_echoing_the_key_never_shows_it(tmp_path, lab, header, streaming):
    # the lab answers 401 {"error": "Unauthorized"} to a key in another header; a 500 with the key is in the
    # module_utils tests; here every exit path runs with all three secrets planted
    args = dict(valid(lab, tmp_path), api_key_header=header, streaming=streaming, checks=['functional', 'integration'])
    run_module(inference_check.main, args, allowed_root=tmp_path, secrets=SECRETS)
