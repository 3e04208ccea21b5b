# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secret sweep: every playbook and role entry point run with -vvv --diff, on success and failure paths and in
check mode, against this scenario's node (its restic and repository are there already); all output, the node's
journal, every file written on the node and on the controller searched for the planted secrets, in clear and in
the forms they take on the way (URL-encoded, base64); every file holding one is private. See
tests/lab/secrets/README.md. Runs after test_backup.py (file order), on host aliases of the same node."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import pytest
import testinfra.utils.ansible_runner
import yaml

ROOT = os.environ['MOLECULE_PROJECT_DIRECTORY']
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))
import secret_sweep  # noqa: E402  pylint: disable=wrong-import-position,import-error

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')

SWEEP = os.path.join(ROOT, 'tests', 'lab', 'secrets')
BIN = os.path.dirname(shutil.which('ansible-playbook') or os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'))
# Every secret variable gets its own value; a finding names the variable, never the value.
SECRETS = {
    'vault_litellm_master_key': 'sk-sweep-master-1b7e4c9a',
    'vault_vllm_key': 'sweep-vllm-key-5d02a9e1',
    'vault_restic_password': 'sweep-restic-pass-8c31f0d2',
    'vault_restic_s3_secret_access_key': 'sweep-s3-secret-e4a7b2c6',
    'vault_hf_token': 'hf_sweepToken6f1c93aa',
    'REST URL password with @': 'sweep-rest@pass-2d9e77',
    'REST URL password with @ (part after the @)': 'pass-2d9e77',
    'RESTIC_REST_PASSWORD': 'sweep-rest-env-pass-a1b2c3',
    'per-model token': 'sweep-model-token-c0de42',
    'model URL password': 'sweep-url-pass-71ab55',
    'model header value': 'sweep-header-val-93fd11',
    'key in the engine config': 'sweep-serving-key-77e1aa',
    'wrong restic password': 'sweep-wrong-pass-4e5f66',
    'litellm_gateway_tls_key': 'sweepTLSkeyMATERIAL0a1b2c',
    'awx_litellm_master_key': 'sweep-awx-master-0f9e8d',
    'awx_vllm_key': 'sweep-awx-vllm-1a2b3c',
    'awx_restic_password': 'sweep-awx-restic-4d5e6f',
    'awx_restic_s3_secret_access_key': 'sweep-awx-s3-7a8b9c',
    'awx_hf_token': 'hf_sweepAwxToken2e3f4a',
    'CONTROLLER_PASSWORD': 'sweep-controller-pass-5b6c7d',
    'CONTROLLER_OAUTH_TOKEN': 'sweep-controller-token-8e9f0a',
}
S = SECRETS
# Files the lab itself writes with a secret (the model source's transient unit holds its token in Environment=).
LAB_OWN = ('/run/systemd/transient/lab-sweep-source-',)
# Files that must hold a secret (and be private).
MUST_HOLD = ('/etc/onprem_ai/sweep.pass', '/etc/onprem_ai/backup.env')
# Where the collection and the services it configures write (the journal is read separately).
ROOTS = ('/etc', '/var/lib', '/var/backups', '/var/tmp', '/var/cache', '/var/log', '/tmp', '/opt', '/root', '/srv',
         '/usr/local', '/run', '/home')
MODEL = b'sweep model v1\n' * 64
REST_AT = 'rest:http://sweeper:%s@127.0.0.1:9/sweep/' % S['REST URL password with @']
REST_AT_ENCODED = 'rest:http://sweeper:%s@127.0.0.1:9/sweep/' % S['REST URL password with @'].replace('@', '%40')
TLS_KEY = '-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n' % S['litellm_gateway_tls_key']
TLS_CERT = '-----BEGIN CERTIFICATE-----\nc3dlZXAgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n'


def models_list(sha256):
    return [
        {'name': 'sweep-token', 'version': 'v1', 'source': 'http', 'url': 'http://127.0.0.1:8093/files/sweep/v1/model.bin',
         'sha256': sha256, 'token': S['per-model token']},
        {'name': 'sweep-url', 'version': 'v1', 'source': 'http',
         'url': 'http://sweeper:%s@127.0.0.1:8094/files/sweep/v1/model.bin' % S['model URL password'],
         'sha256': sha256, 'headers': {'X-Sweep-Auth': S['model header value']}},
    ]


def inventory(tmp, node):
    """inventories/example with the planted vault, every host an alias of the scenario's node."""
    inv = tmp / 'inventory'
    shutil.copytree(os.path.join(ROOT, 'inventories', 'example', 'group_vars'), inv / 'group_vars')
    (inv / 'group_vars' / 'all' / 'vault.example.yml').unlink()
    vault = {name: value for name, value in S.items() if name.startswith('vault_')}
    vault['vault_restic_s3_access_key_id'] = 'SWEEPAKIDNOTSECRET'
    (inv / 'group_vars' / 'all' / 'vault.yml').write_text(yaml.safe_dump(vault))
    sha = hashlib.sha256(MODEL).hexdigest()
    common = {
        'ansible_connection': 'community.docker.docker', 'ansible_host': node, 'ansible_user': 'root',
        'ansible_become': False, 'ansible_python_interpreter': '/usr/bin/python3',
        # the lab node: driver 550 (proprietary modules), no vllm.service, no gateway in front of it
        'rollout_gateways': [], 'gpu_stack_driver_version': '550', 'gpu_stack_kernel_module': 'proprietary',
        'gpu_stack_update_cache': False, 'gpu_stack_stop_services': [], 'gpu_stack_cuda_versions': [],
        'gpu_stack_cuda_default': '', 'rollout_drain_timeout': 20,
        'backup_repository': '/var/backups/onprem_ai/sweep', 'backup_password_file': '/etc/onprem_ai/sweep.pass',
        'backup_env': {'AWS_ACCESS_KEY_ID': '{{ vault_restic_s3_access_key_id }}',
                       'AWS_SECRET_ACCESS_KEY': '{{ vault_restic_s3_secret_access_key }}',
                       'RESTIC_REST_USERNAME': 'sweeper', 'RESTIC_REST_PASSWORD': S['RESTIC_REST_PASSWORD']},
        'backup_drill_report_dir': '/var/lib/onprem_ai/dr-sweep', 'backup_config_paths': ['/etc/onprem_ai', '/etc/onprem-ai-lab'],
        'backup_custom_model_paths': [], 'backup_data_paths': [],
        'models_dest_root': '/var/lib/onprem_ai/sweep-models', 'models_list': models_list(sha),
        'models_serving_restart_services': [], 'models_warmup_model': '',
        'models_serving_config_file': '/etc/onprem-ai-lab/sweep-engine.json',
        'models_serving_config_updates': {'sweep_updated': True},
        'sweep_model_content': MODEL.decode(), 'sweep_serving_key': S['key in the engine config'],
        'sweep_model_token': S['per-model token'],
        'litellm_gateway_tls_certificate': TLS_CERT, 'litellm_gateway_tls_key': TLS_KEY, 'gateway_rollout_backup': False,
        'litellm_gateway_backend': 'http://sweeper:%s@gpu-a01.example.internal:8000/v1' % S['model URL password'],
    }
    hosts = {
        'sweep-ok': {'gpu_stack_stop_services': ['lab-inference.service']},
        'f-backup-rest': {'backup_repository': REST_AT},
        'f-pre-update-rest': {'backup_repository': REST_AT_ENCODED},
        # Each drill restores into a private directory of its own (the success run's drill removes the restores
        # of earlier drills in its directory, and these drills run beside it).
        'f-dr-rest': {'backup_repository': REST_AT, 'backup_drill_dir': '/var/lib/onprem_ai/drill-f-dr-rest'},
        'f-dr-bad-snapshot': {'backup_repository': REST_AT, 'backup_drill_snapshot': '--password=x',
                              'backup_drill_dir': '/var/lib/onprem_ai/drill-f-dr-bad-snapshot'},
        'f-dr-wrong-password': {'backup_password': S['wrong restic password'],
                                'backup_password_file': '/etc/onprem_ai/sweep-wrong.pass',
                                'backup_drill_dir': '/var/lib/onprem_ai/drill-f-dr-wrong-password'},
        'f-models-sha256': {'models_list': models_list('0' * 64), 'models_dest_root': '/var/lib/onprem_ai/sweep-models-bad'},
        'f-verify': {'gpu_stack_expected_version': '570'},
        'f-warm-up': {'rollout_inference_url': 'http://127.0.0.1:9', 'rollout_ready_timeout': 3},
        'f-drain': {'rollout_inference_url': 'http://127.0.0.1:9', 'rollout_drain_timeout': 3},
        'f-gpu-version': {'gpu_stack_driver_version': '999.99.99', 'gpu_rollout_backup': False},
        'f-backend': {},
        'f-gateway-env': {'litellm_gateway_env': {'LITELLM_MASTER_KEY': '{{ vault_litellm_master_key }}',
                                                  'VLLM_KEY': '{{ vault_vllm_key }}\nINJECTED=1'}},
        'c-gateway': {},
        'c-backup': {'backup_password': '{{ vault_restic_password }}-changed'},
        'c-models': {'models_dest_root': '/var/lib/onprem_ai/sweep-models-check'},
    }
    gateways = ['f-backend', 'f-gateway-env', 'c-gateway']
    data = {'all': {'children': {
        'gpu_nodes': {'hosts': {name: dict(common, **extra) for name, extra in hosts.items() if name not in gateways}},
        'gateways': {'hosts': {name: dict(common, **hosts[name]) for name in gateways}},
        'backup': {'children': {'gpu_nodes': {}, 'gateways': {}}}}}}
    (inv / 'hosts.yml').write_text(yaml.safe_dump(data, width=1000))
    return inv


def entry(alias, role, tasks_from, *extra):
    return [os.path.join(SWEEP, 'entry.yml'), '-e', 'sweep_host=' + alias, '-e', 'sweep_role=' + role,
            '-e', 'sweep_entry=' + tasks_from, *extra]


def playbook(name, hosts_var, alias, *extra):
    return [os.path.join(ROOT, 'playbooks', name), '-e', '%s=%s' % (hosts_var, alias), *extra]


# Failure paths: one host alias each (a play whose hosts all failed ends the run), each must end failed.
FAILURES = [
    ('f-backup-rest', entry('f-backup-rest', 'backup', 'main')),                   # unreachable REST URL, @ in password
    ('f-pre-update-rest', entry('f-pre-update-rest', 'backup', 'pre_update')),     # the same, URL-encoded
    ('f-dr-rest', playbook('dr.yml', 'dr_hosts', 'f-dr-rest')),
    ('f-dr-wrong-password', playbook('dr.yml', 'dr_hosts', 'f-dr-wrong-password')),
    ('f-dr-bad-snapshot', playbook('dr.yml', 'dr_hosts', 'f-dr-bad-snapshot')),   # refused before restic runs
    ('f-models-sha256', entry('f-models-sha256', 'models', 'main')),               # verification fails
    ('f-verify', entry('f-verify', 'gpu_stack', 'verify')),                        # wrong branch loaded
    ('f-warm-up', entry('f-warm-up', 'rollout', 'warm_up')),                       # engine down, with its API key
    ('f-drain', entry('f-drain', 'rollout', 'drain')),                             # metrics cannot be read
    ('f-gpu-version', playbook('gpu.yml', 'gpu_rollout_hosts', 'f-gpu-version')),  # a driver that does not exist
    ('f-backend', entry('f-backend', 'litellm_gateway', 'backend')),               # no LiteLLM on the node
    ('f-gateway-env', playbook('gateway.yml', 'gateway_rollout_hosts', 'f-gateway-env')),  # newline in a secret
]
# Check mode: what would change, with --diff.
CHECKS = [
    ('check gpu.yml', playbook('gpu.yml', 'gpu_rollout_hosts', 'sweep-ok', '-C', '-e', 'gpu_stack_driver_version=570')),
    ('check backup main', entry('c-backup', 'backup', 'main', '-C')),
    ('check models main', entry('c-models', 'models', 'main', '-C')),
    ('check gateway.yml', playbook('gateway.yml', 'gateway_rollout_hosts', 'c-gateway', '-C')),
]


# The failure paths, the check-mode runs and the AWX run, this many at a time: each has a host alias (and files)
# of its own or changes nothing, and part of their time is waiting (timeouts of engines that do not answer, polls),
# so one after the other they took most of the scenario's time. SWEEP_JOBS=1: one at a time, the success run first.
SWEEP_JOBS = max(1, int(os.environ.get('SWEEP_JOBS', '4')))
# Runs that need nothing the success run sets up, write nothing on the node that it uses and read nothing it changes
# (an unreachable REST repository, an engine or a gateway that does not answer, checks that fail before any change;
# the AWX run talks to a closed port of the controller): they run beside it, the longest first (measured, 2 cores).
BESIDE_SUCCESS = ('f-dr-rest', 'f-dr-bad-snapshot', 'f-backup-rest', 'f-drain', 'f-warm-up', 'f-backend', 'f-gateway-env')
# The others start when it has ended (they use its repository, password file, model sources, packages and driver),
# the longest first (measured), so that the short ones fill the slots at the end.
AFTER_SUCCESS = ('f-dr-wrong-password', 'check gateway.yml', 'check backup main', 'check gpu.yml', 'check models main',
                 'f-models-sha256', 'f-gpu-version', 'f-pre-update-rest', 'f-verify')


def docker(node, *argv, binary=False, timeout=120):
    proc = subprocess.run(['docker', 'exec', node, *argv], capture_output=True, timeout=timeout, check=False)
    return proc.stdout if binary else proc.stdout.decode('utf-8', 'replace')


def recap(output):
    """{host: {'ok': n, 'failed': n, 'unreachable': n, ...}} from PLAY RECAP lines (the last one of each host)."""
    hosts = {}
    for host, fields in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', output, re.M):
        hosts[host] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', fields)}
    return hosts


@pytest.fixture(scope='module')
def sweep(host, tmp_path_factory):
    node = host.backend.hostname
    tmp = tmp_path_factory.mktemp('secret-sweep')
    inv = inventory(tmp, node)
    home = tmp / 'home'
    home.mkdir()
    env = dict(os.environ, HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / '.ansible' / 'tmp'), ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_NOCOLOR='1', ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_RETRY_FILES_ENABLED='1',
               ANSIBLE_RETRY_FILES_SAVE_PATH=str(home / 'retry'),
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    env.pop('ANSIBLE_INVENTORY', None)
    docker(node, 'touch', '/run/onprem-ai-sweep.marker')
    since = docker(node, 'date', '+%Y-%m-%d %H:%M:%S').strip()
    runs = {}

    def play(name, argv, extra_env=None, inventory=str(inv)):
        started = time.monotonic()
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-vvv', '--diff', '-i', inventory, *argv], cwd=str(tmp),
                              env=dict(env, **(extra_env or {})), capture_output=True, text=True, timeout=900, check=False)
        runs[name] = {'rc': proc.returncode, 'output': proc.stdout + proc.stderr, 'seconds': time.monotonic() - started}
        print('%-40s rc %d in %3.0f s' % (name, proc.returncode, runs[name]['seconds']))

    def awx_run():
        # AWX as code: every task (no_log kept) against a closed port, with the AWX credentials and the controller's.
        with open(os.path.join(ROOT, 'playbooks', 'awx', 'configure.yml'), encoding='utf-8') as source:
            configure = yaml.safe_load(source)
        for task in configure[0]['tasks']:
            task['ignore_errors'] = True
        configure[0]['vars_files'] = [os.path.join(ROOT, 'playbooks', 'awx', 'vars.yml')]
        (tmp / 'configure.yml').write_text(yaml.safe_dump(configure, width=1000))
        awx = {name: value for name, value in S.items() if name.startswith('awx_')}
        awx['awx_restic_s3_access_key_id'] = 'SWEEPAKIDNOTSECRET'
        (tmp / 'awx-secrets.json').write_text(json.dumps(awx))
        play('awx', ['-c', 'local', '-e', '@' + str(tmp / 'awx-secrets.json'), str(tmp / 'configure.yml')],
             {'CONTROLLER_HOST': 'http://127.0.0.1:9', 'CONTROLLER_USERNAME': 'admin',
              'CONTROLLER_PASSWORD': S['CONTROLLER_PASSWORD'], 'CONTROLLER_OAUTH_TOKEN': S['CONTROLLER_OAUTH_TOKEN'],
              'CONTROLLER_VERIFY_SSL': 'false', 'ANSIBLE_PYTHON_INTERPRETER': sys.executable}, inventory='localhost,')
        (tmp / 'awx-secrets.json').unlink()

    started = time.monotonic()
    argvs = dict(FAILURES + CHECKS)
    with concurrent.futures.ThreadPoolExecutor(max_workers=SWEEP_JOBS) as pool:
        success = pool.submit(play, 'success', [os.path.join(SWEEP, 'success.yml')])  # first, in the first slot
        jobs = [pool.submit(play, alias, argvs[alias]) for alias in BESIDE_SUCCESS[:3]] + [pool.submit(awx_run)]
        jobs += [pool.submit(play, alias, argvs[alias]) for alias in BESIDE_SUCCESS[3:]]
        success.result()  # the other runs find what it set up
        jobs += [pool.submit(play, alias, argvs[alias]) for alias in AFTER_SUCCESS]
        for job in jobs:
            job.result()
    print('secret sweep: %d runs in %.0f s (%d at a time)' % (
        len(runs), time.monotonic() - started, SWEEP_JOBS))

    journal = docker(node, 'journalctl', '--no-pager', '-o', 'cat', '--since', since)
    # Every file changed since the marker, and the files that must hold a secret (unchanged on a rerun).
    script = ('{ find %s -xdev -cnewer /run/onprem-ai-sweep.marker -type f -size -8M -print0; find %s -type f -print0; }'
              ' 2>/dev/null | tar --null -T - -cf - 2>/dev/null' % (' '.join(ROOTS), ' '.join(MUST_HOLD)))
    archive = docker(node, 'sh', '-c', script, binary=True, timeout=300)
    print('%d bytes of files written on the node, searched' % len(archive))
    # The output kept for a reader, every planted value replaced by its name (build/secret-sweep/).
    logs = os.path.join(ROOT, 'build', 'secret-sweep')
    os.makedirs(logs, exist_ok=True)
    for name, run in runs.items():
        with open(os.path.join(logs, name.replace(' ', '-') + '.log'), 'w', encoding='utf-8') as log:
            log.write(mask(run['output']))
    return {'runs': runs, 'journal': journal, 'archive': archive, 'home': home, 'node': node}


