# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab webhook receiver (tests/lab/webhook_receiver.py) records each POST as a JSON line and gives them back."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location('lab_webhook', str(ROOT / 'tests' / 'lab' / 'webhook_receiver.py'))
receiver = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(receiver)


@pytest.fixture(name='url')
def fixture_url(tmp_path):
    server = receiver.http.server.ThreadingHTTPServer(('127.0.0.1', 0), receiver.Handler)
    server.out, server.lock = str(tmp_path / 'notices.jsonl'), threading.Lock()
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()


def post(url, data):
    request = urllib.request.Request(url, data=data, method='POST', headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_records_and_answers(url):
    assert post(url + '/notices', json.dumps({'event': 'start', 'host': 'gpu-1'}).encode())['recorded']
    assert post(url + '/alerts', b'not json')['recorded']
    with urllib.request.urlopen(url + '/notices', timeout=5) as response:
        lines = json.loads(response.read())
    expected = [('/notices', {'event': 'start', 'host': 'gpu-1'}), ('/alerts', {'unparsed': 'not json'})]
    assert [(x['path'], x['body']) for x in lines] == expected
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url + '/other', timeout=5)
    assert info.value.code == 404
