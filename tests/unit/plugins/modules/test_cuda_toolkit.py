# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""cuda_toolkit: the cases of test_cuda_toolkit.yaml (commands and results as data), then sequences of runs on a
simulated host (FakeHost: packages, repository, /usr/local and the cuda alternative) that a list of commands
cannot express: a second run that must change nothing, a switch and back, a removal."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _cuda
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure
from ansible_collections.onprem_ai.maintenance.plugins.modules import cuda_toolkit

from helper import load_cases, run_case


@pytest.mark.parametrize('case', load_cases(__file__))
def test_case(case, tmp_path, monkeypatch):
    run_case(cuda_toolkit.main, case, tmp_path, monkeypatch)


DRIVER_550 = {'nvidia-driver-550': '550.127.08-1', 'nvidia-utils-550': '550.127.08-1', 'libnvidia-compute-550': '550.127.08-1'}
DRIVER_570 = {'nvidia-driver-570': '570.133.20-1', 'nvidia-utils-570': '570.133.20-1', 'libnvidia-compute-570': '570.133.20-1'}
AVAILABLE = {
    'cuda-toolkit-12-2': ['12.2.2-1'],
    'cuda-toolkit-12-4': ['12.4.1-1', '12.4.0-1'],
    'cuda-toolkit-12-8': ['12.8.1-1', '12.8.0-1'],
    'cuda-toolkit-13-1': ['13.1.0-1'],
}
DEFAULTS = dict((name, option.get('default')) for name, option in cuda_toolkit.ARGUMENT_SPEC.items())


class Failed(Exception):
    pass