def mask(text):
    for name, value in sorted(S.items(), key=lambda item: -len(item[1])):
        text = text.replace(value, '<%s>' % name).replace(urllib.parse.quote(value, safe=''), '<%s url-encoded>' % name)
    return text


def _masked(text, found):
    """The first line holding each clear finding, with every planted value replaced by its name."""
    lines = []
    for name, form in found:
        if form != 'clear':
            continue
        line = next((ln for ln in text.splitlines() if S[name] in ln), '')
        for secret_name, value in sorted(S.items(), key=lambda item: -len(item[1])):
            line = line.replace(value, '<%s>' % secret_name)
        lines.append(line.strip()[:400])
    return lines


@pytest.mark.parametrize('run', ['success'] + [run[0] for run in FAILURES + CHECKS] + ['awx'])
def test_no_secret_in_output(sweep, run):
    text = sweep['runs'][run]['output']
    found = secret_sweep.secrets_in_text(text, SECRETS)
    assert not found, 'ansible-playbook -vvv --diff (%s) shows %s\n%s' % (
        run, ', '.join('%s (%s)' % pair for pair in found), '\n'.join(_masked(text, found)))


def test_success_paths_pass(sweep):
    run = sweep['runs']['success']
    assert run['rc'] == 0, run['output'][-6000:]
    assert recap(run['output'])['sweep-ok']['failed'] == 0


