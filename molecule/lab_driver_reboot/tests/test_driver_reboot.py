# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify against the node itself: packages, the loaded module, nvidia-smi and the served model."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')

TARGET = '570.133.20'


def test_mismatch_was_seen_before_the_reboot(host):
    record = json.loads(host.file('/var/lib/onprem-ai-lab-test/before-reboot.json').content_string)
    smi = record['gpu_info']['nvidia_smi']
    assert smi['rc'] == 18
    assert smi['state'] == 'driver_library_mismatch'
    assert 'Failed to initialize NVML: Driver/library version mismatch' in smi['message']
    assert record['gpu_info']['driver']['loaded_version'] == '550.127.08'
    assert record['gpu_info']['driver']['installed_version'] == TARGET


def test_node_really_rebooted(host):
    record = json.loads(host.file('/var/lib/onprem-ai-lab-test/before-reboot.json').content_string)
    now = int(host.check_output('stat -c %Z /proc/1'))
    assert now > int(record['boot_time'])


def test_packages_replaced(host):
    assert host.package('nvidia-driver-570').is_installed
    assert host.package('nvidia-driver-570').version == TARGET + '-1'
    assert not host.package('nvidia-driver-550').is_installed


def test_new_module_loaded(host):
    assert host.file('/sys/module/nvidia/version').content_string.strip() == TARGET


def test_nvidia_smi_works_without_mismatch(host):
    result = host.run('nvidia-smi --query-gpu=driver_version,name --format=csv,noheader')
    assert result.rc == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines and all(line.startswith(TARGET + ', ') for line in lines)


def test_inference_server_back_on_the_new_driver(host):
    assert host.service('lab-inference.service').is_running
    health = host.run('curl -fsS -o /dev/null -w %{http_code} --retry 10 --retry-delay 1 --retry-connrefused http://127.0.0.1:8000/health')
    assert health.stdout == '200'
