# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner


class ScriptedModule(object):
    """run_command answers from a list of (expected argv, (rc, out, err)); every call is checked in order."""

    def __init__(self, bins, script):
        self.bins = bins
        self.script = list(script)
        self.calls = []

    def get_bin_path(self, name, required=False):
        return self.bins.get(name)

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        expected, answer = self.script.pop(0)
        assert list(args) == expected
        return answer

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)


APT_BINS = {'dpkg-query': '/usr/bin/dpkg-query', 'apt-get': '/usr/bin/apt-get', 'apt-cache': '/usr/bin/apt-cache',
            'apt-mark': '/usr/bin/apt-mark'}
MADISON = (' nvidia-driver-570 | 570.133.20-1 | http://lab-nvidia-repo/debian12/x86_64  Packages\n'
           ' nvidia-driver-570 | 570.124.06-1 | http://lab-nvidia-repo/debian12/x86_64  Packages\n')
SIMULATION = ('NOTE: This is only a simulation!\n'
              'Remv nvidia-driver-550 [550.127.08-1]\n'
              'Inst libnvidia-compute-570 (570.133.20-1 lab-nvidia-repo [amd64])\n'
              'Inst nvidia-utils-550 [550.144.03-1] (550.127.08-1 lab-nvidia-repo [amd64])\n'
              'Conf libnvidia-compute-570 (570.133.20-1 lab-nvidia-repo [amd64])\n')


def test_apt_available_versions():
    module = ScriptedModule(APT_BINS, [(['/usr/bin/apt-cache', 'madison', 'nvidia-driver-570'], (0, MADISON, ''))])
    assert pkg.AptBackend(Runner(module)).available_versions('nvidia-driver-570') == ['570.133.20-1', '570.124.06-1']


INSTALL_ARGS = ['install', '-y', '-q', '--allow-downgrades', '--allow-change-held-packages', '-o', 'Dpkg::Options::=--force-confdef',
                '-o', 'Dpkg::Options::=--force-confold', '-s', 'libnvidia-compute-570=570.133.20-1']


def test_apt_simulation_parsing(tmp_path):
    status = tmp_path / 'status'
    status.write_text('Package: nvidia-driver-550\nStatus: install ok installed\n')
    module = ScriptedModule(APT_BINS, [(['/usr/bin/apt-get'] + INSTALL_ARGS, (0, SIMULATION, ''))])
    actions = pkg.AptBackend(Runner(module)).simulate_install([('libnvidia-compute-570', '570.133.20-1')], status_file=str(status))
    assert actions == [
        {'action': 'remove', 'name': 'nvidia-driver-550', 'from': '550.127.08-1', 'to': None},
        {'action': 'install', 'name': 'libnvidia-compute-570', 'from': None, 'to': '570.133.20-1'},
        {'action': 'downgrade', 'name': 'nvidia-utils-550', 'from': '550.144.03-1', 'to': '550.127.08-1'},
    ]


class StatusReadingModule(ScriptedModule):
    """Also records the dpkg status file apt-get was pointed at, while it still exists."""

    def run_command(self, args, **kwargs):
        self.status_seen = None
        for arg in args:
            if arg.startswith('Dir::State::status='):
                with open(arg.split('=', 1)[1]) as handle:
                    self.status_seen = handle.read()
        return 0, SIMULATION, ''


def test_apt_simulation_ignores_holds_that_a_real_run_lifts(tmp_path):
    status = tmp_path / 'status'
    status.write_text('Package: nvidia-driver-570\nStatus: hold ok installed\n')
    module = StatusReadingModule(APT_BINS, [])
    pkg.AptBackend(Runner(module)).simulate_install([('libnvidia-compute-570', '570.133.20-1')], status_file=str(status))
    assert module.status_seen == 'Package: nvidia-driver-570\nStatus: install ok installed\n'
    assert status.read_text().count('hold') == 1  # the real status file is untouched


