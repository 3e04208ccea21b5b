# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of alertmanager_silence's argument handling against the real Alertmanager (the fixture of
test_alertmanager_silence.py): whatever it is given, it ends with exit_json or fail_json with a message, never a
traceback, writes no file, and never prints a credential."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.modules import alertmanager_silence

from fuzz import FUZZ_SETTINGS, mutated_args, run_module
from test_alertmanager_silence import fixture_alertmanager, tagged  # noqa: F401  pylint: disable=unused-import

TOKEN = 'tok-Fuzz-Secret-31'
PASSWORD = 'pw-Fuzz-Secret-47'
URL_PASS = 'urlpw-Fuzz-55'
SECRETS = [TOKEN, PASSWORD, URL_PASS]
KEYS = ['url', 'state', 'tag', 'hosts', 'host_label', 'host_match', 'matchers', 'duration', 'starts_at', 'ends_at',
        'exclusive', 'comment', 'created_by', 'username', 'password', 'bearer_token', 'timeout', 'ca_path',
        'validate_certs']


@FUZZ_SETTINGS
@given(data=st.data(), state=st.sampled_from(['present', 'absent']), auth=st.sampled_from(['token', 'basic']),
       check_mode=st.booleans())
def test_bad_input_fails_cleanly_and_keeps_the_credentials(tmp_path, alertmanager, data, state, auth, check_mode):
    base = {'url': alertmanager.replace('http://', 'http://ops:%s@' % URL_PASS), 'tag': 'fuzz', 'state': state,
            'hosts': ['gpu-1', 'gpu-2'], 'duration': '10m', 'timeout': 5, 'use_proxy': False,
            'matchers': [{'name': 'alertname', 'value': 'NodeDown', 'op': '='}]}
    base.update({'bearer_token': TOKEN} if auth == 'token' else {'username': 'ops', 'password': PASSWORD})
    args = data.draw(mutated_args(base, KEYS))
    before = len(tagged(alertmanager, 'fuzz'))
    result = run_module(alertmanager_silence.main, args, allowed_root=tmp_path, secrets=SECRETS, check_mode=check_mode)
    if check_mode:
        assert len(tagged(alertmanager, 'fuzz')) == before
    assert 'silences' in result or result.get('failed')
    keys = [sorted(str(m) for m in s['matchers']) for s in tagged(alertmanager, 'fuzz')]
    assert len(keys) == len(set(map(tuple, keys))), 'a silence was duplicated'  # whatever the options
