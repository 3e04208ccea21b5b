# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import stat
import subprocess
import sys
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _models as models
from ansible_collections.onprem_ai.maintenance.plugins.modules import backup_snapshot

PASSWORD = 'correct-horse-battery'
SUMMARY = '{"message_type":"summary","files_new":2,"files_changed":0,"files_unmodified":0,"data_added":900,"snapshot_id":"75a8b6e5"}\n'
BINS = {'restic': '/usr/bin/restic', 'dpkg-query': '/usr/bin/dpkg-query', 'docker': '/usr/bin/docker'}


def subcommand(argv):
    """The restic subcommand of an argv, after the global options that take a value."""
    rest = list(argv[1:])
    while rest and rest[0] in ('--repo', '--password-file', '--cache-dir'):
        rest = rest[2:]
    return rest[0]


class Commands(object):
    """Fake run_command: answers by program (and restic subcommand); records argv and environment."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, args, environ_update=None, **kwargs):
        self.calls.append((list(args), dict(environ_update or {})))
        name = os.path.basename(args[0])
        if name == 'restic':
            sub = subcommand(args)
            answer = self.answers['restic ' + sub]
            return answer(args) if callable(answer) else answer
        return self.answers.get(name, (127, '', 'not found'))


def model_store(root, name, version):
    """A model store written by model_pull's own code (plugins/module_utils/_models.py): the contract the manifest reads."""
    store = models.ModelStore(str(root), name)
    os.makedirs(store.version_dir(version))
    with open(os.path.join(store.version_dir(version), 'weights.bin'), 'w') as handle:
        handle.write('weights')
    entries = [{'path': 'weights.bin', 'size': 7, 'sha256': models.sha256_file(os.path.join(store.version_dir(version), 'weights.bin')),
                'url': 'https://user:pull-Secret-77@mirror.example/weights.bin?X-Amz-Signature=presigned'}]
    manifest_data = {'format': models.MANIFEST_FORMAT, 'name': name, 'version': version, 'files': entries, 'size': 7,
                     'digest': models.content_digest(entries), 'source': 'http'}
    store.write_manifest(store.version_dir(version), manifest_data)
    store.switch(version)
    puller = models.ModelPull({'dest_root': str(root), 'name': name})
    puller.save_record({}, version, manifest_data, None)
    return manifest_data['digest']


def run_module(mocker, capsys, args, answers, check_mode=False):
    commands = Commands(answers)
    mocker.patch.object(basic.AnsibleModule, 'run_command', side_effect=commands)
    mocker.patch.object(basic.AnsibleModule, 'get_bin_path', side_effect=lambda name, required=False, opt_dirs=None: BINS.get(name))
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            backup_snapshot.main()
    out = capsys.readouterr().out
    return json.loads(out), out, commands


def base(tmp_path, **kwargs):
    return dict(repository=str(tmp_path / 'repo'), password=PASSWORD, state_dir=str(tmp_path / 'state'), **kwargs)


def test_backup_writes_the_manifest_and_snapshots_it(mocker, capsys, tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'a.txt').write_text('hello')
    (tmp_path / 'state').mkdir()
    digest = model_store(tmp_path / 'models', 'llama', '3.1')
    answers = {'restic backup': (0, SUMMARY, ''), 'dpkg-query': (0, 'restic\t0.14.0-1+b5\tii \nbash\t5.2\tii \n', ''),
               'docker': (0, 'vllm/vllm-openai\tv0.8.5\tsha256:1234\tabcd\n', '')}
    args = base(tmp_path, paths=[str(data), str(tmp_path / 'nope')], tags=['daily'], reason='before update',
                models_root=str(tmp_path / 'models'))
    result, out, commands = run_module(mocker, capsys, args, answers)
    assert result['changed'] is True and result['snapshot']['id'] == '75a8b6e5'
    manifest_path = str(tmp_path / 'state' / 'backup_manifest.json')
    assert result['manifest_path'] == manifest_path and os.path.isfile(manifest_path)
    backup_argv, environ = [c for c in commands.calls if c[0][0] == '/usr/bin/restic'][0]
    assert backup_argv[-2:] == [str(data), manifest_path]
    assert ['--tag', 'daily'] == backup_argv[7:9] and 'reason:before-update' in backup_argv
    assert environ['RESTIC_PASSWORD'] == PASSWORD and PASSWORD not in ' '.join(backup_argv)
    stored = json.load(open(manifest_path))
    assert stored['packages']['restic'] == '0.14.0-1+b5'
    assert stored['container_images'] == [{'repository': 'vllm/vllm-openai', 'tag': 'v0.8.5', 'digest': 'sha256:1234', 'id': 'abcd'}]
    assert stored['models'][0]['digest'] == digest and stored['models'][0]['version'] == '3.1'
    assert stored['litellm'] is None and stored['reason'] == 'before update'
    assert stored['paths'][0] == {'path': str(data), 'exists': True, 'files': 1, 'bytes': 5}
    assert 'does not exist' in json.dumps(result.get('warnings'))
    assert PASSWORD not in out