def test_failure_paths_fail(sweep):
    failed = {alias: recap(sweep['runs'][alias]['output']).get(alias, {}).get('failed', 0) > 0 for alias in dict(FAILURES)}
    assert failed == dict.fromkeys(failed, True), 'failure paths that did not fail (build/secret-sweep/<alias>.log)'
    awx = sweep['runs']['awx']['output']
    assert 'Connection refused' in awx or 'Errno 111' in awx, awx[-3000:]


def test_no_secret_in_the_journal(sweep):
    found = secret_sweep.secrets_in_text(sweep['journal'], SECRETS)
    assert not found, 'journal of %s shows %s\n%s' % (sweep['node'], found, '\n'.join(_masked(sweep['journal'], found)))


def test_files_holding_secrets_are_private(sweep):
    found = secret_sweep.scan_tar(sweep['archive'], SECRETS, skip=LAB_OWN)
    print('\n'.join(['files written on the node that hold a planted secret:'] + secret_sweep.describe(found)))
    loose = {path: item for path, item in found.items() if not item['private']}
    assert not loose, 'secrets in files that are not private (0600, root):\n' + '\n'.join(secret_sweep.describe(loose))
    # What must hold them, and privately.
    assert set(MUST_HOLD) <= set(found)


def test_no_secret_in_the_controllers_files(sweep):
    found = secret_sweep.scan_dir(sweep['home'], SECRETS)
    assert not found, 'files on the controller:\n' + '\n'.join(secret_sweep.describe(found))
