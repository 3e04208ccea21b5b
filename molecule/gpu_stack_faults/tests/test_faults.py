# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""After the fault drills: the node ends on 570.133.20 after a reboot, with the whole history recorded and its MIG
layout re-created."""

from __future__ import annotations

import json
import os
import re

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')


def test_history_shows_upgrade_rollback_upgrade(host):
    record = json.loads(host.file('/var/lib/onprem_ai/nvidia_driver.json').content_string)
    steps = [(h['from'], h['to']) for h in record['history']]
    assert steps == [('550.127.08', '570.124.06'), ('570.124.06', '550.127.08'), ('550.127.08', '550.144.03'),
                     ('550.144.03', '570.133.20')]
    assert record['previous']['version'] == '550.144.03'
    assert 'mig_restore' not in record  # re-created after the reboot, nothing left pending


def test_final_driver_loaded_after_reboot(host):
    assert host.file('/sys/module/nvidia/version').content_string.strip() == '570.133.20'
    assert host.run('nvidia-smi -L').rc == 0


def test_holds(host):
    held = host.check_output('apt-mark showhold').split()
    assert 'nvidia-driver-570' in held and 'libnvidia-compute-570' in held
    assert 'nvidia-driver-550' not in held


def test_services_back_after_reboot(host):
    assert host.service('lab-inference.service').is_running


def test_mig_layout_after_reboot(host):
    lgi = host.check_output('nvidia-smi mig -lgi')
    assert re.search(r'MIG 3g\.40gb\s+9\s+\d+\s+0:4', lgi) and re.search(r'MIG 1g\.10gb\s+19\s+\d+\s+4:1', lgi)
    assert len(re.findall(r'MIG \S+\s+\d+\s+\d+\s+\d+:\d+', host.check_output('nvidia-smi mig -lci'))) == 2