def test_wrong_password_fails_clearly_and_never_prints_it(mocker, capsys, tmp_path):
    answers = {'restic snapshots': (1, '', 'Fatal: wrong password or no key found\n')}
    result, out, dummy = run_module(mocker, capsys, base(tmp_path, action='snapshots'), answers)
    assert result['failed'] is True and result['error_kind'] == 'wrong_password'
    assert 'wrong repository password' in result['msg']
    assert PASSWORD not in out


def test_init_is_idempotent_and_check_mode_creates_nothing(mocker, capsys, tmp_path):
    missing = (1, '', 'Fatal: unable to open config file: stat x/config: no such file or directory\nIs there a repository at the following location?\n')
    result, dummy, commands = run_module(mocker, capsys, base(tmp_path, action='init'), {'restic cat': missing}, check_mode=True)
    assert result['changed'] is True and result['initialized'] is True
    assert not [c for c in commands.calls if 'init' in c[0]]
    result, dummy, commands = run_module(mocker, capsys, base(tmp_path, action='init'), {'restic cat': (0, '{}', '')})
    assert result['changed'] is False and result['initialized'] is False


def test_corrupt_repository_check_fails(mocker, capsys, tmp_path):
    answers = {'restic check': (1, 'check all packs\n', 'pack 93974bc8 does not exist\nFatal: repository contains errors\n')}
    result, dummy, dummy2 = run_module(mocker, capsys, base(tmp_path, action='check'), answers)
    assert result['failed'] is True and result['error_kind'] == 'corrupt' and 'pack 93974bc8 does not exist' in result['msg']


def test_restore_verifies_against_listing_and_manifest(mocker, capsys, tmp_path):
    target = tmp_path / 'target'
    state_dir = str(tmp_path / 'state')
    snapshots = [{'time': '2026-11-25T02:00:00Z', 'id': 'bbbb2222' + '0' * 56, 'short_id': 'bbbb2222', 'paths': ['/etc/app'], 'hostname': 'n1'}]
    manifest_rel = os.path.join(state_dir, 'backup_manifest.json').lstrip('/')

    def restore(args):
        (target / 'etc' / 'app').mkdir(parents=True)
        (target / 'etc' / 'app' / 'a.conf').write_text('abc')
        os.makedirs(os.path.dirname(str(target / manifest_rel)))
        (target / manifest_rel).write_text(json.dumps({'paths': [{'path': '/etc/app', 'exists': True, 'files': 1, 'bytes': 3}]}))
        return (0, 'restoring ...\nfinished verifying 2 files\n', '')

    listing = '\n'.join(json.dumps(n) for n in [
        {'struct_type': 'snapshot', 'id': 'bbbb2222'},
        {'struct_type': 'node', 'path': '/etc/app', 'type': 'dir'},
        {'struct_type': 'node', 'path': '/etc/app/a.conf', 'type': 'file', 'size': 3}])
    answers = {'restic snapshots': (0, json.dumps(snapshots), ''), 'restic restore': restore, 'restic ls': (0, listing, '')}
    result, dummy, commands = run_module(mocker, capsys, base(tmp_path, action='restore', target=str(target)), answers)
    assert result['changed'] is True and result['snapshot']['short_id'] == 'bbbb2222'
    assert result['verification']['ok'] is True and result['verification']['files'] == 1
    assert result['verification']['manifest']['paths'][0]['found_files'] == 1
    restore_argv = [c[0] for c in commands.calls if 'restore' in c[0]][0]
    assert restore_argv[3:] == ['restore', 'bbbb2222' + '0' * 56, '--target', str(target), '--verify']