def test_apt_holds():
    module = ScriptedModule(APT_BINS, [
        (['/usr/bin/apt-mark', 'showhold'], (0, 'nvidia-driver-570\nlibnvidia-compute-570\n', '')),
        (['/usr/bin/apt-mark', 'hold', 'a', 'b'], (0, '', '')),
        (['/usr/bin/apt-mark', 'unhold', 'c'], (0, '', '')),
    ])
    backend = pkg.AptBackend(Runner(module))
    assert backend.held() == ['libnvidia-compute-570', 'nvidia-driver-570']
    backend.hold(['b', 'a'])
    backend.unhold(['c'])
    backend.hold([])  # nothing to do: no command


def test_apt_failure_message():
    module = ScriptedModule(APT_BINS, [(['/usr/bin/apt-get', 'update', '-q'], (100, '', 'E: The repository is not signed.'))])
    with pytest.raises(pkg.PackageError, match=r'apt-get update failed \(rc=100\): E: The repository is not signed.'):
        pkg.AptBackend(Runner(module)).update_cache()


def test_installed_packages_dpkg_and_rpm():
    module = ScriptedModule({'dpkg-query': '/usr/bin/dpkg-query'}, [(
        ['/usr/bin/dpkg-query', '-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n'],
        (0, 'nvidia-driver-570\t570.133.20-1\thi \nnvidia-driver-550\t550.127.08-1\trc \nlibc6:amd64\t2.36\tii \n', ''))])
    assert pkg.backend(Runner(module)).installed(['nvidia-*', 'libc6']) == {'nvidia-driver-570': '570.133.20-1', 'libc6': '2.36'}
    module = ScriptedModule({'rpm': '/usr/bin/rpm'}, [(
        ['/usr/bin/rpm', '-qa', '--qf', '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n'],
        (0, 'nvidia-driver\t3:570.133.20-1.el9\nbash\t0:5.1.8-9.el9\n', ''))])
    assert pkg.backend(Runner(module)).installed(['nvidia-*', 'bash']) == {'nvidia-driver': '3:570.133.20-1.el9', 'bash': '5.1.8-9.el9'}


def test_dnf_backend():
    bins = {'dnf': '/usr/bin/dnf', 'rpm': '/usr/bin/rpm'}
    module = ScriptedModule(bins, [
        (['/usr/bin/dnf', 'list', '--showduplicates', '--available', '-q', 'nvidia-driver'],
         (0, 'Available Packages\nnvidia-driver.x86_64   3:570.124.06-1.el9   cuda-rhel9-x86_64\n'
             'nvidia-driver.x86_64   3:570.133.20-1.el9   cuda-rhel9-x86_64\n', '')),
        (['/usr/bin/dnf', 'module', 'reset', '-y', 'nvidia-driver'], (0, '', '')),
        (['/usr/bin/dnf', 'module', 'enable', '-y', 'nvidia-driver:570-dkms'], (0, '', '')),
        (['/usr/bin/dnf', 'install', '-y', '--allowerasing', 'nvidia-driver-570.133.20-1.el9'], (0, '', '')),
        (['/usr/bin/dnf', 'versionlock', 'list', '-q'], (0, 'nvidia-driver-3:570.133.20-1.el9.*\n', '')),
        (['/usr/bin/dnf', 'versionlock', 'add', 'nvidia-driver'], (0, '', '')),
    ])
    backend = pkg.DnfBackend(Runner(module))
    assert backend.available_versions('nvidia-driver') == ['3:570.133.20-1.el9', '3:570.124.06-1.el9']
    backend.enable_module_stream('nvidia-driver', '570-dkms')
    backend.install([('nvidia-driver', '3:570.133.20-1.el9')])
    assert backend.held() == ['nvidia-driver']
    backend.hold(['nvidia-driver'])


def test_backend_selection():
    assert isinstance(pkg.backend(Runner(ScriptedModule(APT_BINS, []))), pkg.AptBackend)
    assert isinstance(pkg.backend(Runner(ScriptedModule({'rpm': '/usr/bin/rpm', 'dnf': '/usr/bin/dnf'}, []))), pkg.DnfBackend)
    with pytest.raises(pkg.PackageError, match='Neither dpkg'):
        pkg.backend(Runner(ScriptedModule({}, [])))
