# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _gpu_info
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner
from ansible_collections.onprem_ai.maintenance.plugins.modules import gpu_info

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')
DPKG = ('libnvidia-compute-570\t570.133.20-1\tii \n'
        'nvidia-driver-570\t570.133.20-1\thi \n'
        'nvidia-utils-570\t570.133.20-1\tii \n'
        'nvidia-fabricmanager-570\t570.133.20-1\tii \n'
        'nvidia-driver-550\t550.127.08-1\trc \n'
        'cuda-toolkit-12-8\t12.8.1-1\tii \n'
        'bash\t5.2.15-2+b7\tii \n')
MISMATCH = 'Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.133\n'


class FakeModule(object):
    """Just enough of AnsibleModule: binaries that exist and scripted command results."""

    def __init__(self, bins, results):
        self.bins = bins
        self.results = results
        self.calls = []

    def get_bin_path(self, name, required=False):
        return self.bins.get(name)

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        return self.results[os.path.basename(args[0])]

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


def xml(name='handwritten-h100x2-570.xml'):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def apt_module(smi_result):
    return FakeModule(
        {'dpkg-query': '/usr/bin/dpkg-query', 'nvidia-smi': '/usr/bin/nvidia-smi', 'systemctl': '/usr/bin/systemctl'},
        {'dpkg-query': (0, DPKG, ''), 'nvidia-smi': smi_result, 'systemctl': (0, 'active\n', '')})


def loaded(tmp_path, version):
    path = tmp_path / 'version'
    if version:
        path.write_text(version + '\n')
    return str(path)


def test_healthy_node(tmp_path):
    module = apt_module((0, xml(), ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '570.133.20'), cuda_root=str(tmp_path))
    assert result['gpus_present'] is True and result['gpu_count'] == 2 and result['reason'] is None
    assert result['driver'] == {
        'installed_version': '570.133.20', 'loaded_version': '570.133.20', 'smi_version': '570.133.20', 'branch': '570',
        'max_cuda_version': '12.8', 'mismatch': False, 'reload_or_reboot_required': False, 'reload_or_reboot_reason': None}
    # removed packages ('rc') and unrelated ones are not reported
    assert sorted(result['packages']) == ['cuda-toolkit-12-8', 'libnvidia-compute-570', 'nvidia-driver-570',
                                          'nvidia-fabricmanager-570', 'nvidia-utils-570']
    assert result['fabric_manager'] == {'installed': True, 'version': '570.133.20', 'active': 'active'}
    assert result['processes'][0]['pid'] == 41234
    assert ['/usr/bin/nvidia-smi', '-q', '-x'] in module.calls


def test_mismatch_after_package_upgrade(tmp_path):
    module = apt_module((18, MISMATCH, ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '550.127.08'), cuda_root=str(tmp_path))
    assert result['gpus_present'] is False
    assert result['nvidia_smi']['state'] == 'driver_library_mismatch'
    assert result['driver']['mismatch'] is True
    assert result['driver']['reload_or_reboot_reason'] == 'installed driver 570.133.20 differs from the loaded kernel module 550.127.08'
    assert 'version mismatch' in result['reason']


def test_host_without_driver(tmp_path):
    module = FakeModule({'dpkg-query': '/usr/bin/dpkg-query'}, {'dpkg-query': (0, 'bash\t5.2\tii \n', '')})
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, None), cuda_root=str(tmp_path))
    assert result['gpus_present'] is False
    assert result['reason'].startswith('no NVIDIA driver installed')
    assert result['driver']['installed_version'] is None and result['driver']['mismatch'] is False
    assert result['fabric_manager'] == {'installed': False, 'version': None, 'active': None}


def test_driver_without_devices(tmp_path):
    module = apt_module((6, 'No devices were found\n', ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '570.133.20'), cuda_root=str(tmp_path))
    assert result['gpus_present'] is False
    assert result['nvidia_smi']['state'] == 'no_devices'
    assert result['reason'] == 'the NVIDIA driver finds no GPU on this host'


def test_rpm_host(tmp_path):
    module = FakeModule({'rpm': '/usr/bin/rpm'}, {'rpm': (0, 'nvidia-driver-libs\t3:570.133.20-1.el9\nkernel\t0:5.14.0-1\n', '')})
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, None), cuda_root=str(tmp_path))
    assert result['packages'] == {'nvidia-driver-libs': '3:570.133.20-1.el9'}
    assert result['driver']['installed_version'] == '570.133.20'


def test_package_database_error_is_a_clear_failure(tmp_path):
    module = FakeModule({'dpkg-query': '/usr/bin/dpkg-query'}, {'dpkg-query': (2, '', 'dpkg: error: database locked')})
    with pytest.raises(_gpu_info.GpuInfoError, match='Cannot read the package database: dpkg-query failed'):
        _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, None), cuda_root=str(tmp_path))


def test_package_database_error_fails_the_module_once(mocker, capsys):
    mocker.patch.object(basic.AnsibleModule, 'get_bin_path', side_effect=lambda name, *a, **k: '/usr/bin/' + name)
    mocker.patch.object(basic.AnsibleModule, 'run_command', return_value=(2, '', 'dpkg: error: database locked'))
    with patch_module_args({}):
        with pytest.raises(SystemExit):
            gpu_info.main()
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] is True and out['msg'].startswith('Cannot read the package database')