def test_restore_missing_file_fails_verification(mocker, capsys, tmp_path):
    snapshots = [{'time': '2026-11-25T02:00:00Z', 'id': 'cccc', 'short_id': 'cccc', 'paths': ['/etc/app']}]
    listing = json.dumps({'struct_type': 'node', 'path': '/etc/app/a.conf', 'type': 'file', 'size': 3})
    answers = {'restic snapshots': (0, json.dumps(snapshots), ''), 'restic restore': (0, '', ''), 'restic ls': (0, listing, '')}
    result, dummy, dummy2 = run_module(mocker, capsys, base(tmp_path, action='restore', target=str(tmp_path / 't')), answers)
    assert result['failed'] is True and result['error_kind'] == 'verify' and result['verification']['missing'] == ['/etc/app/a.conf']


def test_forget_needs_a_policy(mocker, capsys, tmp_path):
    result, dummy, dummy2 = run_module(mocker, capsys, base(tmp_path, action='forget'), {})
    assert result['failed'] is True and 'keep_daily' in result['msg']


def test_manifest_without_optional_parts(tmp_path):
    class Bare(object):
        def which(self, name):
            return None

        def run(self, args):
            raise AssertionError(args)

    data = manifest.build(Bare(), [str(tmp_path)], state_dir=str(tmp_path / 'none'), include_gpu=False,
                          models_root=str(tmp_path / 'models'), litellm_dir=str(tmp_path / 'litellm'),
                          litellm_config=str(tmp_path / 'missing.yaml'))
    # No package manager: not "no packages" but unreadable, and said so.
    assert data['packages'] is None and 'neither dpkg-query nor rpm' in data['unreadable']['packages']
    assert data['container_images'] is None and data['litellm'] is None
    assert data['models'] is None and data['records'] is None


def test_manifest_litellm_config_hash(tmp_path):
    config = tmp_path / 'config.yaml'
    config.write_text('model_list: []\n')
    result = manifest.litellm(None, install_dir=str(tmp_path / 'none'), config_path=str(config))
    assert result['config']['sha256'] == manifest.sha256_file(str(config)) and result['version'] is None


def test_manifest_counts_leave_out_excluded_paths(tmp_path):
    (tmp_path / 'etc').mkdir()
    (tmp_path / 'etc' / 'restic.pass').write_text('secret')
    (tmp_path / 'etc' / 'backup.env').write_text('X=1')
    (tmp_path / 'etc' / 'cache.tmp').write_text('x')
    (tmp_path / 'public').mkdir()
    (tmp_path / 'public' / 'model.bin').write_text('weights')
    exclude = [str(tmp_path / 'etc' / 'restic.pass'), str(tmp_path / 'public'), '*.tmp']
    assert manifest.tree_stats(str(tmp_path), exclude) == {'path': str(tmp_path), 'exists': True, 'files': 1, 'bytes': 3}
    assert manifest.tree_stats(str(tmp_path / 'etc' / 'restic.pass'), exclude)['files'] == 0


FORGET = json.dumps([{"host": "n1", "tags": ["daily"], "keep": [{"short_id": "bbbb2222"}], "remove": [{"short_id": "aaaa1111"}]}])


