# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The platform phases of side_effect.yml (issue 15), read on the nodes themselves after the run under load: the OS
update of molecule-gwr-gpu-1 (mode security, reboot refused) and molecule-gwr-gpu-3 (mode full, rebooted), and the
model_server role's engine on molecule-gwr-gpu-1. Moved here from the scenarios os_update and model_server, which
this one replaces; the client's counts are test_gateway_rolling.py's."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE'])
ENGINE_NODE, REFUSED_NODE, REBOOTED_NODE = 'molecule-gwr-gpu-1', 'molecule-gwr-gpu-1', 'molecule-gwr-gpu-3'
OS_NODES = [REFUSED_NODE, REBOOTED_NODE]
NEW_KERNEL = '6.1.0-91-lab'
SECURITY = {'lab-libssl-sim': '3.0.15-1', 'lab-openssl-sim': '3.0.15-1', 'linux-image-lab': '6.1.124-1',
            'linux-image-%s' % NEW_KERNEL: '6.1.124-1'}
UPDATES = {'lab-tzdata-sim': '2025b-1', 'lab-tools-sim': '1.1-1'}
OLD_UPDATES = {'lab-tzdata-sim': '2024a-1', 'lab-tools-sim': '1.0-1'}
# held by gpu.yml's upgrade to 570, as nvidia_driver leaves them
HELD = {'nvidia-driver-570': '570.133.20-1', 'nvidia-dkms-570': '570.133.20-1', 'nvidia-utils-570': '570.133.20-1'}
BASE = '/opt/onprem_ai/model_server'
LOGS = os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'build', 'molecule', 'gateway_rolling')


def _json(host, name):
    return json.loads(host.file('/var/lib/onprem-ai-lab-test/' + name).content_string)


def _version(host, name):
    return host.check_output("dpkg-query -W -f '${Version}' %s" % name)


def _log(phase):
    with open(os.path.join(LOGS, phase + '.log'), encoding='utf-8') as handle:
        return handle.read()


# ---- os_update (was molecule/os_update) ----

@pytest.mark.parametrize('node', OS_NODES)
def test_os_plan_lists_suites_and_security(node):
    record = _json(RUNNER.get_host(node), 'os-plan.json')
    assert record['changed'] is True
    suites = dict((u['name'], u['suite']) for u in record['plan'])
    security = dict((u['name'], u['security']) for u in record['plan'])
    assert suites['lab-openssl-sim'] == 'bookworm-security' and security['lab-openssl-sim'] is True
    assert suites['linux-image-%s' % NEW_KERNEL] == 'bookworm-security'
    kernel = [u for u in record['plan'] if u['kernel']]
    assert [u['kernel'] for u in kernel] == [NEW_KERNEL] and kernel[0]['reboot'] and kernel[0]['risk'] == 'high'
    if node == REBOOTED_NODE:
        assert suites['lab-tzdata-sim'] == 'bookworm-updates' and security['lab-tzdata-sim'] is False
    else:
        assert 'lab-tzdata-sim' not in suites
        skipped = dict((s['name'], s['reason']) for s in record['check']['skipped'])
        assert skipped['lab-tzdata-sim'] == 'not a security update (mode security)'
        assert skipped['lab-tools-sim'] == 'not a security update (mode security)'
    for item in record['plan']:
        assert set(['component', 'name', 'from', 'to', 'reboot', 'security', 'risk', 'reason']) <= set(item)


@pytest.mark.parametrize('node', OS_NODES)
def test_os_security_suite_everywhere_updates_suite_in_full_mode_only(node):
    host = RUNNER.get_host(node)
    for name, version in SECURITY.items():
        assert _version(host, name) == version, (node, name)
    for name, version in (UPDATES if node == REBOOTED_NODE else OLD_UPDATES).items():
        assert _version(host, name) == version, (node, name)


@pytest.mark.parametrize('node', OS_NODES)
def test_os_held_nvidia_stack_did_not_move(node):
    host = RUNNER.get_host(node)
    for name, version in HELD.items():
        assert _version(host, name) == version, (node, name)
    assert set(HELD) <= set(host.check_output('apt-mark showhold').split())


@pytest.mark.parametrize('node', OS_NODES)
def test_os_nothing_left_to_do(node):
    assert _json(RUNNER.get_host(node), 'os-plan-after.json')['changed'] is False


