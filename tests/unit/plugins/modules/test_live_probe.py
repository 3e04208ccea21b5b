# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""live_probe as a module, against the lab inference server run in this process (tests/lab/inference_server/inproc.py,
a loopback fake of an OpenAI-compatible gateway): a real detached probe process, its verdicts (ok, abort on errors,
abort on everything unknown), its bounds, its summary, and the key that never reaches a file or a result."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _probe
from ansible_collections.onprem_ai.maintenance.plugins.modules import live_probe

ROOT = Path(__file__).resolve().parents[4]
_SPEC = importlib.util.spec_from_file_location('lab_inproc_probe', str(ROOT / 'tests' / 'lab' / 'inference_server' / 'inproc.py'))
inproc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(inproc)

KEY = 'sk-probe-Secret-7f3a9'
FAST = ('--first-token-latency-ms', '5', '--token-interval-ms', '2', '--tokens', '4')


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            live_probe.main()
    text = capsys.readouterr().out
    out = json.loads(text)
    out['rc'] = exit_info.value.code
    assert KEY not in text.replace('"api_key": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"', '')
    return out


def files_text(directory):
    return ''.join(p.read_text() for p in Path(directory).iterdir() if p.is_file())


@pytest.fixture(name='probe_dir')
def fixture_probe_dir(tmp_path):
    directory = tmp_path / 'probe'
    yield str(directory)
    meta = directory / 'probe.json'
    if meta.exists():  # never leave a probe behind, whatever the test did
        record = json.loads(meta.read_text())
        if _probe._alive(record):  # pylint: disable=protected-access
            os.kill(record['pid'], signal.SIGKILL)


def start_args(url, probe_dir, **extra):
    args = dict(state='started', path=probe_dir, url=url, api_key=KEY, model='m', rate=20, concurrency=4,
                max_seconds=60, timeout=5)
    args.update(extra)
    return args


def test_ok_abort_on_errors_and_summary(capsys, probe_dir):
    with inproc.lab_server('--api-key', KEY, '--model', 'm', *FAST) as (url, lab):
        started = run(capsys, **start_args(url, probe_dir))
        assert started['changed'] and started['running'] and started['rc'] == 0
        again = run(capsys, **start_args(url, probe_dir))
        assert not again['changed'] and again['pid'] == started['pid']
        assert stat.S_IMODE(os.stat(probe_dir).st_mode) == 0o700

        ok = run(capsys, state='status', path=probe_dir, window=3, min_requests=10, max_error_rate=0.05, max_p99_ms=2000)
        assert ok['verdict'] == 'ok', ok['reason']
        assert ok['window']['completed'] >= 10 and ok['window']['failed'] == 0 and ok['window']['p99_ms'] < 2000
        slow = run(capsys, state='status', path=probe_dir, window=3, max_error_rate=0.0, max_p99_ms=0.5)
        assert slow['verdict'] == 'abort' and slow['reason'].startswith('p99 latency'), slow['reason']
        # the shared rolling sequence's defaults: max_error_rate 0.0 (any failure aborts), max_p99_ms 0 (not checked)
        unchecked = run(capsys, state='status', path=probe_dir, max_error_rate=0.0, max_p99_ms=0)
        assert unchecked['verdict'] == 'ok', unchecked['reason']

        lab.config['error_percent'] = 50  # a backend made to fail mid-run
        time.sleep(4.2)
        bad = run(capsys, state='status', path=probe_dir, window=3, max_error_rate=0.05, max_p99_ms=2000)
        assert bad['verdict'] == 'abort' and bad['rc'] == 0
        assert bad['reason'].startswith('error rate') and bad['window']['failed'] > 0, bad['reason']
        assert any('HTTP 500' in reason for reason in bad['window']['errors'])

        lab.config['error_percent'] = 0
        time.sleep(4.2)
        assert run(capsys, state='mark', path=probe_dir, mark='recovered')['changed']
        time.sleep(1.5)
        stopped = run(capsys, state='stopped', path=probe_dir)
    assert stopped['changed'] and not stopped['running']
    summary = stopped['summary']
    assert summary['end_reason'] == 'stopped' and summary['totals']['failed'] > 0
    assert summary['totals']['sent'] >= summary['totals']['ok'] + summary['totals']['failed']
    assert [m['mark'] for m in summary['marks']] == ['status'] * 4 + ['recovered']
    phases = summary['phases']  # during: first status .. 'recovered'
    assert phases['before']['failed'] == 0 and phases['during']['failed'] > 0 and phases['after']['failed'] == 0
    assert phases['during']['p99_ms'] is not None and phases['after']['completed'] > 0
    assert len(summary['timeline']) >= 10 and set(summary['timeline'][0]) == {
        't', 'sent', 'ok', 'failed', 'truncated', 'p50_ms', 'p99_ms'}
    assert KEY not in files_text(probe_dir)
    for name in os.listdir(probe_dir):
        assert stat.S_IMODE(os.stat(os.path.join(probe_dir, name)).st_mode) == 0o600, name
    assert not _probe._alive(json.loads(Path(probe_dir, 'probe.json').read_text()))  # pylint: disable=protected-access
    # stopping again: nothing to stop, the same summary
    assert not run(capsys, state='stopped', path=probe_dir, timeline=False)['changed']