def test_forget_groups_by_host_and_tags_by_default(mocker, capsys, tmp_path):
    args = base(tmp_path, action='forget', host='n1', keep_daily=7, keep_weekly=4, keep_monthly=12)
    answers = {'restic forget': (0, FORGET, ''), 'restic prune': (0, 'done\n', '')}
    result, dummy, commands = run_module(mocker, capsys, args, answers)
    assert [c[0][3:] for c in commands.calls] == [
        ['forget', '--json', '--host', 'n1', '--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '12', '--group-by', 'host,tags'],
        ['prune']]
    assert result['changed'] is True and result['forget'] == {'kept': ['bbbb2222'], 'removed': ['aaaa1111'], 'pruned': True}


def test_forget_daily_policy_leaves_pre_update_snapshots_to_their_own_policy(mocker, capsys, tmp_path):
    daily = base(tmp_path, action='forget', host='n1', tags=['daily', 'monthly'], keep_daily=7)
    dummy, dummy2, commands = run_module(mocker, capsys, daily, {'restic forget': (0, '[]', '')})
    assert commands.calls[0][0][3:] == ['forget', '--json', '--host', 'n1', '--tag', 'daily', '--tag', 'monthly', '--keep-daily', '7',
                                        '--group-by', 'host,tags']
    pre_update = base(tmp_path, action='forget', host='n1', tags=['pre-update'], group_by=['host'], keep_last=10, prune=False)
    result, dummy, commands = run_module(mocker, capsys, pre_update, {'restic forget': (0, FORGET, '')})
    assert [c[0][3:] for c in commands.calls] == [
        ['forget', '--json', '--host', 'n1', '--tag', 'pre-update', '--keep-last', '10', '--group-by', 'host']]
    assert result['forget']['pruned'] is False


S3_SECRET = 's3-Secret-Key-99xq'
REST_SECRET = 'rest-Url-Pass-31kd'


def test_s3_credentials_only_in_the_environment_and_never_returned(mocker, capsys, tmp_path):
    env = {'AWS_ACCESS_KEY_ID': 'AKIAEXAMPLE42', 'AWS_SECRET_ACCESS_KEY': S3_SECRET}
    snapshots = [{'time': '2026-11-25T02:00:00Z', 'id': 'aaaa1111', 'short_id': 'aaaa1111', 'tags': ['daily'],
                  'note': 'key %s' % S3_SECRET}]
    args = dict(repository='s3:https://s3.example.internal/backups/n1', password=PASSWORD, action='snapshots', env=env)
    result, out, commands = run_module(mocker, capsys, args, {'restic snapshots': (0, json.dumps(snapshots), '')})
    argv, environ = commands.calls[0]
    assert argv[:3] == ['/usr/bin/restic', '--repo', 's3:https://s3.example.internal/backups/n1']
    assert environ['AWS_ACCESS_KEY_ID'] == 'AKIAEXAMPLE42' and environ['AWS_SECRET_ACCESS_KEY'] == S3_SECRET
    assert not any(S3_SECRET in arg or 'AKIAEXAMPLE42' in arg or PASSWORD in arg for arg in argv)
    assert result['snapshots'][0]['short_id'] == 'aaaa1111'
    assert S3_SECRET not in out and 'AKIAEXAMPLE42' not in out and PASSWORD not in out

    failing = {'restic snapshots': (1, '', 'Fatal: unable to open config file: Stat: The AWS Access Key Id AKIAEXAMPLE42 '
                                           'does not exist (secret %s)\nIs there a repository at the following location?\n' % S3_SECRET)}
    result, out, dummy = run_module(mocker, capsys, args, failing)
    assert result['failed'] is True and result['error_kind'] == 'missing'
    assert S3_SECRET not in out and 'AKIAEXAMPLE42' not in out and PASSWORD not in out


def test_rest_url_password_never_on_the_command_line_nor_returned(mocker, capsys, tmp_path):
    repository = 'rest:https://n1:%s@backup.example.internal:8000/n1/' % REST_SECRET
    args = dict(repository=repository, password_file='/etc/onprem_ai/restic.pass', action='check')
    answers = {'restic check': (0, 'load indexes\nno errors were found\n', 'opening %s\n' % repository)}
    result, out, commands = run_module(mocker, capsys, args, answers)
    argv, environ = commands.calls[0]
    assert argv == ['/usr/bin/restic', '--password-file', '/etc/onprem_ai/restic.pass', 'check']
    assert environ['RESTIC_REPOSITORY'] == repository
    assert result['check']['ok'] is True
    assert result['repository'] == 'rest:https://n1:********@backup.example.internal:8000/n1/'
    assert REST_SECRET not in out


# -- issue 11 ------------------------------------------------------------------------------------------------
def test_negative_keep_is_refused_before_restic_runs(mocker, capsys, tmp_path):
    # keep_last: -1 made restic forget and prune every snapshot.
    for option in ('keep_last', 'keep_daily', 'keep_weekly', 'keep_monthly'):
        for value in (-1, 0):
            args = base(tmp_path, action='forget', host='n1', **{option: value})
            result, dummy, commands = run_module(mocker, capsys, args, {})
            assert result['failed'] is True and result['error_kind'] == 'usage' and option in result['msg']
            assert commands.calls == []


def test_manifest_file_is_private_and_the_result_holds_no_records(mocker, capsys, tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'a.txt').write_text('hello')
    (tmp_path / 'state').mkdir()
    # A record of another module that holds a secret (litellm_drained.json keeps whole deployments).
    (tmp_path / 'state' / 'litellm_drained.json').write_text(json.dumps({'api_key': 'sk-Drained-Secret-5521'}))
    old = tmp_path / 'state' / 'backup_manifest.json'
    old.write_text('{}')
    os.chmod(str(old), 0o644)
    answers = {'restic backup': (0, SUMMARY, ''), 'dpkg-query': (0, 'restic\t0.14.0-1+b5\tii \n', '')}
    result, out, dummy = run_module(mocker, capsys, base(tmp_path, paths=[str(data)], models_root=str(tmp_path / 'm')), answers)
    assert result['changed'] is True
    assert stat.S_IMODE(os.stat(str(old)).st_mode) == 0o600
    assert json.load(open(str(old)))['records']['litellm_drained']['api_key'] == 'sk-Drained-Secret-5521'
    assert 'sk-Drained-Secret-5521' not in out
    assert 'records' not in result['manifest'] and result['manifest']['record_names'] == ['litellm_drained']
    assert result['manifest']['packages'] == {'restic': '0.14.0-1+b5'}


def test_env_given_as_a_string_is_masked(mocker, capsys, tmp_path):
    # AnsibleModule lists no_log values before a k=v / JSON string becomes a dict: only the whole string was masked.
    seen = {}
    original = basic.AnsibleModule.fail_json

    def fail_json(self, *args, **kwargs):
        seen['no_log_values'] = set(self.no_log_values)
        return original(self, *args, **kwargs)

    mocker.patch.object(basic.AnsibleModule, 'fail_json', fail_json)
    for env in ('AWS_ACCESS_KEY_ID=AKIAEXAMPLE42 AWS_SECRET_ACCESS_KEY=%s' % S3_SECRET,
                json.dumps({'AWS_ACCESS_KEY_ID': 'AKIAEXAMPLE42', 'AWS_SECRET_ACCESS_KEY': S3_SECRET})):
        args = dict(repository='s3:https://s3.example.internal/b/n1', password=PASSWORD, action='snapshots', env=env, host=S3_SECRET)
        failing = {'restic snapshots': (1, '', 'Fatal: unable to open config file: Stat: denied\n')}
        result, out, commands = run_module(mocker, capsys, args, failing)
        assert commands.calls[0][1]['AWS_SECRET_ACCESS_KEY'] == S3_SECRET
        assert S3_SECRET in seen['no_log_values'] and 'AKIAEXAMPLE42' in seen['no_log_values']
        assert S3_SECRET not in out and 'AKIAEXAMPLE42' not in out


def test_a_failing_fact_does_not_stop_the_backup(mocker, capsys, tmp_path):
    # _gpu_info.gather() called fail_json (SystemExit) when dpkg-query failed, past the `except Exception`.
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'a.txt').write_text('x')
    answers = {'restic backup': (0, SUMMARY, ''), 'dpkg-query': (2, '', 'dpkg-query: error: database is locked\n'),
               'docker': (1, '', 'Cannot connect to the Docker daemon\n')}
    result, dummy, commands = run_module(mocker, capsys, base(tmp_path, paths=[str(data)], models_root=str(tmp_path / 'm')), answers)
    assert result['changed'] is True and result['snapshot']['id'] == '75a8b6e5'
    assert result['manifest']['packages'] is None and 'database is locked' in result['manifest']['unreadable']['packages']
    assert 'Docker daemon' in result['manifest']['unreadable']['container_images']
    assert 'packages not recorded' in json.dumps(result['warnings']), result['warnings']


