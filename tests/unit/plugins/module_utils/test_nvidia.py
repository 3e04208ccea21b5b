# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_parse_xml_handwritten_h100_pair():
    """The hand-written reference (not a capture; see the fixtures README): values and structure."""
    data = nvidia.parse_smi_xml(fixture('handwritten-h100x2-570.xml'))
    assert data['driver_version'] == '570.133.20'
    assert data['cuda_version'] == '12.8'
    assert data['attached_gpus'] == 2
    first, second = data['gpus']
    assert first['name'] == 'NVIDIA H100 80GB HBM3'
    assert first['uuid'] == 'GPU-0a1b2c3d-1111-2222-3333-444455556666'
    assert first['pci_bus_id'] == '00000000:18:00.0'
    assert first['memory_total_mib'] == 81559
    assert first['memory_used_mib'] == 20993
    assert first['persistence_mode'] == 'Enabled'
    assert first['ecc_errors'] == {'volatile': {'corrected': 2, 'uncorrected': 0}, 'aggregate': {'corrected': 7, 'uncorrected': 1}}
    assert (second['index'], second['minor_number']) == (1, 1)
    # N/A counters are skipped, not counted as zero or crashing.
    assert second['ecc_errors']['aggregate'] == {'corrected': 0, 'uncorrected': 0}
    assert data['processes'] == [{'pid': 41234, 'name': '/usr/bin/python3', 'type': 'C', 'used_memory_mib': 20480,
                                  'gpu_uuid': 'GPU-0a1b2c3d-1111-2222-3333-444455556666', 'gpu_index': 0,
                                  'gpu_instance_id': None, 'compute_instance_id': None}]


@pytest.mark.parametrize('text', ['', '<oops', '<html></html>'])
def test_parse_xml_rejects_garbage(text):
    with pytest.raises(ValueError):
        nvidia.parse_smi_xml(text)


@pytest.mark.parametrize('rc,out,err,state', [
    (18, 'Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.133\n', '', nvidia.SMI_MISMATCH),
    (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        'Make sure that the latest NVIDIA driver is installed and running.\n', '', nvidia.SMI_NO_DRIVER),
    (6, 'No devices were found\n', '', nvidia.SMI_NO_DEVICES),
    (2, '', 'Segmentation fault', nvidia.SMI_ERROR),
])
def test_classify_smi_failure(rc, out, err, state):
    assert nvidia.classify_smi_failure(rc, out, err) == state


def test_nvml_library_version():
    assert nvidia.nvml_library_version('Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.133') == '570.133'
    assert nvidia.nvml_library_version('nothing') is None


@pytest.mark.parametrize('version,expected', [
    ('570.133.20', (570, 133, 20)),
    ('570.133.20-1', (570, 133, 20)),
    ('3:570.133.20-1.el9', (570, 133, 20)),
    ('550.54.14-0ubuntu0.22.04.1', (550, 54, 14)),
    ('12.8', (12, 8)),
    (None, ()),
])
def test_version_tuple(version, expected):
    assert nvidia.version_tuple(version) == expected


def test_upstream_and_branch():
    assert nvidia.upstream_version('1:570.133.20-1ubuntu1') == '570.133.20'
    assert nvidia.branch_of('570.133.20-1') == '570'
    assert nvidia.branch_of(None) is None


def test_parse_csv_query():
    rows = nvidia.parse_csv_query('0, NVIDIA H100 80GB HBM3, 81559, [N/A]\n1, NVIDIA H100 80GB HBM3, 81559, 3\n',
                                  ['index', 'name', 'memory.total', 'ecc'])
    assert rows[0] == {'index': '0', 'name': 'NVIDIA H100 80GB HBM3', 'memory.total': '81559', 'ecc': None}
    with pytest.raises(nvidia.SmiUnreadable):
        nvidia.parse_csv_query('0, a\n', ['index', 'name', 'memory'])


def test_read_loaded_module_version(tmp_path):
    path = tmp_path / 'version'
    assert nvidia.read_loaded_module_version(str(path)) is None
    path.write_text('550.127.08\n')
    assert nvidia.read_loaded_module_version(str(path)) == '550.127.08'


def test_cuda_toolkits(tmp_path):
    for name, version in (('cuda-12.8', '12.8.1'), ('cuda-12.4', '12.4.1')):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'version.json').write_text(json.dumps({'cuda': {'name': 'CUDA SDK', 'version': version}}))
    (tmp_path / 'cuda-12.6').mkdir()  # no version.json: the directory name is the version
    (tmp_path / 'cuda').symlink_to(tmp_path / 'cuda-12.4')
    assert nvidia.cuda_toolkits(str(tmp_path)) == [
        {'version': '12.4.1', 'path': str(tmp_path / 'cuda-12.4'), 'default': True},
        {'version': '12.6', 'path': str(tmp_path / 'cuda-12.6'), 'default': False},
        {'version': '12.8.1', 'path': str(tmp_path / 'cuda-12.8'), 'default': False},
    ]
    assert nvidia.cuda_toolkits(str(tmp_path / 'missing')) == []


@pytest.mark.parametrize('distribution,release,branch,layout', [
    ('Ubuntu', '22.04', '570', 'branch'),
    ('Ubuntu', '24.04', '570', 'branch'),
    ('Ubuntu', '24.04', '590', 'unversioned'),
    ('Debian', '12', '570', 'branch'),
    ('RedHat', '9.4', '570', 'dnf'),
    ('Rocky', '9.4', '550', 'dnf'),
])
def test_default_layout(distribution, release, branch, layout):
    assert nvidia.default_layout(distribution, release, branch) == layout