class FakeHost(object):
    """A host with a package database, a CUDA repository, /usr/local (a tmp dir) and the cuda alternative.

    Installing cuda-toolkit-X-Y behaves like NVIDIA's packages: it brings cuda-nvcc-X-Y and cuda-cudart-X-Y,
    creates ROOT/cuda-X.Y with version.json and bin/nvcc, and registers ROOT/cuda-X.Y as an alternative of
    ROOT/cuda with priority XY (the newest wins in auto mode); removing unregisters it.
    """

    def __init__(self, root, packages=None, manager='apt', available=None):
        self.root = str(root)
        self.manager = manager
        self.packages = {}
        self.available = dict(AVAILABLE if available is None else available)
        self.alternatives = {}
        self.mode = 'auto'
        self.calls = []
        self.failures = {}  # (tool, first argument) -> (rc, out, err)
        for name, version in (packages or {}).items():
            if name.startswith('cuda-toolkit-'):
                self._install_toolkit(name, version)
            else:
                self.packages[name] = version

    # --- the simulated system -------------------------------------------------------------------
    def _release(self, name):
        return '.'.join(name.rsplit('-', 2)[1:])

    def _install_toolkit(self, name, version):
        release = self._release(name)
        dash = release.replace('.', '-')
        for package in (name, 'cuda-nvcc-' + dash, 'cuda-cudart-' + dash):
            self.packages[package] = version
        self.packages['cuda-toolkit-config-common'] = '12.8.90-1'
        path = os.path.join(self.root, 'cuda-' + release)
        os.makedirs(os.path.join(path, 'bin'), exist_ok=True)
        with open(os.path.join(path, 'version.json'), 'w') as handle:
            json.dump({'cuda': {'version': version.split('-')[0]}}, handle)
        with open(os.path.join(path, 'bin', 'nvcc'), 'w') as handle:
            handle.write('nvcc %s\n' % release)
        self.alternatives[path] = int(release.replace('.', ''))
        self._update_link()

    def _remove_package(self, name):
        self.packages.pop(name, None)
        if name.startswith('cuda-cudart-'):
            path = os.path.join(self.root, 'cuda-' + self._release(name))
            for leaf in ('version.json', os.path.join('bin', 'nvcc')):
                if os.path.exists(os.path.join(path, leaf)):
                    os.remove(os.path.join(path, leaf))
            if self.link_target() == path:
                self.mode = 'auto'
            self.alternatives.pop(path, None)
            self._update_link()

    def _update_link(self):
        link = os.path.join(self.root, 'cuda')
        if self.mode == 'auto':
            if os.path.lexists(link):
                os.remove(link)
            if self.alternatives:
                os.symlink(max(self.alternatives, key=self.alternatives.get), link)

    def set_alternative(self, path):
        if path not in self.alternatives:
            return 2, '', 'update-alternatives: error: alternative %s for cuda not registered; not setting\n' % path
        self.mode = 'manual'
        link = os.path.join(self.root, 'cuda')
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(path, link)
        return 0, '', ''

    def link_target(self):
        link = os.path.join(self.root, 'cuda')
        return os.path.realpath(link) if os.path.lexists(link) else None

    def toolkit_dirs(self):
        return sorted(name for name in os.listdir(self.root) if name.startswith('cuda-'))

    # --- commands ------------------------------------------------------------------------------
    def run_command(self, args, **kwargs):
        args = list(args)
        self.calls.append(args)
        tool = os.path.basename(args[0])
        key = (tool, args[1] if len(args) > 1 else None)
        if key in self.failures:
            return self.failures[key]
        handler = getattr(self, '_' + tool.replace('-', '_'))
        return handler(args[1:])

    def _dpkg_query(self, args):
        return 0, ''.join('%s\t%s\tii \n' % item for item in sorted(self.packages.items())), ''

    def _rpm(self, args):
        return 0, ''.join('%s\t0:%s\n' % item for item in sorted(self.packages.items())), ''

    def _apt_cache(self, args):
        name = args[1]
        return 0, ''.join(' %s | %s | http://repo/ Packages\n' % (name, v) for v in self.available.get(name, [])), ''

    def _specs(self, words):
        return [tuple(word.split('=', 1)) for word in words if word.startswith('cuda-')]

    def _apt_get(self, args):
        if args[0] == 'update':
            return 0, 'Reading package lists...\n', ''
        if args[0] == 'install':
            specs = self._specs(args)
            if '-s' in args:
                lines = []
                for name, version in specs:
                    dash = name[len('cuda-toolkit-'):]
                    for package in ('cuda-nvcc-' + dash, 'cuda-cudart-' + dash, name):
                        old = self.packages.get(package)
                        lines.append('Inst %s %s(%s lab [amd64])' % (package, '[%s] ' % old if old else '', version))
                return 0, '\n'.join(lines) + '\n', ''
            for name, version in specs:
                self._install_toolkit(name, version)
            return 0, '', ''
        if args[0] == 'remove':
            for name in args[3:]:
                self._remove_package(name)
            return 0, '', ''
        raise AssertionError(args)

    def _dnf(self, args):
        if args[0] == 'list':
            name = args[-1]
            return 0, ''.join('%s.x86_64  %s  cuda-rhel9\n' % (name, v) for v in reversed(self.available.get(name, []))), ''
        if args[0] == 'install':
            for word in args[3:]:
                match = re.match(r'^(cuda-toolkit-\d+-\d+)-(.+)$', word)
                self._install_toolkit(match.group(1), match.group(2))
            return 0, '', ''
        if args[0] == 'remove':
            for name in args[2:]:
                self._remove_package(name)
            return 0, '', ''
        if args[0] == 'makecache':
            return 0, '', ''
        raise AssertionError(args)

    def _update_alternatives(self, args):
        assert args[:2] == ['--set', 'cuda']
        return self.set_alternative(args[2])

    _alternatives = _update_alternatives

    def bins(self):
        if self.manager == 'apt':
            names = ['dpkg-query', 'apt-get', 'apt-cache', 'update-alternatives']
        else:
            names = ['rpm', 'dnf', 'alternatives']
        return dict((name, '/usr/bin/' + name) for name in names)

    def changes(self):
        """Commands that change the host."""
        changing = ('install', 'remove', 'update', 'makecache')
        return [c for c in self.calls
                if (os.path.basename(c[0]) in ('apt-get', 'dnf') and c[1] in changing and '-s' not in c) or '--set' in c]