def test_manifest_records_litellm_where_the_gateway_role_installs_it(mocker, capsys, tmp_path):
    # litellm_gateway: <install_dir>/venvs/<version>, <install_dir>/current -> venvs/<version> (roles/litellm_gateway/defaults).
    install = tmp_path / 'litellm'
    for version in ('1.106.12', '1.108.7'):
        (install / 'venvs' / version / 'bin').mkdir(parents=True)
        (install / 'venvs' / version / 'bin' / 'python').write_text('')
    os.symlink(str(install / 'venvs' / '1.108.7'), str(install / 'current'))
    config = tmp_path / 'config.yaml'
    config.write_text('model_list: []\n')
    data = tmp_path / 'data'
    data.mkdir()
    answers = {'restic backup': (0, SUMMARY, ''), 'dpkg-query': (0, '', ''), 'python': (0, '1.108.7\n', '')}
    args = base(tmp_path, paths=[str(data)], litellm_dir=str(install), litellm_config=str(config), models_root=str(tmp_path / 'm'))
    result, dummy, commands = run_module(mocker, capsys, args, answers)
    litellm = result['manifest']['litellm']
    assert litellm['version'] == '1.108.7' and litellm['venv'] == '1.108.7' and litellm['versions'] == ['1.106.12', '1.108.7']
    assert litellm['config']['sha256'] == manifest.sha256_file(str(config))
    assert [c[0][0] for c in commands.calls if c[0][0].endswith('python')] == [str(install / 'venvs' / '1.108.7' / 'bin' / 'python')]