def test_os_refused_reboot_left_the_running_kernel_and_module():
    host = RUNNER.get_host(REFUSED_NODE)
    assert ('%s: FAILED - Reboot refused on %s: The NVIDIA kernel module is not built for the new kernel %s'
            % (REFUSED_NODE, REFUSED_NODE, NEW_KERNEL)) in _log('os-security-and-full')
    assert not host.file('/lib/modules/%s/updates/dkms/nvidia.ko' % NEW_KERNEL).exists
    # not rebooted: same boot, the module of the running kernel still loaded
    assert int(host.check_output('stat -c %Z /proc/1')) == int(_json(host, 'os-plan.json')['boot_time'])
    assert host.file('/sys/module/nvidia/version').content_string.strip() == '570.133.20'


def test_os_rebooted_into_the_new_kernel_with_the_module_loaded():
    host = RUNNER.get_host(REBOOTED_NODE)
    assert host.file('/lib/modules/%s/updates/dkms/nvidia.ko' % NEW_KERNEL).content_string == 'simulated nvidia.ko version=570.133.20\n'
    assert 'nvidia/570.133.20, %s' % NEW_KERNEL in host.check_output('dkms status')
    assert int(host.check_output('stat -c %Z /proc/1')) > int(_json(host, 'os-plan.json')['boot_time'])
    # lab-only record of the simulated boot loader (tests/lab/os_repo/README.md)
    assert host.file('/run/lab-boot-sim/booted-kernel').content_string.strip() == NEW_KERNEL
    assert host.file('/sys/module/nvidia/version').content_string.strip() == '570.133.20'
    assert host.service('lab-inference.service').is_running


# ---- model_server (was molecule/model_server) ----

def test_engine_service_runs_enabled_instead_of_the_lab_server():
    host = RUNNER.get_host(ENGINE_NODE)
    svc = host.service('model-server')
    assert svc.is_running and svc.is_enabled
    assert not host.service('lab-inference').is_running


def test_engine_rolled_back_on_request_to_the_kept_release():
    """1.0.0 -> 1.2.0 failed and rolled back, -> 1.1.0, rollback on request: 1.0.0 in use, 1.1.0 kept, and the
    broken 1.2.0's virtualenv went with the next successful update (model_server_keep 2)."""
    host = RUNNER.get_host(ENGINE_NODE)
    assert host.file(BASE + '/current').linked_to == BASE + '/venvs/1.0.0'
    assert host.file(BASE + '/previous').linked_to == BASE + '/venvs/1.1.0'
    assert sorted(host.check_output('ls %s/venvs' % BASE).split()) == ['1.0.0', '1.1.0']
    assert 'Version: 1.0.0' in host.check_output(f'{BASE}/current/bin/python -m pip show lab-inference-server')


def test_engine_serves_installed_version():
    host = RUNNER.get_host(ENGINE_NODE)
    assert json.loads(host.check_output('curl -sf http://127.0.0.1:8000/version')) == {'version': '1.0.0'}
    models = json.loads(host.check_output('curl -sf http://127.0.0.1:8000/v1/models'))
    assert models['data'][0]['id'] == 'llama-3.1-8b-instruct'
    assert models['data'][0]['max_model_len'] == 4096


def test_engine_unit_model_flags():
    unit = RUNNER.get_host(ENGINE_NODE).file('/etc/systemd/system/model-server.service').content_string
    assert f'ExecStart={BASE}/current/bin/vllm serve /var/lib/onprem_ai/models/llama-3.1-8b-instruct/current' in unit
    for flag in ('--served-model-name llama-3.1-8b-instruct', '--max-model-len 4096',
                 '--gpu-memory-utilization 0.85', '--tensor-parallel-size 1', '--port 8000'):
        assert flag in unit
    assert 'User=model-server' in unit


def test_engine_runs_as_its_user():
    host = RUNNER.get_host(ENGINE_NODE)
    pid = host.check_output('systemctl show -p MainPID --value model-server')
    assert host.check_output(f'ps -o user= -p {pid}').strip() == 'model-server'


def test_engine_env_file_private():
    env = RUNNER.get_host(ENGINE_NODE).file('/etc/default/model-server')
    assert env.mode == 0o600 and env.user == 'root'


def test_engine_crash_given_up_on_from_systemd_not_after_the_timeout():
    text = _log('engine-failed-upgrade')
    assert 'before the 120 s health timeout: model-server.service' in text
    assert 'Engine core initialization failed' in text