class FakeModule(object):
    def __init__(self, host, check_mode=False, diff=False, **params):
        self.host = host
        self.params = dict(DEFAULTS, **params)
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def get_bin_path(self, name, required=False):
        return self.host.bins().get(name)

    def run_command(self, args, **kwargs):
        return self.host.run_command(args, **kwargs)

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def run(host, tmp_path, **kwargs):
    module = FakeModule(host, **kwargs)
    result = _cuda.manage(module, cuda_root=host.root, sysfs_version_path=str(tmp_path / 'no-module'))
    return module, result


def fail(host, tmp_path, **kwargs):
    with pytest.raises(OnpremError) as info:
        run(host, tmp_path, **kwargs)
    return failure(info.value)


@pytest.fixture
def root(tmp_path):
    path = tmp_path / 'usr-local'
    path.mkdir()
    return path


def node(root, driver=None, toolkits=('12.4.1-1',), **kwargs):
    packages = dict(driver if driver is not None else DRIVER_570)
    for version in toolkits:
        packages['cuda-toolkit-%s' % '-'.join(version.split('.')[:2])] = version
    return FakeHost(root, packages, **kwargs)


def test_exact_version_picks_that_release(root, tmp_path):
    host = node(root)
    dummy, result = run(host, tmp_path, versions=['12.8.0'])
    assert result['installed'] == ['12.8.0']
    assert host.packages['cuda-toolkit-12-8'] == '12.8.0-1'


def test_exact_version_changes_an_installed_release(root, tmp_path):
    host = node(root, toolkits=('12.4.0-1',))
    dummy, result = run(host, tmp_path, versions=['12.4.1'])
    assert result['changed'] is True and result['installed'] == ['12.4.1']
    assert host.packages['cuda-toolkit-12-4'] == '12.4.1-1'


def test_minor_version_compatibility_accepts_the_older_driver(root, tmp_path):
    host = node(root, driver=DRIVER_550)
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8'], minor_version_compatibility=True)
    assert result['changed'] is True and result['installed'] == ['12.8.1']
    assert result['driver_version'] == '550.127.08'


def test_unknown_release_warns_and_installs(root, tmp_path):
    host = node(root)
    module, result = run(host, tmp_path, versions=['13.1'])
    assert result['installed'] == ['13.1.0']
    assert module.warnings == ['CUDA 13.1 is not in the table of minimum drivers of this collection; the driver was not checked for it']


def test_remove_others_keeps_the_default(root, tmp_path):
    host = node(root, toolkits=('12.2.2-1', '12.4.1-1', '12.8.1-1'))
    dummy, result = run(host, tmp_path, versions=['12.8'], default='12.4', remove_others=True)
    assert result['changed'] is True
    assert result['removed'] == ['12.2.2'] and result['installed'] == []
    assert [t['release'] for t in result['toolkits']] == ['12.4', '12.8']
    assert result['default'] == '12.4'
    removes = [c for c in host.calls if c[1:2] == ['remove']]
    assert removes == [['/usr/bin/apt-get', 'remove', '-y', '-q', 'cuda-cudart-12-2', 'cuda-nvcc-12-2', 'cuda-toolkit-12-2']]
    assert ['/usr/bin/update-alternatives', '--set', 'cuda', os.path.join(host.root, 'cuda-12.4')] in host.calls
    assert 'cuda-toolkit-config-common' in host.packages
    assert {'action': 'remove', 'name': 'cuda-toolkit-12-2', 'from': '12.2.2-1', 'to': None} in result['package_actions']


