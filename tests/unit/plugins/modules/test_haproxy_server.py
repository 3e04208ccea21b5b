# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy_server as a module, against the loopback runtime API of test_haproxy.py (real HAProxy 2.6 `show stat`
captures): drain and ready, check mode, and whatever it is given it fails cleanly (property test)."""

from __future__ import annotations

import os
import sys

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.modules import haproxy_server

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))
from test_haproxy import fake  # noqa: E402  pylint: disable=wrong-import-position

TARGET = {'backend': 'model_llama-3.1-8b-instruct', 'server': 'lab-gpu-1'}


def test_drain_then_ready(tmp_path):
    with fake(tmp_path, states={('model_llama-3.1-8b-instruct', 'lab-gpu-1'): {'status': 'UP', 'scur': [1, 1, 0]}}) as f:
        args = {'socket': f.path, 'servers': [TARGET], 'state': 'drained', 'poll_interval': 0.05}
        planned = run_module(haproxy_server.main, args, allowed_root=tmp_path, check_mode=True)
        assert planned['changed'] and planned['after'][0]['status'] == 'UP'
        assert not [c for c in f.commands if c.startswith('set ')]
        done = run_module(haproxy_server.main, args, allowed_root=tmp_path)
        assert done['changed'] and done['after'][0]['status'] == 'MAINT' and done['before'][0]['sessions'] == 1
        assert not run_module(haproxy_server.main, args, allowed_root=tmp_path)['changed']
        back = run_module(haproxy_server.main, dict(args, state='ready'), allowed_root=tmp_path)
        assert back['changed'] and back['after'][0]['status'] == 'UP'


def test_bad_options_fail_with_a_message(tmp_path):
    for bad, words in (({'servers': []}, 'servers is empty'), ({'timeout': 0}, 'timeout'),
                       ({'poll_interval': 0.001}, 'poll_interval'), ({'poll_interval': float('nan')}, 'poll_interval')):
        args = dict({'socket': str(tmp_path / 'none.sock'), 'servers': [TARGET], 'state': 'drained'}, **bad)
        result = run_module(haproxy_server.main, args, allowed_root=tmp_path)
        assert result['failed'] and words in result['msg'], result
    result = run_module(haproxy_server.main, {'socket': str(tmp_path / 'none.sock'), 'servers': [TARGET], 'state': 'ready'},
                        allowed_root=tmp_path)
    assert result['failed'] and result['error_kind'] == 'unreadable' and 'none.sock' in result['msg']


@FUZZ_SETTINGS
@given(data=st.data(), check_mode=st.booleans())
def test_bad_input_fails_cleanly(tmp_path, data, check_mode):
    base = {'socket': str(tmp_path / 'none.sock'), 'servers': [TARGET], 'state': 'drained', 'timeout': 5,
            'poll_interval': 0.2, 'keep_serving': True}
    # not socket: a junk host:port would be a connection off this machine
    args = data.draw(mutated_args(base, [k for k in base if k != 'socket']))
    run_module(haproxy_server.main, args, allowed_root=tmp_path, check_mode=check_mode)
