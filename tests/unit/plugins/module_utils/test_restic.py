# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_restic: the cases of test_restic.yaml (commands and results as data), run through a small module that drives one
repository; then restic's text handling (classification, condensing, URL secrets) and the restore target checks."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _restic as restic
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'modules'))  # the one helper of the data-driven tests
from helper import load_cases, run_case  # noqa: E402  pylint: disable=wrong-import-position

BIN = '/usr/bin/restic'
PASSWORD = 'Tr0ub4dor&3'


class ScriptedModule(object):
    """For the tests that build a Restic without running it (scrubbing, URL secrets)."""

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


def main():
    """A module that drives one Restic: input `repository`, `password` / `password_file` / `env` and `calls` ([method, args...])."""
    module = OnpremModule(argument_spec=dict(repository=dict(type='str', required=True), password=dict(type='str', no_log=False),
                                             password_file=dict(type='str'), env=dict(type='dict'),
                                             calls=dict(type='list', elements='raw', required=True)), supports_check_mode=True)
    params = module.params
    repo = None
    try:
        repo = restic.Restic(module, params['repository'], password=params['password'], password_file=params['password_file'],
                             env=params['env'])
        results = [getattr(repo, call[0])(*call[1:]) for call in params['calls']]
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(**failure(exc, redact=repo.scrub if repo else None))
    module.exit_json(changed=False, results=results)


@pytest.mark.parametrize('case', load_cases(__file__))
def test_case(case, tmp_path, monkeypatch):
    run_case(main, case, tmp_path, monkeypatch)


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


def test_env_values_and_url_passwords_are_scrubbed():
    module = ScriptedModule([])
    repo = restic.Restic(module, 'rest:https://node1:urlsecret@backup:8000/node1', password=PASSWORD,
                         env={'AWS_SECRET_ACCESS_KEY': 's3secretkey'})
    text = repo.scrub('x %s y s3secretkey z urlsecret' % PASSWORD)
    assert PASSWORD not in text and 's3secretkey' not in text and 'urlsecret' not in text
    assert restic.redact_url(repo.repository) == 'rest:https://node1:********@backup:8000/node1'
    assert repo.environ()['AWS_SECRET_ACCESS_KEY'] == 's3secretkey'


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


# -- issue 11 ------------------------------------------------------------------------------------------------
FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'restic')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize('value', [-1, 0, -100, restic.KEEP_MAX + 1, True, '3', 2.5])
def test_retention_refuses_counts_out_of_range(value):
    # keep_last: -1 made restic forget (and prune) every snapshot.
    with pytest.raises(restic.ResticError) as info:
        restic.retention_args(keep_last=value)
    assert info.value.kind == 'usage' and 'nothing was forgotten' in str(info.value)


def test_retention_accepts_the_range():
    assert restic.retention_args(keep_last=1, keep_daily=restic.KEEP_MAX) == ['--keep-last', '1', '--keep-daily', str(restic.KEEP_MAX)]


@pytest.mark.parametrize('url,masked,secret', [
    ('rest:https://n1:p@ss@backup:8000/n1/', 'rest:https://n1:********@backup:8000/n1/', 'p@ss'),
    ('rest:https://n1:a@b@c@backup/n1', 'rest:https://n1:********@backup/n1', 'a@b@c'),
    ('rest:https://n1:pa:ss@backup:8000/', 'rest:https://n1:********@backup:8000/', 'pa:ss'),
    ('rest:https://n1:p%40ss@backup:8000/', 'rest:https://n1:********@backup:8000/', 'p%40ss'),
    ('s3:https://key:sec@ret@s3.example/bucket', 's3:https://key:********@s3.example/bucket', 'sec@ret'),
    ('rest:https://n1@backup:8000/n1', 'rest:https://n1@backup:8000/n1', None),
    ('rest:https://backup:8000/path@x', 'rest:https://backup:8000/path@x', None),
    ('sftp:backup@host:/srv/restic', 'sftp:backup@host:/srv/restic', None),
    ('/srv/restic', '/srv/restic', None),
])
def test_url_password_masked_up_to_the_last_at(url, masked, secret):
    assert restic.redact_url(url) == masked
    assert restic.url_secret(url) == secret
    if secret:
        repo = restic.Restic(ScriptedModule([]), url, password=PASSWORD)
        text = repo.scrub('Fatal: open %s failed (%s)' % (url, secret))
        assert secret not in text and secret.split('@')[-1] not in text.split('failed')[1]


# Captured from restic 0.14.0 (Debian 12) on this machine: --password-file naming a missing file, a REST server
# that refuses the connection, an SFTP server that cannot be reached.
@pytest.mark.parametrize('err,kind', [
    ('Resolving password failed: Fatal: /etc/onprem_ai/nope does not exist\n', 'password_file'),
    ('Resolving password failed: open /etc/onprem_ai/restic.pass: permission denied\n', 'password_file'),
    ('Fatal: unable to open config file: client.Head: Head "http://u:***@127.0.0.1:1/x/config": dial tcp 127.0.0.1:1: '
     'connect: connection refused\nIs there a repository at the following location?\nrest:http://u:***@127.0.0.1:1/x/\n', 'unreachable'),
    ('subprocess ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused\nFatal: unable to open repository at '
     'sftp:nobody@127.0.0.1:/x: unable to start the sftp session, error: EOF\n', 'unreachable'),
    ('unable to create lock in backend: repository is already locked by PID 4099 on vm by root (UID 0, GID 0)\n'
     'lock was created at 2026-12-02 04:31:44 (2.894889243s ago)\nstorage ID ae088b1c\n'
     'the `unlock` command can be used to remove stale locks\n', 'locked'),
    ('Fatal: unable to open config file: stat none/config: no such file or directory\n'
     'Is there a repository at the following location?\nnone\n', 'missing'),
])
def test_classification_of_real_failures(err, kind):
    assert restic.classify(err)[0] == kind


