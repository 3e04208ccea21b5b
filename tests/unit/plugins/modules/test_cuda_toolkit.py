# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import re

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _cuda
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure
from ansible_collections.onprem_ai.maintenance.plugins.modules import cuda_toolkit

DRIVER_550 = {'nvidia-driver-550': '550.127.08-1', 'nvidia-utils-550': '550.127.08-1', 'libnvidia-compute-550': '550.127.08-1'}
DRIVER_570 = {'nvidia-driver-570': '570.133.20-1', 'nvidia-utils-570': '570.133.20-1', 'libnvidia-compute-570': '570.133.20-1'}
AVAILABLE = {
    'cuda-toolkit-12-2': ['12.2.2-1'],
    'cuda-toolkit-12-4': ['12.4.1-1', '12.4.0-1'],
    'cuda-toolkit-12-8': ['12.8.1-1', '12.8.0-1'],
    'cuda-toolkit-13-1': ['13.1.0-1'],
}
DEFAULTS = {'versions': None, 'state': 'present', 'default': None, 'remove_others': False,
            'minor_version_compatibility': False, 'allow_no_driver': False, 'update_cache': False}


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


def test_install_beside_existing_toolkit(root, tmp_path):
    host = node(root)
    module, result = run(host, tmp_path, versions=['12.4', '12.8'], default='12.8', diff=True)
    assert result['changed'] is True
    assert result['installed'] == ['12.8.1'] and result['removed'] == []
    assert [(t['version'], t['default']) for t in result['toolkits']] == [('12.4.1', False), ('12.8.1', True)]
    assert result['default'] == '12.8' and result['driver_version'] == '570.133.20'
    assert result['diff'] == {'before': {'toolkits': ['12.4.1'], 'default': '12.4'}, 'after': {'toolkits': ['12.4.1', '12.8.1'], 'default': '12.8'}}
    assert host.toolkit_dirs() == ['cuda-12.4', 'cuda-12.8']
    # apt resolved the transaction (-s) before installing; the package's alternative priority made 12.8 the default
    installs = [c for c in host.calls if c[1:2] == ['install']]
    assert installs[0][-2:] == ['-s', 'cuda-toolkit-12-8=12.8.1-1'] and installs[1][-1] == 'cuda-toolkit-12-8=12.8.1-1'
    assert not [c for c in host.calls if '--set' in c]
    assert {'action': 'install', 'name': 'cuda-toolkit-12-8', 'from': None, 'to': '12.8.1-1'} in result['package_actions']
    assert module.warnings == []


