# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _restic as restic

BIN = '/usr/bin/restic'
REPO = ['/usr/bin/restic', '--repo', '/srv/restic']
PASSWORD = 'Tr0ub4dor&3'
SUMMARY = ('{"message_type":"status","percent_done":0,"total_files":1,"total_bytes":3}\n'
           '{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":1,"data_added":706,'
           '"total_files_processed":1,"total_bytes_processed":3,"total_duration":0.27,"snapshot_id":"75a8b6e5"}\n')
SNAPSHOTS = [
    {"time": "2026-11-24T02:00:00Z", "paths": ["/etc"], "hostname": "n1", "tags": ["daily"], "id": "aaaa1111" + "0" * 56, "short_id": "aaaa1111"},
    {"time": "2026-11-25T02:00:00Z", "paths": ["/etc"], "hostname": "n1", "tags": ["daily"], "id": "bbbb2222" + "0" * 56, "short_id": "bbbb2222"},
]


class ScriptedModule(object):
    """run_command answers from a list of (expected argv, (rc, out, err)); every call is checked in order."""

    def __init__(self, script, bins=None):
        self.bins = {'restic': BIN} if bins is None else bins
        self.script = list(script)
        self.calls = []
        self.environs = []

    def get_bin_path(self, name, required=False):
        return self.bins.get(name)

    def run_command(self, args, environ_update=None, **kwargs):
        self.calls.append(list(args))
        self.environs.append(dict(environ_update or {}))
        expected, answer = self.script.pop(0)
        assert list(args) == expected
        return answer


def make(script, **kwargs):
    module = ScriptedModule(script)
    kwargs.setdefault('password', PASSWORD)
    return module, restic.Restic(module, '/srv/restic', **kwargs)


def test_password_in_environment_never_on_the_command_line():
    module, repo = make([(REPO + ['cat', 'config'], (0, '{}', ''))])
    assert repo.exists() is True
    assert all(PASSWORD not in arg for arg in module.calls[0])
    assert module.environs[0]['RESTIC_PASSWORD'] == PASSWORD


def test_password_file_is_an_argument():
    module, repo = make([(REPO + ['--password-file', '/etc/pw', 'cat', 'config'], (0, '{}', ''))], password=None, password_file='/etc/pw')
    assert repo.exists() is True
    assert 'RESTIC_PASSWORD' not in module.environs[0]


def test_no_password_is_refused():
    with pytest.raises(restic.ResticError, match='password'):
        restic.Restic(ScriptedModule([]), '/srv/restic')


def test_restic_not_installed():
    with pytest.raises(restic.ResticError) as info:
        restic.Restic(ScriptedModule([], bins={}), '/srv/restic', password='x')
    assert info.value.kind == 'not_installed'


def test_missing_repository_is_not_an_error_for_exists():
    err = ('Fatal: unable to open config file: stat /srv/restic/config: no such file or directory\n'
           'Is there a repository at the following location?\n/srv/restic\n')
    dummy, repo = make([(REPO + ['cat', 'config'], (1, '', err))])
    assert repo.exists() is False


@pytest.mark.parametrize('err,kind', [
    ('Fatal: wrong password or no key found\n', 'wrong_password'),
    ('unable to create lock in backend: repository is already locked exclusively by PID 16456 on vm by root\n', 'locked'),
    ('Fatal: unable to open config file: stat /srv/restic/config: no such file or directory\n', 'missing'),
    ('Pack ID does not match, want 9397, got 33b7\nFatal: repository contains errors\n', 'corrupt'),
    ('ignoring error for /etc/x: write /t/etc/x: no space left on device\nThere were 1 errors\n', 'no_space'),
    ('Fatal: something else\n', 'error'),
])
def test_classification(err, kind):
    assert restic.classify(err)[0] == kind


def test_wrong_password_error_is_clear_and_scrubbed():
    # restic does not print the password, but a hostile or verbose backend message could: it is removed anyway.
    dummy, repo = make([(REPO + ['snapshots', '--json'], (1, '', 'Fatal: wrong password or no key found (tried %s)\n' % PASSWORD))])
    with pytest.raises(restic.ResticError) as info:
        repo.snapshots()
    assert info.value.kind == 'wrong_password'
    assert 'wrong repository password' in str(info.value)
    assert PASSWORD not in str(info.value) and restic.MASK in str(info.value)


def test_env_values_and_url_passwords_are_scrubbed():
    module = ScriptedModule([])
    repo = restic.Restic(module, 'rest:https://node1:urlsecret@backup:8000/node1', password=PASSWORD,
                         env={'AWS_SECRET_ACCESS_KEY': 's3secretkey'})
    text = repo.scrub('x %s y s3secretkey z urlsecret' % PASSWORD)
    assert PASSWORD not in text and 's3secretkey' not in text and 'urlsecret' not in text
    assert restic.redact_url(repo.repository) == 'rest:https://node1:********@backup:8000/node1'
    assert repo.environ()['AWS_SECRET_ACCESS_KEY'] == 's3secretkey'


def test_backup_arguments_and_summary():
    args = REPO + ['backup', '--json', '--host', 'n1', '--tag', 'daily', '--tag', 'reason:x', '--exclude', '/srv/models/public',
                   '--exclude-caches', '--', '/etc', '/var/lib/onprem_ai']
    dummy, repo = make([(args, (0, SUMMARY, ''))])
    summary, warnings = repo.backup(['/etc', '/var/lib/onprem_ai'], exclude=['/srv/models/public'], tags=['daily', 'reason:x'], host='n1')
    assert summary['snapshot_id'] == '75a8b6e5' and summary['files_new'] == 1 and warnings == []


