# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of backup_snapshot's argument handling (issue 11): whatever it is given, it ends with
exit_json or fail_json with a message, never a traceback, writes only under its state and restore directories,
and never prints the repository password, the password inside the repository URL or an env value."""

from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.onprem_ai.maintenance.plugins.modules import backup_snapshot

from fuzz import FUZZ_SETTINGS, JUNK_WITH_INFINITY, mutated_args, run_module

PASSWORD = 'repo-Pass-FUZZ-4471'
URL_SECRET = 'url-Se@cret-FUZZ-93'
ENV_SECRET = 'env-Secret-FUZZ-58'
SECRETS = [PASSWORD, URL_SECRET, ENV_SECRET, URL_SECRET.split('@', 1)[1]]
VALID = {
    'repository': 'rest:https://n1:%s@backup.example.internal:8000/n1/' % URL_SECRET,
    'password': PASSWORD,
    'env': {'AWS_SECRET_ACCESS_KEY': ENV_SECRET},
    'action': 'backup',
    'paths': ['/etc/hostname'],
    'tags': ['daily'],
    'reason': 'fuzz',
    'keep_last': 3,
    'read_data_subset': '10%',
    'snapshot': 'latest',
    'include': [],
    'exclude': [],
    'group_by': ['host', 'tags'],
}
# Everything but the directories the module writes to (state_dir, target, cache_dir: placed under tmp_path).
KEYS = sorted(set(VALID) | {'password_file', 'host', 'keep_daily', 'keep_weekly', 'keep_monthly', 'prune', 'verify', 'manifest',
                            'models_root', 'litellm_dir', 'litellm_config'})
SNAPSHOTS = json.dumps([{'time': '2026-11-25T02:00:00Z', 'id': 'abcd1234' * 8, 'short_id': 'abcd1234', 'paths': ['/etc'],
                         'tags': ['daily'], 'hostname': 'n1'}])
SUMMARY = '{"message_type":"summary","files_new":1,"snapshot_id":"75a8b6e5"}\n'


def restic(argv, **kwargs):
    """A restic that answers (and echoes the secrets of its environment in its errors, as a hostile backend could)."""
    environ = kwargs.get('environ_update') or {}
    if not argv or not argv[0].endswith('restic'):
        return 1, '', 'not here'
    words = [a for a in argv[1:] if not a.startswith('-')]
    answers = {'snapshots': (0, SNAPSHOTS, ''), 'backup': (0, SUMMARY, ''), 'forget': (0, '[]', ''), 'cat': (0, '{}', ''),
               'ls': (0, '', ''), 'check': (0, 'no errors were found\n', '')}
    for word in words:
        if word in answers:
            return answers[word]
    return 1, '', 'Fatal: failed with %s' % ' '.join(str(v) for v in environ.values())


def directories(tmp_path, args):
    args = dict(args)
    args['state_dir'] = str(tmp_path / 'state')
    args['cache_dir'] = str(tmp_path / 'cache')
    args['target'] = str(tmp_path / 'restore')
    return args


@FUZZ_SETTINGS
@given(args=mutated_args(VALID, KEYS, infinity=True), action=st.sampled_from(['init', 'backup', 'forget', 'check', 'snapshots', 'restore']))
def test_bad_input_fails_cleanly_and_keeps_the_secrets(tmp_path, args, action):
    args = directories(tmp_path, dict(args, action=args.get('action', action)))
    result = run_module(backup_snapshot.main, args, allowed_root=tmp_path, secrets=SECRETS, commands=restic)
    if result.get('failed'):
        assert 'Traceback' not in result['msg']


@FUZZ_SETTINGS
@given(value=st.one_of(JUNK_WITH_INFINITY, st.integers(min_value=-10 ** 6, max_value=0)), option=st.sampled_from(
    ['keep_last', 'keep_daily', 'keep_weekly', 'keep_monthly']))
def test_no_bad_keep_count_reaches_restic(tmp_path, value, option):
    calls = []

    def recording(argv, **kwargs):
        calls.append(list(argv))
        return restic(argv, **kwargs)

    args = directories(tmp_path, dict(VALID, action='forget', **{option: value}))
    result = run_module(backup_snapshot.main, args, allowed_root=tmp_path, secrets=SECRETS, commands=recording)
    forgets = [c for c in calls if 'forget' in c]
    for argv in forgets:
        counts = [int(argv[i + 1]) for i, arg in enumerate(argv) if arg.startswith('--keep-')]
        assert counts and min(counts) >= 1
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        assert result.get('failed') and not forgets


@FUZZ_SETTINGS
@given(extra=st.dictionaries(st.from_regex(r'\A[A-Z_][A-Z0-9_]{0,8}\Z'), st.from_regex(r'\A[a-zA-Z0-9]{10,16}\Z'), max_size=3),
       form=st.sampled_from(['dict', 'json', 'kv']))
def test_env_values_are_masked_in_every_form(tmp_path, extra, form):
    env = dict(extra, AWS_SECRET_ACCESS_KEY=ENV_SECRET)
    if form == 'json':
        env = json.dumps(env)
    elif form == 'kv':
        env = ' '.join('%s=%s' % item for item in env.items())
    args = directories(tmp_path, dict(VALID, action='check', read_data_subset=None, env=env))
    values = list(extra.values())
    result = run_module(backup_snapshot.main, args, allowed_root=tmp_path, secrets=SECRETS + values,
                        commands=lambda argv, **kw: (1, '', 'Fatal: %s' % ' '.join((kw.get('environ_update') or {}).values())))
    assert result.get('failed')


def test_the_valid_arguments_back_up(tmp_path):
    result = run_module(backup_snapshot.main, directories(tmp_path, VALID), allowed_root=tmp_path, secrets=SECRETS, commands=restic)
    assert result.get('changed') and result['snapshot']['id'] == '75a8b6e5', result
    assert oct(os.stat(str(tmp_path / 'state' / 'backup_manifest.json')).st_mode & 0o777) == '0o600'


def test_an_infinite_keep_count_fails_with_a_message(tmp_path):
    args = directories(tmp_path, dict(VALID, action='forget', keep_last=float('-inf')))
    result = run_module(backup_snapshot.main, args, allowed_root=tmp_path, secrets=SECRETS, commands=restic)
    assert result.get('failed') and 'infinite' in result['msg'], result