def test_already_present_is_no_change(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1', '12.8.1-1'))
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8.1'], default='12.8')
    assert result['changed'] is False
    assert result['installed'] == [] and result['removed'] == [] and result['package_actions'] == []
    assert host.changes() == []
    assert [c for c in host.calls if os.path.basename(c[0]) == 'apt-cache'] == []


def test_exact_version_not_available(root, tmp_path):
    host = node(root)
    failure = fail(host, tmp_path, versions=['12.8.2'])
    assert failure['msg'] == 'CUDA 12.8.2 is not available: the repositories offer cuda-toolkit-12-8 12.8.1-1, 12.8.0-1'
    assert failure['changed'] is False
    assert host.changes() == []


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


def test_package_not_in_any_repository(root, tmp_path):
    host = node(root, available={})
    failure = fail(host, tmp_path, versions=['12.8'])
    assert failure['msg'].startswith('cuda-toolkit-12-8 is not available from the configured package repositories')


def test_refuses_toolkit_the_old_driver_cannot_run(root, tmp_path):
    host = node(root, driver=DRIVER_550)
    failure = fail(host, tmp_path, versions=['12.4', '12.8'], default='12.8')
    msg = failure['msg']
    assert msg.startswith('CUDA toolkit 12.8 needs NVIDIA driver >= 570.26, but the installed driver is 550.127.08; upgrade the driver first')
    assert 'onprem_ai.maintenance.nvidia_driver' in msg and 'minor_version_compatibility=true' in msg
    assert msg.endswith('Nothing was changed.')
    assert failure['changed'] is False
    assert host.changes() == [] and host.toolkit_dirs() == ['cuda-12.4']
    assert not [c for c in host.calls if c[1:2] == ['install']]


def test_minor_version_compatibility_accepts_the_older_driver(root, tmp_path):
    host = node(root, driver=DRIVER_550)
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8'], minor_version_compatibility=True)
    assert result['changed'] is True and result['installed'] == ['12.8.1']
    assert result['driver_version'] == '550.127.08'


def test_minor_version_compatibility_has_a_floor(root, tmp_path):
    host = node(root, driver={'nvidia-driver-470': '470.256.02-1'}, toolkits=())
    failure = fail(host, tmp_path, versions=['12.4'], minor_version_compatibility=True)
    assert failure['msg'].startswith('CUDA toolkit 12.4 needs NVIDIA driver >= 525.60.13 even with minor version compatibility, '
                                     'but the installed driver is 470.256.02')


def test_no_driver_refused_unless_allowed(root, tmp_path):
    host = node(root, driver={}, toolkits=())
    failure = fail(host, tmp_path, versions=['12.8'])
    assert failure['msg'].startswith('no NVIDIA driver is installed, so CUDA toolkit 12.8 (needs driver >= 570.26) cannot be checked')
    assert 'allow_no_driver=true' in failure['msg'] and host.changes() == []
    dummy, result = run(host, tmp_path, versions=['12.8'], allow_no_driver=True)
    assert result['changed'] is True and result['driver_version'] is None and result['default'] == '12.8'


def test_unknown_release_warns_and_installs(root, tmp_path):
    host = node(root)
    module, result = run(host, tmp_path, versions=['13.1'])
    assert result['installed'] == ['13.1.0']
    assert module.warnings == ['CUDA 13.1 is not in the table of minimum drivers of this collection; the driver was not checked for it']


def test_loaded_module_older_than_installed_driver_warns(root, tmp_path):
    host = node(root)
    (tmp_path / 'loaded').write_text('550.127.08\n')
    module = FakeModule(host, versions=['12.8'])
    _cuda.manage(module, cuda_root=host.root, sysfs_version_path=str(tmp_path / 'loaded'))
    assert module.warnings == ['the loaded nvidia kernel module is 550.127.08 (installed driver 570.133.20): '
                               'CUDA 12.8 runs once the driver is reloaded or the host rebooted']


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


def test_check_mode_changes_nothing(root, tmp_path):
    host = node(root)
    module, result = run(host, tmp_path, versions=['12.4', '12.8'], default='12.4', remove_others=True, update_cache=True,
                         check_mode=True, diff=True)
    assert result['changed'] is True
    assert result['installed'] == ['12.8.1'] and result['default'] == '12.4'
    assert [(t['version'], t['default']) for t in result['toolkits']] == [('12.4.1', True), ('12.8.1', False)]
    assert result['diff'] == {'before': {'toolkits': ['12.4.1'], 'default': '12.4'}, 'after': {'toolkits': ['12.4.1', '12.8.1'], 'default': '12.4'}}
    assert host.changes() == [] and host.toolkit_dirs() == ['cuda-12.4']
    assert [a['name'] for a in result['package_actions']] == ['cuda-nvcc-12-8', 'cuda-cudart-12-8', 'cuda-toolkit-12-8']


def test_check_mode_default_switch(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1', '12.8.1-1'))
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8'], default='12.4', check_mode=True)
    assert result['changed'] is True and result['default'] == '12.4'
    assert host.changes() == [] and host.link_target() == os.path.join(host.root, 'cuda-12.8')


def test_apt_error_is_a_clear_message(root, tmp_path):
    host = node(root)
    host.failures[('apt-get', 'install')] = (100, '', 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n')
    failure = fail(host, tmp_path, versions=['12.8'])
    assert failure['msg'] == ('Package operation failed: apt-get install failed (rc=100): '
                              'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)')
    assert failure['changed'] is False and host.toolkit_dirs() == ['cuda-12.4']


def test_package_database_error_is_a_clear_message(root, tmp_path):
    host = node(root)
    host.failures[('dpkg-query', '-W')] = (2, '', 'dpkg-query: error: database locked')
    failure = fail(host, tmp_path, versions=['12.8'])
    assert failure['msg'].startswith('Cannot read the package database: dpkg-query failed (rc=2)')


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


@pytest.mark.parametrize('params, message', [
    ({'versions': ['12.4'], 'state': 'absent', 'default': '12.4'}, 'default 12.4 is listed in versions for removal'),
    ({'default': '12.4', 'remove_others': True}, 'versions is required unless only default is given'),
    ({'versions': ['12.4'], 'state': 'absent', 'remove_others': True}, 'remove_others works with state=present only'),
    ({'versions': ['12.4', '12.4.0']}, 'CUDA 12.4 is listed more than once with different versions (12.4, 12.4.0)'),
    ({'versions': ['12']}, "invalid CUDA version '12'"),
])
def test_option_errors(root, tmp_path, params, message):
    host = node(root)
    assert fail(host, tmp_path, **params)['msg'].startswith(message)
    assert host.calls == []


def test_dnf_host(root, tmp_path):
    host = node(root, toolkits=('12.4.1-1',), manager='dnf')
    dummy, result = run(host, tmp_path, versions=['12.4', '12.8'], default='12.4')
    assert result['installed'] == ['12.8.1'] and result['default'] == '12.4'
    assert ['/usr/bin/dnf', 'install', '-y', '--allowerasing', 'cuda-toolkit-12-8-12.8.1-1'] in host.calls
    assert ['/usr/bin/alternatives', '--set', 'cuda', os.path.join(host.root, 'cuda-12.8')] not in host.calls
    assert ['/usr/bin/alternatives', '--set', 'cuda', os.path.join(host.root, 'cuda-12.4')] in host.calls


def test_main_check_mode(root, tmp_path, mocker, capsys):
    host = node(root)
    mocker.patch.object(_cuda, 'CUDA_ROOT', host.root)
    mocker.patch.object(_cuda, 'SYSFS_MODULE_VERSION', str(tmp_path / 'no-module'))
    mocker.patch.object(basic.AnsibleModule, 'get_bin_path', side_effect=lambda name, *a, **k: host.bins().get(name))
    mocker.patch.object(basic.AnsibleModule, 'run_command', side_effect=host.run_command)
    with patch_module_args({'versions': ['12.4', '12.8'], 'default': '12.8', '_ansible_check_mode': True, '_ansible_diff': True}):
        with pytest.raises(SystemExit):
            cuda_toolkit.main()
    out = json.loads(capsys.readouterr().out)
    assert out['changed'] is True and out['installed'] == ['12.8.1'] and out['default'] == '12.8'
    assert out['diff']['after'] == {'toolkits': ['12.4.1', '12.8.1'], 'default': '12.8'}
    assert host.changes() == [] and host.toolkit_dirs() == ['cuda-12.4']


def test_main_refusal_is_fail_json(root, tmp_path, mocker, capsys):
    host = node(root, driver=DRIVER_550)
    mocker.patch.object(_cuda, 'CUDA_ROOT', host.root)
    mocker.patch.object(basic.AnsibleModule, 'get_bin_path', side_effect=lambda name, *a, **k: host.bins().get(name))
    mocker.patch.object(basic.AnsibleModule, 'run_command', side_effect=host.run_command)
    with patch_module_args({'versions': [12.8]}):
        with pytest.raises(SystemExit) as info:
            cuda_toolkit.main()
    assert info.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] is True and out['changed'] is False
    assert 'needs NVIDIA driver >= 570.26, but the installed driver is 550.127.08' in out['msg']
