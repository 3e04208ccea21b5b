# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify against the node itself: both toolkits on disk and in dpkg, /usr/local/cuda and nvcc on 12.8."""

from __future__ import annotations

import json
import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ['MOLECULE_INVENTORY_FILE']).get_hosts('gpu_nodes')


@pytest.mark.parametrize('release, version', [('12.4', '12.4.1'), ('12.8', '12.8.1')])
def test_toolkits_side_by_side(host, release, version):
    directory = host.file('/usr/local/cuda-%s' % release)
    assert directory.is_directory
    data = json.loads(host.file('/usr/local/cuda-%s/version.json' % release).content_string)
    assert data['cuda']['version'] == version


@pytest.mark.parametrize('name, version', [('cuda-toolkit-12-4', '12.4.1-1'), ('cuda-toolkit-12-8', '12.8.1-1')])
def test_packages_installed(host, name, version):
    package = host.package(name)
    assert package.is_installed
    assert package.version == version


def test_default_is_12_8(host):
    assert host.file('/usr/local/cuda').is_symlink
    assert host.check_output('readlink -f /usr/local/cuda') == '/usr/local/cuda-12.8'
    assert 'link currently points to /usr/local/cuda-12.8' in host.check_output('update-alternatives --display cuda')


def test_nvcc_of_the_default_is_12_8(host):
    out = host.check_output('/usr/local/cuda/bin/nvcc --version')
    assert 'Cuda compilation tools, release 12.8, V12.8.93' in out


def test_driver_is_570(host):
    assert host.package('nvidia-driver-570').version == '570.133.20-1'
    assert not host.package('nvidia-driver-550').is_installed
