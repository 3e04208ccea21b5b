# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _cuda as cuda


@pytest.mark.parametrize('text, expected', [
    ('12.8', ('12.8', None)),
    ('12.8.1', ('12.8', '12.8.1')),
    (' 12.10 ', ('12.10', None)),
    ('13.0.2', ('13.0', '13.0.2')),
    (12.4, ('12.4', None)),
])
def test_parse_version(text, expected):
    assert cuda.parse_version(text) == expected


@pytest.mark.parametrize('text', ['12', '12.8.1.2', 'latest', '', 'v12.8', '12.x'])
def test_parse_version_rejects(text):
    with pytest.raises(cuda.CudaError, match='invalid CUDA version'):
        cuda.parse_version(text)


def test_parse_requests_merges_identical_and_rejects_conflicts():
    assert cuda.parse_requests(['12.4', '12.8.1', '12.4']) == {'12.4': None, '12.8': '12.8.1'}
    assert cuda.parse_requests(None) == {}
    with pytest.raises(cuda.CudaError, match=r'CUDA 12.8 is listed more than once with different versions \(12.8.0, 12.8.1\)'):
        cuda.parse_requests(['12.8.0', '12.8.1'])


def test_package_and_path_names():
    assert cuda.toolkit_package('12.8') == 'cuda-toolkit-12-8'
    assert cuda.toolkit_path('12.4', '/usr/local') == '/usr/local/cuda-12.4'


def test_pick_version():
    available = ['12.8.1-1', '12.8.0-1']
    assert cuda.pick_version(available, '12.8', None) == '12.8.1-1'
    assert cuda.pick_version(list(reversed(available)), '12.8', None) == '12.8.1-1'
    assert cuda.pick_version(available, '12.8', '12.8.0') == '12.8.0-1'
    assert cuda.pick_version(['1:12.8.1-2', '12.8.1-1'], '12.8', '12.8.1') == '1:12.8.1-2'
    with pytest.raises(cuda.CudaError) as info:
        cuda.pick_version(available, '12.8', '12.8.2')
    assert str(info.value) == 'CUDA 12.8.2 is not available: the repositories offer cuda-toolkit-12-8 12.8.1-1, 12.8.0-1'
    with pytest.raises(cuda.CudaError, match='cuda-toolkit-12-9 is not available from the configured package repositories'):
        cuda.pick_version([], '12.9', None)


def test_release_packages_are_the_whole_release_and_nothing_else():
    packages = dict.fromkeys([
        'cuda-toolkit-12-8', 'cuda-nvcc-12-8', 'cuda-cudart-12-8', 'cuda-cudart-dev-12-8', 'libcublas-12-8', 'libcublas-dev-12-8',
        'libnpp-12-8', 'libnvjitlink-12-8', 'cuda-toolkit-12-8-config-common', 'cuda-12-8', 'cuda-runtime-12-8',
        'cuda-compat-12-8', 'cuda-drivers-570', 'cuda-toolkit-12-config-common', 'cuda-toolkit-config-common',
        'cuda-toolkit-12-4', 'cuda-nvcc-12-4', 'libcublas-12-4', 'nvidia-driver-570', 'libfoo-12-8', 'cuda-nvcc-12-80'], '1')
    assert cuda.release_packages(packages, '12.8') == [
        'cuda-12-8', 'cuda-cudart-12-8', 'cuda-cudart-dev-12-8', 'cuda-nvcc-12-8', 'cuda-runtime-12-8', 'cuda-toolkit-12-8',
        'cuda-toolkit-12-8-config-common', 'libcublas-12-8', 'libcublas-dev-12-8', 'libnpp-12-8', 'libnvjitlink-12-8']


def _toolkit_dir(root, release, version, nvcc=True, version_json=True):
    path = root / ('cuda-' + release)
    (path / 'bin').mkdir(parents=True)
    if version_json:
        (path / 'version.json').write_text(json.dumps({'cuda': {'version': version}}))
    if nvcc:
        (path / 'bin' / 'nvcc').write_text('nvcc\n')
    return str(path)


def test_read_default(tmp_path):
    assert cuda.read_default(str(tmp_path)) is None
    path = _toolkit_dir(tmp_path, '12.8', '12.8.1')
    alternative = tmp_path / 'etc-alternatives-cuda'
    alternative.symlink_to(path)
    (tmp_path / 'cuda').symlink_to(alternative)
    assert cuda.read_default(str(tmp_path)) == '12.8'
    os.remove(str(tmp_path / 'cuda'))
    (tmp_path / 'cuda').symlink_to('/opt/nvidia/hpc_sdk')
    assert cuda.read_default(str(tmp_path)) == '/opt/nvidia/hpc_sdk'


def test_installed_toolkits_packages_and_runfile_installs(tmp_path):
    _toolkit_dir(tmp_path, '12.8', '12.8.1')
    _toolkit_dir(tmp_path, '12.6', '12.6.3')           # runfile install: no package
    _toolkit_dir(tmp_path, '12.2', '12.2.2', nvcc=False, version_json=False)  # leftovers of a removed package
    (tmp_path / 'cuda').symlink_to(str(tmp_path / 'cuda-12.8'))
    packages = {'cuda-toolkit-12-8': '12.8.1-1', 'cuda-toolkit-config-common': '12.8.90-1', 'cuda-nvcc-12-8': '12.8.93-1'}
    found = cuda.installed_toolkits(packages, str(tmp_path))
    assert sorted(found) == ['12.6', '12.8']
    assert found['12.8'] == {'release': '12.8', 'version': '12.8.1', 'package': 'cuda-toolkit-12-8', 'package_version': '12.8.1-1',
                             'path': str(tmp_path / 'cuda-12.8')}
    assert found['12.6']['package'] is None and found['12.6']['version'] == '12.6.3'
    listed = cuda.toolkit_list(found, cuda.read_default(str(tmp_path)))
    assert [(t['release'], t['default']) for t in listed] == [('12.6', False), ('12.8', True)]


def test_driver_problem():
    assert cuda.driver_problem('570.133.20', '12.8.1', False) is None
    assert cuda.driver_problem('570.26', '12.8', False) is None
    assert cuda.driver_problem('550.127.08', '12.8.1', True) is None
    assert cuda.driver_problem('550.127.08', '14.2', False) is None  # unknown release: not refused here
    assert cuda.driver_problem('550.127.08', '12.8.1', False) == (
        'CUDA toolkit 12.8 needs NVIDIA driver >= 570.26, but the installed driver is 550.127.08; upgrade the driver first '
        '(onprem_ai.maintenance.nvidia_driver) or set minor_version_compatibility=true (CUDA 12.x then runs on >= 525.60.13, '
        'without PTX JIT of newer code)')
    assert cuda.driver_problem('520.61.05', '12.0', True).startswith(
        'CUDA toolkit 12.0 needs NVIDIA driver >= 525.60.13 even with minor version compatibility, but the installed driver is 520.61.05')