def test_manifest_models_come_from_model_pull_store_without_urls(tmp_path):
    digest = model_store(tmp_path / 'models', 'llama', '3.1')
    found = manifest.model_store(str(tmp_path / 'models'))
    assert found == [{'name': 'llama', 'version': '3.1', 'digest': digest, 'size': 7, 'source': 'http', 'revision': None,
                      'files': 1, 'path': str(tmp_path / 'models' / 'llama' / '3.1'), 'previous_version': None}]
    assert 'pull-Secret-77' not in json.dumps(found) and 'presigned' not in json.dumps(found)


def test_the_timer_runs_the_same_manifest_file(tmp_path):
    # The role copies plugins/module_utils/_manifest.py onto the node; it must run alone, without Ansible.
    source = manifest.__file__
    copy = tmp_path / 'backup_manifest.py'
    copy.write_text(open(source).read())
    state_dir = tmp_path / 'state'
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'f').write_text('12345')
    model_store(tmp_path / 'models', 'llama', '3.1')
    env = {'PATH': '/nonexistent', 'LC_ALL': 'C'}
    proc = subprocess.run([sys.executable, '-I', str(copy), '--state-dir', str(state_dir), '--tag', 'daily',
                           '--models-root', str(tmp_path / 'models'), '--litellm-dir', str(tmp_path / 'none'), '--', str(data)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip()
    assert path == str(state_dir / 'backup_manifest.json') and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    written = json.load(open(path))
    built = manifest.build(manifest.LocalHost(), [str(data)], state_dir=str(state_dir), tags=['daily'], reason='timer',
                           models_root=str(tmp_path / 'models'), litellm_dir=str(tmp_path / 'none'))
    assert sorted(written) == sorted(built) and written['models'] == built['models']
    assert written['paths'] == [{'path': str(data), 'exists': True, 'files': 1, 'bytes': 5}] and written['tags'] == ['daily']
    assert 'packages' in written['unreadable']  # PATH has no package manager here: said, not an empty list


def test_restore_refuses_a_target_another_user_could_redirect(mocker, capsys, tmp_path):
    snapshots = [{'time': '2026-11-25T02:00:00Z', 'id': 'cccc', 'short_id': 'cccc', 'paths': ['/etc/app']}]
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    victim = tmp_path / 'etc'
    victim.mkdir()
    os.symlink(str(victim), str(shared / 'onprem_ai_drill'))
    answers = {'restic snapshots': (0, json.dumps(snapshots), '')}
    for target in (shared / 'onprem_ai_drill', shared / 'fresh'):
        result, dummy, commands = run_module(mocker, capsys, base(tmp_path, action='restore', target=str(target)), answers)
        assert result['failed'] is True and result['error_kind'] == 'unsafe_target'
        assert not [c for c in commands.calls if 'restore' in c[0]]
    assert not os.path.exists(str(shared / 'fresh')) and os.listdir(str(victim)) == []


def test_manifest_gpu_keeps_the_installed_driver_when_nvidia_smi_fails(tmp_path):
    class Host(object):
        def which(self, name):
            return '/usr/bin/' + name

        def execute(self, argv):
            return 9, '', 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver'

    found = manifest.gpu(Host(), {'libnvidia-compute-570': '570.133.20-0ubuntu1', 'bash': '5.2'}, sysfs_version=str(tmp_path / 'none'))
    assert found['driver_version'] == '570.133.20' and found['gpu_count'] is None
    assert 'could not communicate' in found['nvidia_smi_error'] and found['nvidia_packages'] == {'libnvidia-compute-570': '570.133.20-0ubuntu1'}
