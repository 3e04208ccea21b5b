# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the node itself: the repository as restic sees it, restored files, timers, drill report, faults."""

from __future__ import annotations

import json
import os
import sys

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'tests', 'lab'))
from secret_sweep import assert_secrets_private  # noqa: E402  pylint: disable=wrong-import-position

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')

RESTIC = 'restic --repo /var/backups/onprem_ai/restic --password-file /etc/onprem_ai/restic.pass --no-cache '
DRILL_DIR = '/var/lib/onprem_ai/drill'
MANIFEST_SOURCE = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'plugins', 'module_utils', '_manifest.py')


def drill_target(host):
    """The private directory the latest drill restored into (mkdtemp under DRILL_DIR)."""
    report = json.loads(host.file('/var/lib/onprem_ai/dr/dr_drill.json').content_string)
    return report['drills'][-1]['target']


def snapshots(host):
    return json.loads(host.check_output(RESTIC + 'snapshots --json'))


def test_password_file_is_private(host):
    password = host.file('/etc/onprem_ai/restic.pass')
    assert password.mode == 0o600 and password.user == 'root'
    assert host.file('/etc/onprem_ai/backup.env').mode == 0o600


def test_snapshots_after_retention(host):
    found = snapshots(host)
    # converge: three pre-update snapshots, the daily timer run (snapshot, retention: the last 2 pre-update ones kept),
    # two daily, forget tags=daily keep_daily=1 -> 1 daily; then the monthly timer snapshot.
    assert len(found) == 4
    assert all(s['hostname'] == 'molecule-backup-1' for s in found)
    assert sorted(tuple(sorted(s['tags'])) for s in found) == [
        ('daily',), ('monthly', 'reason:timer'), ('pre-update', 'reason:before-litellm'), ('pre-update', 'reason:before-models')]


def test_daily_retention_keeps_pre_update_snapshots_on_their_own_policy(host):
    script = host.file('/usr/local/sbin/onprem-ai-backup').content_string
    assert '--tag daily --tag monthly --group-by host,tags --keep-daily 7' in script
    assert '--tag pre-update --group-by host --keep-last 2 --prune' in script
    # converge ran it after three pre-update snapshots of the same day: the two latest are still there.
    found = sorted((s for s in snapshots(host) if 'pre-update' in s['tags']), key=lambda s: s['time'])
    assert [s['tags'] for s in found] == [['pre-update', 'reason:before-models'], ['pre-update', 'reason:before-litellm']]


def test_latest_snapshot_holds_manifest_and_data_not_public_models(host):
    listing = [json.loads(line) for line in host.check_output(RESTIC + 'ls latest --json').splitlines()]
    paths = set(n.get('path') for n in listing if n.get('struct_type') == 'node')
    assert '/var/lib/onprem_ai/backup_manifest.json' in paths
    assert '/srv/data/app/blob.bin' in paths and '/etc/litellm/config.yaml' in paths
    assert '/srv/models/custom/adapter/weights.bin' in paths
    assert not any(p.startswith('/srv/models/public') for p in paths)
    assert '/etc/onprem_ai/restic.pass' not in paths


def test_repository_checks_clean(host):
    assert 'no errors were found' in host.check_output(RESTIC + 'check --read-data 2>&1')


def test_restored_files_equal_originals(host):
    for path in ['/srv/data/app/blob.bin', '/etc/litellm/config.yaml', '/srv/models/custom/adapter/weights.bin']:
        assert host.file(drill_target(host) + path).sha256sum == host.file(path).sha256sum


def recorded_sha256(host, snapshot, path):
    return host.check_output(RESTIC + 'dump %s %s | sha256sum' % (snapshot, path)).split()[0]


def test_drill_apply_brought_the_node_back_to_the_recorded_state(host):
    # converge edited the LiteLLM config (mode 0600) and deleted the custom model after the last snapshot, then ran
    # playbooks/dr.yml with backup_drill_apply: the files on the node are those of the snapshot again.
    drifted = json.loads(host.file('/var/tmp/backup_drift.json').content_string)
    drill = json.loads(host.file('/var/lib/onprem_ai/dr/dr_drill.json').content_string)['drills'][-1]
    assert drill['applied'] is True and drill['ok'] is True
    snapshot = drill['snapshot']
    config = host.file('/etc/litellm/config.yaml')
    assert config.sha256sum == recorded_sha256(host, snapshot, '/etc/litellm/config.yaml') != drifted['config_sha256']
    assert config.content_string == 'model_list:\n  - model_name: llama\n'
    assert config.mode == 0o644 and config.user == 'root'
    weights = host.file('/srv/models/custom/adapter/weights.bin')
    assert weights.is_file and weights.size == 1024 * 1024
    assert weights.sha256sum == recorded_sha256(host, snapshot, '/srv/models/custom/adapter/weights.bin')
    manifest = json.loads(host.file(drill_target(host) + '/var/lib/onprem_ai/backup_manifest.json').content_string)
    assert host.package('restic').version == manifest['packages']['restic']


