# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the SFTP repository on the server and what restic on the node sees in it."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
testinfra_hosts = RUNNER.get_hosts('all')

REPO = 'sftp:restic@molecule-backup-sftp-server:/srv/restic/molecule-backup-sftp-node'
RESTIC = 'restic --repo %s --password-file /etc/onprem_ai/restic.pass --no-cache ' % REPO


def test_repository_lives_on_the_server(host):
    if host.backend.get_hostname() != 'molecule-backup-sftp-server':
        return
    config = host.file('/srv/restic/molecule-backup-sftp-node/config')
    assert config.exists and config.user == 'restic'
    assert int(host.check_output('find /srv/restic/molecule-backup-sftp-node/data -type f | wc -l')) >= 1


def test_node_sees_one_pre_update_snapshot(host):
    if host.backend.get_hostname() != 'molecule-backup-sftp-node':
        return
    found = json.loads(host.check_output(RESTIC + 'snapshots --json'))
    assert len(found) == 1 and 'pre-update' in found[0]['tags']
    assert 'no errors were found' in host.check_output(RESTIC + 'check --read-data 2>&1')


def test_restored_files_equal_originals(host):
    if host.backend.get_hostname() != 'molecule-backup-sftp-node':
        return
    report = json.loads(host.file('/var/lib/onprem_ai/dr/dr_drill.json').content_string)
    # The drill restored into a private mkdtemp directory under /var/lib/onprem_ai/drill (root, 0700).
    target = report['drills'][-1]['target']
    assert target.startswith('/var/lib/onprem_ai/drill/restore-') and host.file(target).mode == 0o700
    for path in ['/srv/data/app/blob.bin', '/etc/litellm/config.yaml']:
        assert host.file(target + path).sha256sum == host.file(path).sha256sum
    assert report['drills'][-1]['ok'] is True and report['drills'][-1]['repository'].startswith('sftp:')