def test_backup_incomplete_snapshot_is_a_warning():
    args = REPO + ['backup', '--json', '--exclude-caches', '--', '/etc']
    dummy, repo = make([(args, (3, SUMMARY, 'error: open /etc/shadow-: permission denied\n'))])
    summary, warnings = repo.backup(['/etc'])
    assert summary['snapshot_id'] == '75a8b6e5' and 'incomplete' in warnings[0]


def test_backup_failure_without_summary():
    args = REPO + ['backup', '--json', '--exclude-caches', '--', '/etc']
    dummy, repo = make([(args, (1, '', 'Fatal: unable to create lock in backend: repository is already locked\n'))])
    with pytest.raises(restic.ResticError) as info:
        repo.backup(['/etc'])
    assert info.value.kind == 'locked' and 'restic unlock' in str(info.value)


def test_forget_then_prune_only_when_something_was_removed():
    forget = [{"host": "n1", "keep": [SNAPSHOTS[1]], "remove": [SNAPSHOTS[0]]}]
    dummy, repo = make([
        (REPO + ['forget', '--json', '--host', 'n1', '--keep-daily', '7', '--keep-weekly', '4', '--group-by', 'host'],
         (0, json.dumps(forget) + '\n', '')),
        (REPO + ['prune'], (0, 'done\n', '')),
    ])
    result = repo.forget(restic.retention_args(keep_daily=7, keep_weekly=4), host='n1')
    assert result == {'kept': ['bbbb2222'], 'removed': ['aaaa1111'], 'pruned': True}

    dummy, repo = make([(REPO + ['forget', '--json', '--keep-last', '1', '--group-by', 'host'],
                         (0, json.dumps([{"keep": SNAPSHOTS, "remove": None}]), ''))])
    assert repo.forget(restic.retention_args(keep_last=1)) == {'kept': ['aaaa1111', 'bbbb2222'], 'removed': [], 'pruned': False}


def test_check_ok_and_corrupt():
    dummy, repo = make([(REPO + ['check', '--read-data-subset', '10%'], (0, 'load indexes\nno errors were found\n', ''))])
    assert repo.check('10%')['ok'] is True
    out = 'load indexes\ncheck all packs\nread all data\n'
    err = 'Pack ID does not match, want 93974bc8, got 33b73d8b\nFatal: repository contains errors\n'
    dummy, repo = make([(REPO + ['check'], (1, out, err))])
    with pytest.raises(restic.ResticError) as info:
        repo.check()
    assert info.value.kind == 'corrupt'
    assert info.value.output == ['Pack ID does not match, want 93974bc8, got 33b73d8b']


def test_check_with_wrong_password_is_not_reported_as_corruption():
    dummy, repo = make([(REPO + ['check'], (1, '', 'Fatal: wrong password or no key found\n'))])
    with pytest.raises(restic.ResticError) as info:
        repo.check()
    assert info.value.kind == 'wrong_password'


def test_resolve_latest_and_by_id():
    dummy, repo = make([(REPO + ['snapshots', '--json', '--host', 'n1'], (0, json.dumps(SNAPSHOTS), ''))] * 2)
    assert repo.resolve('latest', host='n1')['short_id'] == 'bbbb2222'
    assert repo.resolve('aaaa11', host='n1')['short_id'] == 'aaaa1111'
    dummy, repo = make([(REPO + ['snapshots', '--json'], (0, '[]', ''))])
    with pytest.raises(restic.ResticError) as info:
        repo.resolve('latest')
    assert info.value.kind == 'no_snapshot'


def test_restore_onto_a_full_disk_fails_clearly():
    err = 'ignoring error for /etc/big: write /mnt/small/etc/big: no space left on device\nThere were 1 errors\n'
    dummy, repo = make([(REPO + ['restore', 'bbbb2222', '--target', '/mnt/small', '--include', '/etc', '--verify'], (1, '', err))])
    with pytest.raises(restic.ResticError) as info:
        repo.restore('bbbb2222', '/mnt/small', include=['/etc'])
    assert info.value.kind == 'no_space' and 'target file system is full' in str(info.value)


def test_parse_json_lines_accepts_documents_and_lines():
    assert restic.parse_json_lines('[{"a": 1}]') == [{'a': 1}]
    assert restic.parse_json_lines('noise\n{"a": 1}\n{"b": 2}\n') == [{'a': 1}, {'b': 2}]
    assert restic.parse_json_lines('') == []


def test_verify_restore(tmp_path):
    (tmp_path / 'etc' / 'app').mkdir(parents=True)
    (tmp_path / 'etc' / 'app' / 'a.conf').write_text('abc')
    (tmp_path / 'etc' / 'app' / 'b.conf').write_text('abcdef')
    nodes = [{'path': '/etc', 'type': 'dir'}, {'path': '/etc/app', 'type': 'dir'},
             {'path': '/etc/app/a.conf', 'type': 'file', 'size': 3}, {'path': '/etc/app/b.conf', 'type': 'file', 'size': 5},
             {'path': '/etc/app/c.conf', 'type': 'file', 'size': 1}, {'path': '/var/x', 'type': 'file', 'size': 1}]
    result = restic.verify_restore(nodes, str(tmp_path), include=['/etc/app'])
    assert result['ok'] is False and result['files'] == 1 and result['bytes'] == 3
    assert result['missing'] == ['/etc/app/c.conf']
    assert result['size_mismatch'] == [{'path': '/etc/app/b.conf', 'expected': 5, 'found': 6}]


def test_snapshot_age():
    now = 1764110472.0  # 2025-11-25T22:41:12Z
    assert restic.snapshot_age('2025-11-25T22:41:02.500000000Z', now=now) == 9.5
    assert restic.snapshot_age('2025-11-25T23:41:02+01:00', now=now) == 10.0
    assert restic.snapshot_age('garbage', now=now) is None
