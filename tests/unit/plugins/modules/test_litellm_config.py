# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.modules import litellm_config

BACKENDS = [
    {'model_name': 'llama', 'litellm_params': {'model': 'hosted_vllm/llama', 'api_base': 'http://gpu-%d:8000/v1' % n,
                                               'api_key': 'os.environ/VLLM_KEY'}, 'model_info': {'id': 'gpu-%d' % n}}
    for n in (1, 2)]


def run(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            litellm_config.main()
    out = json.loads(capsys.readouterr().out)
    out['rc'] = exit_info.value.code
    return out


@pytest.fixture(name='paths')
def fixture_paths(tmp_path):
    return {'path': str(tmp_path / 'config.yaml'), 'state_dir': str(tmp_path / 'state')}


def test_create_then_idempotent(capsys, paths):
    first = run(capsys, deployments=BACKENDS, router_settings={'num_retries': 2}, **paths)
    assert first['changed'] is True and first['restart_required'] is True
    assert yaml.safe_load(open(paths['path']))['model_list'] == BACKENDS
    assert oct(os.stat(paths['path']).st_mode & 0o777) == '0o640'
    second = run(capsys, deployments=BACKENDS, router_settings={'num_retries': 2}, **paths)
    assert second['changed'] is False and second['restart_required'] is False


def test_check_mode_and_diff_change_nothing(capsys, paths):
    run(capsys, deployments=BACKENDS[:1], **paths)
    before = open(paths['path']).read()
    out = run(capsys, deployments=BACKENDS, _ansible_check_mode=True, _ansible_diff=True, **paths)
    assert out['changed'] is True and 'gpu-2' in out['diff']['after'] and 'gpu-2' not in out['diff']['before']
    assert open(paths['path']).read() == before


def test_plaintext_key_refused_and_never_echoed(capsys, paths):
    bad = [dict(BACKENDS[0], litellm_params=dict(BACKENDS[0]['litellm_params'], api_key='sk-live-SECRET'))]
    out = run(capsys, deployments=bad, **paths)
    assert out['failed'] is True
    assert 'model_list[0].litellm_params.api_key' in out['msg']
    assert 'sk-live-SECRET' not in json.dumps(out)
    assert not os.path.exists(paths['path'])


def test_invalid_config_keeps_the_old_file(capsys, paths):
    run(capsys, deployments=BACKENDS, **paths)
    before = open(paths['path']).read()
    out = run(capsys, router_settings={'routing_strategy': 'fastest'}, **paths)
    assert out['failed'] is True and 'routing_strategy must be one of' in out['msg'] and 'was not changed' in out['msg']
    assert open(paths['path']).read() == before


def test_validate_command_refusal(capsys, paths, tmp_path):
    run(capsys, deployments=BACKENDS, **paths)
    before = open(paths['path']).read()
    out = run(capsys, router_settings={'num_retries': 5}, validate_command=['false', '%s'], **paths)
    assert out['failed'] is True and 'validate_command refused' in out['msg']
    assert open(paths['path']).read() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_drain_undrain_with_backup_and_record(capsys, paths):
    run(capsys, deployments=BACKENDS, **paths)
    out = run(capsys, drain=['gpu-1'], **paths)
    assert out['changed'] is True and out['drained'] == ['llama@http://gpu-1:8000/v1 (id gpu-1)']
    assert out['backup_file'] and os.path.exists(out['backup_file'])
    assert [d['model_info']['id'] for d in yaml.safe_load(open(paths['path']))['model_list']] == ['gpu-2']
    assert run(capsys, drain=['gpu-1'], **paths)['changed'] is False
    out = run(capsys, undrain=['gpu-1'], **paths)
    assert out['drained'] == [] and len(yaml.safe_load(open(paths['path']))['model_list']) == 2


def test_draining_the_last_backend_is_refused(capsys, paths):
    run(capsys, deployments=BACKENDS[:1], **paths)
    out = run(capsys, drain=['gpu-1'], **paths)
    assert out['failed'] is True and 'no deployment' in out['msg']


# Regression tests, issue 11.

def test_existing_top_level_list_is_refused_and_kept(capsys, paths):
    with open(paths['path'], 'w') as handle:
        handle.write('- model_name: llama\n- other\n')
    out = run(capsys, deployments=BACKENDS, **paths)
    assert out['failed'] is True and 'a list at the top level' in out['msg'] and 'was not changed' in out['msg']
    assert open(paths['path']).read() == '- model_name: llama\n- other\n'
    assert 'Traceback' not in json.dumps(out)


@pytest.mark.parametrize('text,message', [
    ('model_list:\n', None),  # null model_list: read as empty, like LiteLLM does
    ('model_list: {a: 1}\n', 'model_list must be a list of deployments, found a mapping'),
    ('model_list: [a, b]\n', 'model_list[0] must be a mapping'),
    ('model_list:\n  - model_name: x\n    model_info: x\n', 'model_list[0].model_info must be a mapping'),
    ('[]\n', 'a list at the top level'),
    ('0\n', 'a number at the top level'),
])
def test_malformed_existing_configs_fail_cleanly(capsys, paths, text, message):
    with open(paths['path'], 'w') as handle:
        handle.write(text)
    out = run(capsys, deployments=BACKENDS, **paths)
    if message is None:
        assert out.get('failed') is not True and yaml.safe_load(open(paths['path']))['model_list'] == BACKENDS
    else:
        assert out['failed'] is True and message in out['msg'] and 'exception' not in out
        assert open(paths['path']).read() == text


def test_yaml_error_names_line_and_column_not_content(capsys, paths):
    with open(paths['path'], 'w') as handle:
        handle.write('model_list:\n  - model_name: x\n    litellm_params: {api_key: "sk-yaml-SECRET-777", : : }\n')
    out = run(capsys, deployments=BACKENDS, **paths)
    assert out['failed'] is True and 'line 3' in out['msg'] and 'column' in out['msg']
    assert 'sk-yaml-SECRET-777' not in json.dumps(out)


def test_yaml_tag_holding_a_secret_is_not_quoted(capsys, paths):
    with open(paths['path'], 'w') as handle:
        handle.write('general_settings:\n  master_key: !sk-tagged-SECRET-888 x\n')
    out = run(capsys, deployments=BACKENDS, **paths)
    assert out['failed'] is True and 'line 2' in out['msg'] and 'sk-tagged-SECRET-888' not in json.dumps(out)


@pytest.mark.parametrize('params,secret', [
    ({'extra_headers': {'Authorization': 'Bearer hdr-SECRET-123'}}, 'hdr-SECRET-123'),
    ({'api_base': 'http://lab:url-SECRET-456@gpu-1:8000/v1'}, 'url-SECRET-456'),
    ({'api_key': 918273645546}, '918273645546'),
])
def test_more_secrets_refused_and_never_echoed(capsys, paths, params, secret):
    bad = [dict(BACKENDS[0], litellm_params=dict(BACKENDS[0]['litellm_params'], **params))]
    out = run(capsys, deployments=bad, _ansible_diff=True, **paths)
    assert out['failed'] is True and 'Secrets written in clear' in out['msg']
    assert secret not in json.dumps(out)
    assert not os.path.exists(paths['path'])


@pytest.mark.parametrize('params,secret', [
    ({'extra_headers': {'Authorization': 'Bearer hdr-SECRET-123'}}, 'hdr-SECRET-123'),
    ({'api_base': 'http://lab:url-SECRET-456@gpu-1:8000/v1'}, 'url-SECRET-456'),
    ({'api_key': 918273645546}, '918273645546'),
])
def test_allowed_plaintext_secrets_masked_in_diff_and_results(capsys, paths, params, secret):
    allowed = [dict(BACKENDS[0], litellm_params=dict(BACKENDS[0]['litellm_params'], **params))] + BACKENDS[1:]
    out = run(capsys, deployments=allowed, allow_plaintext_secrets=True, _ansible_diff=True, **paths)
    assert out['changed'] is True and secret not in json.dumps(out)
    assert secret in open(paths['path']).read()  # written as asked
    out = run(capsys, drain=['gpu-1'], _ansible_diff=True, allow_plaintext_secrets=True, **paths)
    assert out['changed'] is True and secret not in json.dumps(out)
    assert oct(os.stat(os.path.join(paths['state_dir'], 'litellm_drained.json')).st_mode & 0o777) == '0o600'


def test_drain_record_is_0600_even_when_an_older_one_was_not(capsys, paths):
    run(capsys, deployments=BACKENDS, **paths)
    run(capsys, drain=['gpu-1'], **paths)
    record = os.path.join(paths['state_dir'], 'litellm_drained.json')
    assert oct(os.stat(record).st_mode & 0o777) == '0o600'
    os.chmod(record, 0o644)
    out = run(capsys, drain=['gpu-1'], **paths)
    assert out['changed'] is True and oct(os.stat(record).st_mode & 0o777) == '0o600'
    assert run(capsys, drain=['gpu-1'], **paths)['changed'] is False


def test_temp_file_is_0600_before_content_and_synced(capsys, paths, monkeypatch):
    synced = []
    real_fsync = state.os.fsync

    def fsync(fd):
        info = os.fstat(fd)
        synced.append((oct(info.st_mode & 0o777), info.st_size, os.path.isdir('/proc/self/fd/%d' % fd)))
        return real_fsync(fd)

    old_umask = os.umask(0)
    monkeypatch.setattr(state.os, 'fsync', fsync)
    try:
        run(capsys, deployments=BACKENDS, **paths)
    finally:
        os.umask(old_umask)
    files = [entry for entry in synced if not entry[2]]
    assert files and all(mode == '0o600' for mode, size, dummy in files)
    assert files[0][1] == len(open(paths['path']).read())
    assert oct(os.stat(paths['path']).st_mode & 0o777) == '0o640'


def test_one_run_at_a_time_per_config(capsys, paths):
    import fcntl
    fd = os.open(os.path.dirname(paths['path']), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        out = run(capsys, deployments=BACKENDS, lock_timeout=1, **paths)
    finally:
        os.close(fd)
    assert out['failed'] is True and 'Cannot lock' in out['msg'] and not os.path.exists(paths['path'])


def test_malformed_drain_record_fails_cleanly(capsys, paths):
    os.makedirs(paths['state_dir'])
    with open(os.path.join(paths['state_dir'], 'litellm_drained.json'), 'w') as handle:
        json.dump({paths['path']: {'label': 'not a deployment'}}, handle)
    out = run(capsys, deployments=BACKENDS, **paths)
    assert out['failed'] is True and 'drained' in out['msg'] and 'exception' not in out


# Property tests (hypothesis, shared harness): generated bad arguments and malformed existing files end in a
# clean exit or a fail_json with a message, write only under the test's directory, and print no planted secret.

from hypothesis import given, strategies as st  # noqa: E402  (kept with the property tests)

import fuzz  # noqa: E402  (tests/unit/plugins/modules/fuzz.py, on sys.path with the tests)

PLANTED = ['planted-header-SECRET-5150', 'planted-url-SECRET-6160', '817263544536', 'planted-key-SECRET-7170']
OPTIONS = ('path', 'deployments', 'absent_deployments', 'exclusive', 'router_settings', 'litellm_settings', 'general_settings',
           'environment_variables', 'drain', 'undrain', 'allow_drain_last', 'allow_plaintext_secrets', 'validate_command',
           'backup', 'state_dir', 'lock_timeout', 'mode')
SECRET_PARAMS = st.sampled_from([
    {'extra_headers': {'Authorization': 'Bearer ' + PLANTED[0]}},
    {'api_base': 'http://lab:%s@gpu-1:8000/v1' % PLANTED[1]},
    {'api_key': int(PLANTED[2])},
    {'api_key': PLANTED[3]},
    {},
])
YAML_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
# Planted secrets sit where a secret belongs (a value elsewhere, a model_name, is not a secret and may be shown).
SECRET_FRAGMENT = st.sampled_from([{'api_key': PLANTED[3]}, {'api_key': int(PLANTED[2])}, {'extra_headers': {'Authorization': PLANTED[0]}},
                                   {'api_base': 'http://lab:%s@gpu-1:8000/v1' % PLANTED[1]}, {'master_key': PLANTED[3]}])
YAML_KEYS = st.sampled_from(['model_list', 'model_name', 'litellm_params', 'model_info', 'id', 'api_key', 'api_base', 'extra_headers',
                             'router_settings', 'general_settings', 'weight', 'x'])
YAML_TREE = st.recursive(YAML_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(YAML_KEYS, inner, max_size=4),
    st.tuples(st.dictionaries(YAML_KEYS, inner, max_size=3), SECRET_FRAGMENT).map(lambda pair: dict(pair[0], **pair[1]))),
    max_leaves=12)
EXISTING_TEXT = st.one_of(
    YAML_TREE.map(yaml.safe_dump),
    st.sampled_from(['- a\n- b\n', 'model_list:\n', 'model_list: {}\n', 'model_list: [x]\n', 'model_list:\n  - model_info: x\n',
                     'general_settings:\n  master_key: "%s\n' % PLANTED[3], 'general_settings:\n  master_key: !%s x\n' % PLANTED[3],
                     'a: [\n  "%s"\n' % PLANTED[0], '\t%s: x\n' % PLANTED[3], '\xff\xfe', 'x: *%s\n' % PLANTED[3]]),
    st.text(max_size=60),
)


def fresh(tmp_path):
    import tempfile
    root = tempfile.mkdtemp(dir=str(tmp_path))
    return root, {'path': os.path.join(root, 'config.yaml'), 'state_dir': os.path.join(root, 'state')}


@fuzz.FUZZ_SETTINGS
@given(args=fuzz.mutated_args({'deployments': BACKENDS, 'router_settings': {'num_retries': 2}}, OPTIONS), secret=SECRET_PARAMS)
def test_property_bad_arguments(tmp_path, args, secret):
    root, paths = fresh(tmp_path)
    args = dict(paths, **args)
    for key in ('path', 'state_dir'):  # junk there stays inside the test's directory
        if isinstance(args.get(key), str) and args[key] != paths[key]:
            args[key] = os.path.join(root, 'junk', args[key].lstrip('/').replace('..', 'dotdot') or 'empty')
    if isinstance(args.get('deployments'), list) and args['deployments'] and isinstance(args['deployments'][0], dict):
        first = dict(args['deployments'][0])
        first['litellm_params'] = dict(first.get('litellm_params') or {}, **secret) if isinstance(first.get('litellm_params'), (dict, type(None))) \
            else first['litellm_params']
        args['deployments'] = [first] + list(args['deployments'][1:])
    fuzz.run_module(litellm_config.main, args, allowed_root=root, secrets=PLANTED)


@fuzz.FUZZ_SETTINGS
@given(text=EXISTING_TEXT, drain=st.booleans(), diff=st.booleans())
def test_property_malformed_existing_files(tmp_path, text, drain, diff):
    root, paths = fresh(tmp_path)
    with open(paths['path'], 'w', encoding='utf-8', errors='surrogateescape', newline='') as handle:
        handle.write(text)
    args = dict(paths, deployments=BACKENDS, allow_plaintext_secrets=True, _ansible_diff=diff)
    if drain:
        args = dict(paths, drain=['gpu-1'], _ansible_diff=diff)
    result = fuzz.run_module(litellm_config.main, args, allowed_root=root, secrets=PLANTED)
    if result.get('failed'):
        assert open(paths['path'], encoding='utf-8', errors='surrogateescape', newline='').read() == text  # nothing written on a refusal


def test_a_model_group_with_weights_on_only_some_deployments_is_refused(capsys, paths):
    # LiteLLM (1.108, simple-shuffle) gives a deployment without a weight weight 0 once another deployment of the same
    # model has one: one weighted canary would take every request (issue 16). Weights on all, or on none.
    canary = [dict(BACKENDS[0], litellm_params=dict(BACKENDS[0]['litellm_params'], weight=1)), BACKENDS[1]]
    out = run(capsys, deployments=canary, **paths)
    assert out['failed'] is True and out['error_kind'] == 'invalid' and not os.path.exists(paths['path'])
    assert "model 'llama': only model_list[0] of its 2 deployments have a litellm_params.weight" in out['msg']
    everyone = [canary[0], dict(BACKENDS[1], litellm_params=dict(BACKENDS[1]['litellm_params'], weight=9))]
    assert run(capsys, deployments=everyone, **paths)['changed'] is True
