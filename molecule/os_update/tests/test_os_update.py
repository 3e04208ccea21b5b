# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify against the nodes themselves: package versions (dpkg), holds, module files, the boot, the records."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
testinfra_hosts = RUNNER.get_hosts('gpu_nodes')

NEW_KERNEL = '6.1.0-91-lab'
SECURITY = {'lab-libssl-sim': '3.0.15-1', 'lab-openssl-sim': '3.0.15-1', 'linux-image-lab': '6.1.124-1',
            'linux-image-%s' % NEW_KERNEL: '6.1.124-1'}
UPDATES = {'lab-tzdata-sim': '2025b-1', 'lab-tools-sim': '1.1-1'}
OLD_UPDATES = {'lab-tzdata-sim': '2024a-1', 'lab-tools-sim': '1.0-1'}
HELD = {'nvidia-driver-550': '550.127.08-1', 'nvidia-dkms-550': '550.127.08-1', 'nvidia-utils-550': '550.127.08-1'}


def _full(host):
    return 'osu_full' in host.ansible.get_variables()['group_names']


def _json(host, name):
    return json.loads(host.file('/var/lib/onprem-ai-lab-test/' + name).content_string)


def _version(host, name):
    return host.check_output("dpkg-query -W -f '${Version}' %s" % name)


def test_plan_lists_suites_and_security(host):
    record = _json(host, 'os-plan.json')
    assert record['changed'] is True
    suites = dict((u['name'], u['suite']) for u in record['plan'])
    security = dict((u['name'], u['security']) for u in record['plan'])
    assert suites['lab-openssl-sim'] == 'bookworm-security' and security['lab-openssl-sim'] is True
    assert suites['linux-image-%s' % NEW_KERNEL] == 'bookworm-security'
    kernel = [u for u in record['plan'] if u['kernel']]
    assert [u['kernel'] for u in kernel] == [NEW_KERNEL] and kernel[0]['reboot'] and kernel[0]['risk'] == 'high'
    if _full(host):
        assert suites['lab-tzdata-sim'] == 'bookworm-updates' and security['lab-tzdata-sim'] is False
    else:
        assert 'lab-tzdata-sim' not in suites
        skipped = dict((s['name'], s['reason']) for s in record['check']['skipped'])
        assert skipped['lab-tzdata-sim'] == 'not a security update (mode security)'
        assert skipped['lab-tools-sim'] == 'not a security update (mode security)'
    for item in record['plan']:
        assert set(['component', 'name', 'from', 'to', 'reboot', 'security', 'risk', 'reason']) <= set(item)


def test_security_suite_packages_installed(host):
    for name, version in SECURITY.items():
        assert _version(host, name) == version, name


def test_updates_suite_only_in_full_mode(host):
    for name, version in (UPDATES if _full(host) else OLD_UPDATES).items():
        assert _version(host, name) == version, name


def test_held_nvidia_stack_did_not_move(host):
    for name, version in HELD.items():
        assert _version(host, name) == version, name
    held = host.check_output('apt-mark showhold').split()
    assert set(HELD) <= set(held)


def test_nothing_left_to_do(host):
    assert _json(host, 'os-plan-after.json')['changed'] is False


def test_security_node_refused_the_reboot(host):
    if _full(host):
        pytest.skip('the full node has the headers')
    rollout = _json(host, 'os-plan-after.json')['rollout']
    line = [x for x in rollout if 'molecule-osu-sec: FAILED - ' in x][0]
    assert 'Reboot refused on molecule-osu-sec: The NVIDIA kernel module is not built for the new kernel %s' % NEW_KERNEL in line
    assert not host.file('/lib/modules/%s/updates/dkms/nvidia.ko' % NEW_KERNEL).exists
    # not rebooted: same boot, the module of the running kernel still loaded
    assert int(host.check_output('stat -c %Z /proc/1')) == int(_json(host, 'os-plan.json')['boot_time'])
    assert host.file('/sys/module/nvidia/version').content_string.strip() == '550.127.08'


def test_full_node_rebooted_into_the_new_kernel_with_the_module(host):
    if not _full(host):
        pytest.skip('the security node refused the reboot')
    rollout = _json(host, 'os-plan-after.json')['rollout']
    assert [x for x in rollout if 'molecule-osu-full: os_update (8 changes (6 security)' in x and 'verified' in x]
    assert host.file('/lib/modules/%s/updates/dkms/nvidia.ko' % NEW_KERNEL).content_string == 'simulated nvidia.ko version=550.127.08\n'
    assert 'nvidia/550.127.08, %s' % NEW_KERNEL in host.check_output('dkms status')
    assert int(host.check_output('stat -c %Z /proc/1')) > int(_json(host, 'os-plan.json')['boot_time'])
    # lab-only record of the simulated boot loader (tests/lab/os_repo/README.md)
    assert host.file('/run/lab-boot-sim/booted-kernel').content_string.strip() == NEW_KERNEL
    assert host.file('/sys/module/nvidia/version').content_string.strip() == '550.127.08'