def test_bounded_by_count_then_status_aborts(capsys, probe_dir):
    with inproc.lab_server('--model', 'm', *FAST) as (url, _lab):
        run(capsys, **start_args(url, probe_dir, max_requests=6, api_key=None))
        deadline = time.time() + 10
        while not Path(probe_dir, 'end.json').exists() and time.time() < deadline:
            time.sleep(0.2)
    end = json.loads(Path(probe_dir, 'end.json').read_text())
    assert end['reason'] == 'max_requests' and end['totals']['sent'] == 6 and end['totals']['ok'] == 6
    status = run(capsys, state='status', path=probe_dir, window=3)
    assert status['verdict'] == 'abort' and 'has ended (max_requests)' in status['reason']


def test_bounded_by_time(capsys, probe_dir):
    with inproc.lab_server('--model', 'm', *FAST) as (url, _lab):
        run(capsys, **start_args(url, probe_dir, max_seconds=2, api_key=None))
        time.sleep(3.5)
        stopped = run(capsys, state='stopped', path=probe_dir)
    assert not stopped['changed'] and stopped['summary']['end_reason'] == 'max_seconds'
    assert 20 <= stopped['summary']['totals']['sent'] <= 42


def test_wrong_key_and_cut_streams_abort(capsys, probe_dir):
    with inproc.lab_server('--api-key', 'another-key', '--model', 'm', *FAST) as (url, _lab):
        run(capsys, **start_args(url, probe_dir))
        status = run(capsys, state='status', path=probe_dir, window=2, min_requests=3)
        run(capsys, state='stopped', path=probe_dir)
    assert status['verdict'] == 'abort' and status['window']['error_rate'] == 1.0
    assert any('HTTP 401' in reason for reason in status['window']['errors'])
    assert KEY not in files_text(probe_dir)


def test_truncated_streams_counted(capsys, probe_dir):
    slow = ('--first-token-latency-ms', '5', '--token-interval-ms', '200', '--tokens', '20')
    with inproc.lab_server('--model', 'm', *slow) as (url, _lab):
        run(capsys, **start_args(url, probe_dir, modes=['stream'], rate=4, api_key=None))
        time.sleep(2.5)
    # the server is gone: its open streams were cut, new requests are refused
    time.sleep(2.5)
    status = run(capsys, state='status', path=probe_dir, window=4, min_requests=1)
    stopped = run(capsys, state='stopped', path=probe_dir)
    assert status['verdict'] == 'abort' and status['totals']['truncated'] >= 1, status
    assert stopped['summary']['totals']['truncated'] >= 1


def test_unknown_is_never_ok(capsys, probe_dir, tmp_path):
    missing = run(capsys, state='status', path=str(tmp_path / 'nothing'))
    assert missing['verdict'] == 'abort' and 'unreadable' in missing['reason']
    with inproc.lab_server('--model', 'm', *FAST) as (url, _lab):
        run(capsys, **start_args(url, probe_dir, api_key=None))
        time.sleep(2.5)
        record = json.loads(Path(probe_dir, 'probe.json').read_text())
        with open(os.path.join(probe_dir, 'timeline.jsonl'), 'a') as handle:
            handle.write('{"t": "yesterday"}\n')
        corrupt = run(capsys, state='status', path=probe_dir, window=2, min_requests=1)
        assert corrupt['verdict'] == 'abort' and 'not a count' in corrupt['reason']
        os.kill(record['pid'], signal.SIGKILL)
        time.sleep(0.3)
        Path(probe_dir, 'timeline.jsonl').write_text('')
        gone = run(capsys, state='status', path=probe_dir, window=2, min_requests=1)
        assert gone['verdict'] == 'abort' and 'is gone' in gone['reason']


def test_check_mode_and_options(capsys, probe_dir):
    planned = run(capsys, _ansible_check_mode=True, **start_args('http://127.0.0.1:9', probe_dir))
    assert planned['changed'] and not os.path.exists(probe_dir)
    bad = run(capsys, **start_args('http://127.0.0.1:9', probe_dir, rate=500))
    assert bad['failed'] and bad['error_kind'] == 'options' and 'rate' in bad['msg']
    no_url = run(capsys, state='started', path=probe_dir, model='m', api_key=KEY)
    assert no_url['failed'] and 'url' in no_url['msg']
    user_info = run(capsys, **start_args('http://user:pw-in-url-99@127.0.0.1:9', probe_dir, max_seconds=0))
    assert user_info['failed'] and 'pw-in-url-99' not in json.dumps(user_info)
    nothing = run(capsys, state='stopped', path=probe_dir)
    assert not nothing['changed'] and nothing['summary'] is None