def test_restored_manifest_records_the_system_state(host):
    manifest = json.loads(host.file(drill_target(host) + '/var/lib/onprem_ai/backup_manifest.json').content_string)
    assert manifest['packages']['restic'].startswith('0.14')
    assert manifest['gpu']['driver_version'] == '550.127.08'
    # Written by the timer with the same code as the module: model_pull's store, the gateway role's LiteLLM.
    assert manifest['models'][0]['digest'] == 'sha256:5e1f' and manifest['models'][0]['version'] == '3.1'
    assert manifest['litellm']['version'] == '1.108.7' and manifest['litellm']['venv'] == '1.108.7'
    assert manifest['tags'] == ['monthly']
    assert 'pull-Secret-77' not in json.dumps(manifest)


def test_manifest_is_private_and_the_timer_runs_the_module_code(host):
    manifest = host.file('/var/lib/onprem_ai/backup_manifest.json')
    assert manifest.mode == 0o600 and manifest.user == 'root'
    with open(MANIFEST_SOURCE) as handle:
        assert host.file('/usr/local/lib/onprem_ai/backup_manifest.py').content_string == handle.read()


def test_backup_service_is_sandboxed(host):
    props = dict(line.split('=', 1) for line in host.check_output(
        'systemctl show -p NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,CapabilityBoundingSet,ReadWritePaths '
        'onprem-ai-backup-daily.service').splitlines())
    assert props['NoNewPrivileges'] == 'yes' and props['ProtectSystem'] == 'strict'
    assert props['ProtectHome'] == 'read-only' and props['PrivateTmp'] == 'yes'
    assert set(props['CapabilityBoundingSet'].split()) == {'cap_dac_override', 'cap_dac_read_search'}
    assert '/var/backups/onprem_ai/restic' in props['ReadWritePaths']


def test_drills_restore_into_a_private_directory(host):
    drill_dir = host.file(DRILL_DIR)
    assert drill_dir.is_directory and not drill_dir.is_symlink and drill_dir.user == 'root' and drill_dir.mode == 0o700
    target = drill_target(host)
    assert target.startswith(DRILL_DIR + '/restore-') and host.file(target).mode == 0o700
    # Only the latest drill's restore is kept; nothing under the world-writable /var/tmp.
    assert host.check_output('ls %s' % DRILL_DIR).split() == [os.path.basename(target)]
    assert not host.file('/var/tmp/onprem_ai_drill').exists


def test_timers_enabled(host):
    for name in ['onprem-ai-backup-daily.timer', 'onprem-ai-backup-monthly.timer']:
        timer = host.service(name)
        assert timer.is_enabled and timer.is_running
    for name in ['onprem-ai-backup-daily.service', 'onprem-ai-backup-monthly.service']:
        assert host.run('systemctl show -p Result --value %s' % name).stdout.strip() == 'success'


def test_drill_report_keeps_history(host):
    report = json.loads(host.file('/var/lib/onprem_ai/dr/dr_drill.json').content_string)
    assert len(report['drills']) == 3
    for drill in report['drills']:
        assert drill['ok'] is True and drill['manifest_ok'] is True
        assert float(drill['rto_seconds']) > 0 and 0 <= float(drill['rpo_seconds']) < 3600
        assert drill['files'] >= 4
    assert [drill['applied'] for drill in report['drills']] == [False, False, True]
    markdown = host.file('/var/lib/onprem_ai/dr/dr_drill.md').content_string
    assert markdown.count('| passed |') == 3 and 'RTO' in markdown


def test_faults_reported_clearly(host):
    faults = json.loads(host.file('/var/tmp/backup_faults.json').content_string)
    assert 'wrong repository password' in faults['wrong_password']
    assert 'Wr0ng-Passw0rd-9d41' not in json.dumps(faults) and 'molecule-Backup-Pass-7f3c' not in json.dumps(faults)
    assert 'corrupt' in faults['deleted'] and 'corrupt' in faults['altered']
    assert 'no space left on device' in faults['full']
    assert 'password file' in faults['password_file'] and 'corrupt' not in faults['password_file']
    # Refused before restic runs: the first unsafe component named (here the other user's directory that
    # holds the link; the link itself when the directory is root's).
    assert faults['planted'].startswith('refusing to restore into /var/tmp/planted/restore: ')
    assert 'symbolic link' in faults['planted'] or 'belongs to uid 65534, not root' in faults['planted']
    assert 'retrying after' not in faults['retries'] and 'retried' in faults['retries']


def test_the_password_is_only_in_private_files(host):
    # Everywhere the collection and its timers write, the journal included (tests/lab/secret_sweep.py).
    found = assert_secrets_private(host, ['molecule-Backup-Pass-7f3c'])
    assert '/etc/onprem_ai/restic.pass' in found