def test_default_switch_and_back_is_idempotent(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1', '12.8.1-1'))
    assert host.link_target() == os.path.join(host.root, 'cuda-12.8')
    dummy, result = run(host, tmp_path, default='12.4', diff=True)
    assert result['changed'] is True and result['default'] == '12.4'
    assert result['diff']['before']['default'] == '12.8' and result['diff']['after']['default'] == '12.4'
    assert host.link_target() == os.path.join(host.root, 'cuda-12.4')
    dummy, again = run(host, tmp_path, default='12.4')
    assert again['changed'] is False
    assert len([c for c in host.calls if '--set' in c]) == 1


def test_default_must_be_installed_or_requested(root, tmp_path):
    host = node(root)
    failure = fail(host, tmp_path, versions=['12.4'], default='12.8')
    assert failure['msg'] == 'default 12.8 is neither installed nor listed in versions (installed: 12.4)'


def test_default_not_registered_is_a_clear_failure(root, tmp_path):
    host = node(root)
    # a toolkit from the runfile installer: on disk, no package, no alternative
    os.makedirs(os.path.join(host.root, 'cuda-12.6', 'bin'))
    with open(os.path.join(host.root, 'cuda-12.6', 'version.json'), 'w') as handle:
        json.dump({'cuda': {'version': '12.6.3'}}, handle)
    failure = fail(host, tmp_path, default='12.6')
    assert 'update-alternatives --set cuda %s failed (rc=2)' % os.path.join(host.root, 'cuda-12.6') in failure['msg']
    assert failure['changed'] is True  # the attempt was made


def test_check_mode_default_switch(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1', '12.8.1-1'))
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8'], default='12.4', check_mode=True)
    assert result['changed'] is True and result['default'] == '12.4'
    assert host.changes() == [] and host.link_target() == os.path.join(host.root, 'cuda-12.8')


def test_update_cache_only_outside_check_mode(root, tmp_path):
    host = node(root)
    run(host, tmp_path, versions=['12.4'], update_cache=True, check_mode=True)
    assert not [c for c in host.calls if c[1:2] == ['update']]
    dummy, result = run(host, tmp_path, versions=['12.4'], update_cache=True)
    assert [c for c in host.calls if c[1:2] == ['update']] and result['changed'] is False


def test_state_absent(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1', '12.8.1-1'))
    dummy, result = run(host, tmp_path, versions=['12.8', '12.2'], state='absent', default='12.4')
    assert result['changed'] is True and result['removed'] == ['12.8.1']
    assert [t['release'] for t in result['toolkits']] == ['12.4'] and result['default'] == '12.4'
    dummy, again = run(host, tmp_path, versions=['12.8'], state='absent')
    assert again['changed'] is False


# ---- generated bad input: fail_json with a message, never a traceback ------------------------------------
import tempfile  # noqa: E402  (kept next to the property test it serves)
from unittest import mock  # noqa: E402

from hypothesis import given  # noqa: E402

from fuzz import FUZZ_SETTINGS, mutated_args, run_module  # noqa: E402

FUZZ_VALID = dict(DEFAULTS, versions=['12.4', '12.8'], default='12.8')


def _fuzz_commands(argv, **kwargs):
    """A host with driver 570 and CUDA 12.8 in the repository; every other command fails."""
    name = os.path.basename(argv[0])
    if name == 'dpkg-query':
        return 0, ''.join('%s\t%s\tii \n' % item for item in sorted(DRIVER_570.items())), ''
    if name == 'apt-cache':
        return 0, ''.join(' %s | %s | http://repo/ Packages\n' % (argv[-1], v) for v in AVAILABLE.get(argv[-1], [])), ''
    return 1, '', '%s: not run in this test' % name


@FUZZ_SETTINGS
@given(args=mutated_args(FUZZ_VALID, sorted(set(FUZZ_VALID) | {'bogus_option'}), infinity=True))
def test_fuzz_cuda_toolkit_arguments(tmp_path, args):
    # apt's simulation reads a copy of the dpkg status in a temporary directory: under tmp_path here
    with mock.patch.object(tempfile, 'tempdir', str(tmp_path)):
        run_module(cuda_toolkit.main, args, allowed_root=tmp_path, commands=_fuzz_commands, check_mode=True)
