# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the upgraded node itself: packages, holds, loaded module, nvidia-smi, the record, the service."""

from __future__ import annotations

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')

TARGET = '570.133.20'
STACK = ['nvidia-driver-570', 'nvidia-utils-570', 'libnvidia-compute-570', 'nvidia-kernel-common-570', 'nvidia-dkms-570']


def test_newest_570_installed_and_550_gone(host):
    for name in STACK:
        assert host.package(name).version == TARGET + '-1'
    assert not host.package('nvidia-driver-550').is_installed
    assert not host.package('libnvidia-compute-550').is_installed


def test_whole_stack_held(host):
    held = host.check_output('apt-mark showhold').split()
    for name in STACK:
        assert name in held


def test_new_module_loaded_without_reboot(host):
    assert host.file('/sys/module/nvidia/version').content_string.strip() == TARGET
    record = json.loads(host.file('/var/lib/onprem_ai/nvidia_driver.json').content_string)
    assert record['previous']['version'] == '550.127.08'
    assert record['current']['version'] == TARGET
    assert record['previous']['packages']['nvidia-driver-550'] == '550.127.08-1'


def test_nvidia_smi_agrees(host):
    out = host.check_output('nvidia-smi --query-gpu=driver_version --format=csv,noheader')
    assert set(out.split()) == {TARGET}


def test_inference_server_serves_again_on_the_gpus(host):
    assert host.service('lab-inference.service').is_running
    apps = host.check_output('nvidia-smi --query-compute-apps=process_name --format=csv,noheader')
    assert 'lab-inference-server' in apps