def test_driver_package_names_per_layout():
    assert nvidia.driver_package_names('branch', '570') == [
        'nvidia-driver-570', 'nvidia-utils-570', 'libnvidia-compute-570', 'nvidia-kernel-common-570', 'nvidia-dkms-570']
    assert nvidia.driver_package_names('branch', '570', open_kernel=True, fabricmanager=True) == [
        'nvidia-driver-570-open', 'nvidia-utils-570', 'libnvidia-compute-570', 'nvidia-kernel-common-570', 'nvidia-dkms-570-open',
        'nvidia-fabricmanager-570']
    assert nvidia.driver_package_names('server', '550') == [
        'nvidia-driver-550-server', 'nvidia-utils-550-server', 'libnvidia-compute-550-server', 'nvidia-kernel-common-550-server',
        'nvidia-dkms-550-server']
    assert nvidia.driver_package_names('unversioned', '590', open_kernel=True) == [
        'nvidia-driver-open', 'nvidia-utils', 'libnvidia-compute', 'nvidia-kernel-common', 'nvidia-dkms-open']
    assert nvidia.driver_package_names('dnf', '570', fabricmanager=True) == [
        'nvidia-driver', 'nvidia-driver-cuda', 'nvidia-driver-libs', 'kmod-nvidia-latest-dkms', 'nvidia-fabric-manager']
    assert nvidia.dnf_module_stream('570') == ('nvidia-driver', '570-dkms')
    assert nvidia.dnf_module_stream('570', open_kernel=True) == ('nvidia-driver', '570-open')


@pytest.mark.parametrize('driver,cuda,minor,expected', [
    ('550.127.08', '12.4.1', False, True),
    ('550.127.08', '12.8.1', False, False),
    ('550.127.08', '12.8.1', True, True),
    ('570.26', '12.8', False, True),
    ('570.25.01', '12.8', False, False),
    ('535.54.03', '12.2.2', False, True),
    ('525.60.13', '13.0', True, False),
    ('570.133.20', '99.1', False, None),
])
def test_driver_runs_cuda(driver, cuda, minor, expected):
    assert nvidia.driver_runs_cuda(driver, cuda, minor) is expected


@pytest.mark.parametrize('branch,arch,open_kernel,state,problem', [
    ('570', 'Hopper', False, nvidia.GPU_SUPPORTED, None),
    ('550', 'Blackwell', False, nvidia.GPU_UNSUPPORTED, 'older than the first branch supporting Blackwell'),
    ('590', 'Volta', False, nvidia.GPU_UNSUPPORTED, 'no longer supports Volta'),
    ('590', 'Maxwell', False, nvidia.GPU_UNSUPPORTED, 'no longer supports Maxwell'),
    ('570', 'Pascal', True, nvidia.GPU_UNSUPPORTED, 'open kernel modules do not support Pascal'),
    ('570', 'Kepler', False, nvidia.GPU_UNKNOWN, '"Kepler" is not in the support table'),
    ('570', None, False, nvidia.GPU_UNKNOWN, 'is not known'),
])
def test_branch_gpu_support(branch, arch, open_kernel, state, problem):
    got, reason = nvidia.branch_gpu_support(branch, arch, open_kernel)
    assert got == state
    assert (reason is None) if problem is None else (problem in reason)


# `nvidia-smi mig -lgi` / `-lci` in the layout NVIDIA's MIG user guide shows (no public capture of a whole table
# was found; the -lci row is the one quoted in gpustack's nvidia-smi detector docstring).
LGI = """+-------------------------------------------------------+
| GPU instances:                                        |
| GPU   Name             Profile  Instance   Placement  |
|                          ID       ID       Start:Size |
|=======================================================|
|   0  MIG 3g.40gb          9        2          0:4     |
+-------------------------------------------------------+
|   0  MIG 1g.10gb         19        9          4:1     |
+-------------------------------------------------------+
|   1  MIG 7g.80gb          0        0          0:8     |
+-------------------------------------------------------+
"""
LCI = """+--------------------------------------------------------------------+
| Compute instances:                                                 |
| GPU     GPU       Name             Profile   Instance   Placement  |
|       Instance                       ID        ID       Start:Size |
|         ID                                                         |
|====================================================================|
|   0      2       MIG 3g.40gb          2         0          0:4     |
+--------------------------------------------------------------------+
|   0      9       MIG 1g.10gb          0         0          0:1     |
+--------------------------------------------------------------------+
"""


def test_parse_mig_tables_and_layout():
    lgi, lci = nvidia.parse_mig_lgi(LGI), nvidia.parse_mig_lci(LCI)
    assert lgi[1] == {'gpu': 0, 'name': '1g.10gb', 'profile_id': 19, 'gi_id': 9, 'start': 4, 'size': 1}
    assert lci[0] == {'gpu': 0, 'gi_id': 2, 'name': '3g.40gb', 'profile_id': 2, 'ci_id': 0, 'start': 0, 'size': 4}
    layout = nvidia.mig_layout(lgi, lci)
    assert nvidia.describe_mig_layout(layout[0]) == '3g.40gb@0 [3g.40gb], 1g.10gb@4 [1g.10gb]'
    assert nvidia.describe_mig_layout(layout[1]) == '7g.80gb@0 [no compute instance]'


def test_mig_tables_none_and_unreadable():
    assert nvidia.mig_none('No GPU instances found: Not Found') and nvidia.mig_none('No compute instances found: Not Found')
    assert nvidia.parse_mig_lgi('') == []
    with pytest.raises(nvidia.SmiUnreadable):
        nvidia.parse_mig_lgi('|   0  MIG 1g.10gb   nineteen   9   4:1   |')