def test_condense_keeps_distinct_lines_once():
    text = 'a\n[0:01] 10%\nb\na\nLoad(<data/1>, 0, 0) returned error, retrying after 1s: boom\nLoad(<data/1>, 0, 0) returned error, retrying after 2s: boom\n'
    assert restic.condense(text) == 'Load <data/1>: boom (retried 2 times)\na\nb'


def test_condense_puts_the_cause_first_even_with_many_files():
    # The lab's restore from a repository without data packs: 13 packs retried ten times each, 26 files ignored.
    lines = []
    for pack in range(13):
        for attempt in range(10):
            lines.append('Load(<data/%02x5e30a3>, 0, 0) returned error, retrying after %d.5s: open /r/data/%02x: no such file or directory'
                         % (pack, attempt, pack))
    for index in range(26):
        lines.append('ignoring error for /srv/data/file-%02d.bin: StreamPack: open /r/data/%02x: no such file or directory' % (index, index))
    lines.append('Fatal: There were 26 errors')
    msg = restic.condense('\n'.join(lines))
    assert msg.startswith('Load <data/005e30a3>: open /r/data/00: no such file or directory (retried 10 times)')
    assert '(10 more reads failed the same way after retries)' in msg and '(23 more files not restored)' in msg
    assert msg.endswith('Fatal: There were 26 errors') and 'retrying after' not in msg and len(msg) <= 1500
    long = restic.condense('\n'.join('line %d %s' % (i, 'x' * 100) for i in range(100)) + '\nFatal: last')
    assert len(long) <= 1500 and long.endswith(' ...\nFatal: last')


@pytest.mark.parametrize('value,ok', [('10%', True), ('100%', True), ('0.5%', True), ('1/5', True), ('5/5', True), ('500M', True),
                                      ('0%', False), ('101%', False), ('0/5', False), ('6/5', False), ('-1/5', False),
                                      ('x', False), ('', False), ('10%;rm', False)])
def test_read_data_subset_shape(value, ok):
    if ok:
        assert restic.check_read_data_subset(value) == value
    else:
        with pytest.raises(restic.ResticError):
            restic.check_read_data_subset(value)


# -- restore target --------------------------------------------------------------------------------------------
NOBODY = 65534


def test_private_target_is_created_0700(tmp_path):
    target = tmp_path / 'drill' / 'restore'
    assert restic.private_target(str(target)) == str(target)
    assert stat.S_IMODE(os.lstat(str(target)).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(str(tmp_path / 'drill')).st_mode) == 0o700


def test_private_target_refuses_a_symlink_component(tmp_path):
    (tmp_path / 'real').mkdir()
    os.symlink(str(tmp_path / 'real'), str(tmp_path / 'link'))
    for target in (tmp_path / 'link', tmp_path / 'link' / 'restore'):
        with pytest.raises(restic.ResticError) as info:
            restic.private_target(str(target))
        assert info.value.kind == 'unsafe_target' and 'symbolic link' in str(info.value)
    assert not os.path.exists(str(tmp_path / 'real' / 'restore'))


def test_private_target_refuses_a_world_writable_parent(tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)  # like /var/tmp
    with pytest.raises(restic.ResticError) as info:
        restic.private_target(str(shared / 'onprem_ai_drill'))
    assert info.value.kind == 'unsafe_target' and not os.path.exists(str(shared / 'onprem_ai_drill'))


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to hand a directory to another user')
def test_private_target_refuses_a_parent_of_another_user_with_a_planted_link(tmp_path):
    # The finding: another user owns the parent and plants a link where the target will be; root follows it.
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    os.chown(str(theirs), NOBODY, NOBODY)
    victim = tmp_path / 'victim'
    victim.mkdir()
    os.symlink(str(victim), str(theirs / 'restore'))
    with pytest.raises(restic.ResticError) as info:
        restic.private_target(str(theirs / 'restore'))
    assert info.value.kind == 'unsafe_target'
    with pytest.raises(restic.ResticError):
        restic.private_target(str(theirs / 'fresh'))
    assert not os.path.exists(str(theirs / 'fresh'))
    # A component under a sticky world-writable directory that another user owns is refused too.
    sticky = tmp_path / 'tmp'
    sticky.mkdir()
    os.chmod(str(sticky), 0o1777)
    (sticky / 'dir').mkdir()
    os.chown(str(sticky / 'dir'), NOBODY, NOBODY)
    with pytest.raises(restic.ResticError):
        restic.private_target(str(sticky / 'dir' / 'sub' / 'restore'))


def test_private_target_refuses_relative_and_dotdot(tmp_path):
    for target in ('relative/dir', str(tmp_path / 'a' / '..' / 'b'), '/x\x00y'):
        with pytest.raises(restic.ResticError):
            restic.private_target(target)


def test_private_target_accepts_root_and_an_existing_private_dir(tmp_path):
    assert restic.private_target('/') == '/'
    (tmp_path / 'ok').mkdir(mode=0o755)
    assert restic.private_target(str(tmp_path / 'ok')) == str(tmp_path / 'ok')