def test_main_is_read_only_in_check_mode(mocker, capsys):
    results = {'dpkg-query': (0, DPKG, ''), 'nvidia-smi': (0, xml(), ''), 'systemctl': (0, 'active\n', '')}
    mocker.patch.object(basic.AnsibleModule, 'get_bin_path', side_effect=lambda name, *a, **k: '/usr/bin/' + name)
    mocker.patch.object(basic.AnsibleModule, 'run_command', side_effect=lambda args, **k: results[os.path.basename(args[0])])
    with patch_module_args({'_ansible_check_mode': True}):
        with pytest.raises(SystemExit):
            gpu_info.main()
    out = json.loads(capsys.readouterr().out)
    assert out['changed'] is False
    assert out['gpu_count'] == 2


# Every real capture of the fixtures through the whole module logic: index order, ECC, MIG, processes.
REAL = {
    'telegraf-dual-rtx2080-590.44.01-v13.xml': dict(indexes=[0, 1], minors=[0, 1], mig=[], procs=0, unknown=0),
    'derived-dual-rtx2080-590.44.01-v13-swapped-minor.xml': dict(indexes=[0, 1], minors=[1, 0], mig=[], procs=0, unknown=0),
    'telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml': dict(indexes=[None], minors=[1], mig=[None], procs=0, unknown=1),
    'telegraf-grid-p4-1q-513.46-v11.xml': dict(indexes=[0], minors=[None], mig=[], procs=13, unknown=0),
    'netdata-tesla-p100-510.47.03-v11.xml': dict(indexes=[0], minors=[0], mig=[], procs=0, unknown=0),
    'nagios-tesla-m10-390.94-v9-gpu0.xml': dict(indexes=[None], minors=[0], mig=[], procs=2, unknown=1),
    'telegraf-rtx-4000-sff-ada-595.84-v13.xml': dict(indexes=[0], minors=[0], mig=[], procs=4, unknown=0),
    'telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml': dict(indexes=[0], minors=[0], mig=[], procs=1, unknown=0),
}


@pytest.mark.parametrize('name', sorted(REAL))
def test_gather_real_capture(tmp_path, name):
    want = REAL[name]
    module = apt_module((0, xml(name), ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '570.133.20'), cuda_root=str(tmp_path))
    assert [g['index'] for g in result['gpus']] == want['indexes']
    assert [g['minor_number'] for g in result['gpus']] == want['minors']
    assert result['mig_enabled'] == want['mig']
    assert len(result['processes']) == want['procs']
    assert len(result['unknown']) == want['unknown'], result['unknown']
    assert result['ecc_problems'] == []
    assert result['nvidia_smi']['dtd'] in ('v9', 'v11', 'v12', 'v13')


def test_uncorrectable_ecc_named_with_gpu_and_count(tmp_path):
    module = apt_module((0, xml(), ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '570.133.20'), cuda_root=str(tmp_path))
    assert result['ecc_problems'] == ['GPU 0 (00000000:18:00.0, GPU-0a1b2c3d-1111-2222-3333-444455556666) has uncorrectable ECC errors: 1 aggregate']


def test_processes_unknown_when_nvidia_smi_fails(tmp_path):
    module = apt_module((15, 'Unable to determine the device handle for GPU 00000000:18:00.0: Unknown Error\n', ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, '570.133.20'), cuda_root=str(tmp_path))
    assert result['processes'] is None
    assert result['unknown'] == ['nvidia-smi failed (error): GPUs, ECC counts, MIG and GPU processes are not known']


def test_no_module_loaded_means_no_processes(tmp_path):
    module = apt_module((9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", ''))
    result = _gpu_info.gather(Runner(module), sysfs_version_path=loaded(tmp_path, None), cuda_root=str(tmp_path))
    assert result['processes'] == [] and result['unknown'] == []


# ---- generated bad input: fail_json with a message, never a traceback ------------------------------------
from hypothesis import given  # noqa: E402  (kept next to the property tests it serves)
from hypothesis import strategies as st  # noqa: E402

from fuzz import FUZZ_SETTINGS, JUNK, run_module  # noqa: E402


def _smi_commands(xml_text, rc=0):
    def commands(argv, **kwargs):
        name = os.path.basename(argv[0])
        if name == 'nvidia-smi':
            return rc, xml_text, ''
        if name == 'dpkg-query':
            return 0, DPKG, ''
        return 1, '', 'not run'
    return commands


@FUZZ_SETTINGS
@given(args=st.dictionaries(st.sampled_from(['name', 'gpus', 'filter', '_ansible_check_mode', 'index']), JUNK, max_size=3))
def test_fuzz_gpu_info_arguments(tmp_path, args):
    result = run_module(gpu_info.main, args, allowed_root=tmp_path, commands=_smi_commands(xml()))
    if not result.get('failed'):
        assert result['gpu_count'] == 2


@FUZZ_SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.sampled_from([
    '<nvidia_smi_log><gpu><minor_number>x</minor_number><ecc_errors><volatile><double_bit><total>-</total></double_bit>'
    '</volatile></ecc_errors></gpu></nvidia_smi_log>',
    '<nvidia_smi_log><attached_gpus>N/A</attached_gpus><gpu id="x"><processes><process_info><pid>x</pid></process_info>'
    '</processes><mig_devices><mig_device><index>a</index></mig_device></mig_devices></gpu></nvidia_smi_log>',
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "zzz">]><nvidia_smi_log>&e;</nvidia_smi_log>'])),
    rc=st.sampled_from([0, 2, 6, 9, 15, 18, 255]))
def test_fuzz_gpu_info_nvidia_smi_output(tmp_path, text, rc):
    """Whatever nvidia-smi prints, gpu_info reports (or fails with a message), never a traceback."""
    result = run_module(gpu_info.main, {}, allowed_root=tmp_path, commands=_smi_commands(text, rc))
    assert not result.get('failed')
    assert result['nvidia_smi']['state'] in ('ok', 'no_devices', 'error', 'driver_not_loaded', 'driver_library_mismatch')
