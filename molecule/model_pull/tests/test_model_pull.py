# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the model store on the node: current link, files and hashes, kept versions, the record."""

from __future__ import annotations

import json
import os
import sys

import testinfra.utils.ansible_runner

sys.path.insert(0, os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'tests', 'lab'))
from secret_sweep import assert_secrets_private  # noqa: E402  pylint: disable=wrong-import-position

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')

STORE = '/var/lib/onprem_ai/models/tiny'
SOURCE = '/srv/lab-model-source/files/tiny'


def test_current_points_at_v1_after_rollback(host):
    link = host.file(STORE + '/current')
    assert link.is_symlink and link.linked_to == STORE + '/v1'


def test_files_are_the_source_files(host):
    for version in ('v1', 'v2'):
        for name in ('model.bin', 'config.json'):
            assert host.file('%s/%s/%s' % (STORE, version, name)).sha256sum == host.file('%s/%s/%s' % (SOURCE, version, name)).sha256sum


def test_manifest_records_hashes(host):
    manifest = json.loads(host.file(STORE + '/v1/.manifest.json').content_string)
    for entry in manifest['files']:
        assert host.file('%s/v1/%s' % (STORE, entry['path'])).sha256sum == entry['sha256']


def test_no_corrupt_or_partial_leftovers(host):
    assert not host.file(STORE + '/v3').exists
    assert host.check_output('find %s/.staging -type f | wc -l' % STORE) == '0'


def test_record(host):
    record = json.loads(host.file(STORE + '/state.json').content_string)
    assert record['current']['version'] == 'v1'
    assert record['previous']['version'] == 'v2'


def test_hf_snapshot_is_current_and_complete(host):
    current = host.file('/var/lib/onprem_ai/models/tiny-hf/current')
    assert current.is_symlink and current.linked_to.endswith('/3f1c2a9be07d')
    assert host.file('/var/lib/onprem_ai/models/tiny-hf/current/model.safetensors').size == 3000000
    assert not host.file('/var/lib/onprem_ai/models/tiny-hf/current/README.md').exists


def test_concurrent_pulls_left_one_verified_current(host):
    store = '/var/lib/onprem_ai/models/concurrent'
    link = host.file(store + '/current')
    assert link.is_symlink and link.linked_to == store + '/v1'
    assert host.file(store + '/v1/model.bin').sha256sum == host.file(SOURCE + '/v1/model.bin').sha256sum
    assert host.check_output('find %s/.staging -type f | wc -l' % store) == '0'
    manifest = host.file(store + '/v1/.manifest.json')
    assert manifest.mode == 0o600
    assert json.loads(manifest.content_string)['files'][0]['sha256'] == host.file(SOURCE + '/v1/model.bin').sha256sum


def test_two_playbooks_at_once_left_one_verified_current(host):
    store = '/var/lib/onprem_ai/models/concurrent-playbooks'
    link = host.file(store + '/current')
    assert link.is_symlink and link.linked_to == store + '/v1'
    source = host.file(SOURCE + '/v1/model.bin').sha256sum
    assert host.file(store + '/v1/model.bin').sha256sum == source
    assert json.loads(host.file(store + '/v1/.manifest.json').content_string)['files'][0]['sha256'] == source
    assert host.check_output('find %s/.staging -type f | wc -l' % store) == '0'
    assert json.loads(host.file(store + '/state.json').content_string)['versions'] == ['v1']


def test_no_store_damage_from_refused_names(host):
    for name in ('state.json', 'v1.partial'):
        assert not host.file('%s/%s' % (STORE, name)).is_directory
    assert host.file(STORE + '/state.json').is_file


def test_the_token_is_only_in_private_files(host):
    # The lab's token-protected source runs as a transient unit with the token on its command line, which
    # systemd keeps in the unit file and the journal: the lab's doing. Nothing the collection writes may
    # hold the token unless it is private (tests/lab/secret_sweep.py).
    assert_secrets_private(host, ['lab-secret-token-4711'],
                           lab_own=('/run/systemd/transient/', '/var/log/journal/', '/run/log/journal/'))
