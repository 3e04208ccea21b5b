# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import fnmatch
import os
import json

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._nvidia_driver import DriverError, DriverManager, MigUnknown, ProcessesUnknown
from ansible_collections.onprem_ai.maintenance.plugins.modules import nvidia_driver

REPO = {}
for _v in ('550.127.08', '550.144.03', '570.124.06', '570.133.20'):
    _b = _v.split('.', maxsplit=1)[0]
    _names = nvidia.driver_package_names('branch', _b, fabricmanager=True) + nvidia.driver_package_names('branch', _b, open_kernel=True)
    for _n in set(_names + ['cuda-drivers-' + _b]):
        REPO.setdefault(_n, []).insert(0, _v + '-1')
REPO['linux-headers-6.1.0-28-amd64'] = ['6.1.119-1']
OLD = dict((n, '550.127.08-1') for n in nvidia.driver_package_names('branch', '550'))


class FakePackages(object):
    """A package manager whose repository and database are dicts; install() follows apt's conflicts."""

    name = 'apt'

    def __init__(self, installed=None, repo=None, held=()):
        self.db = dict(installed if installed is not None else OLD)
        self.repo = repo if repo is not None else REPO
        self.holds = set(held)
        self.log = []

    def installed(self, patterns):
        return dict((n, v) for n, v in self.db.items() if any(fnmatch.fnmatchcase(n, p) for p in patterns))

    def available_versions(self, name):
        return list(self.repo.get(name, []))

    def held(self):
        return sorted(self.holds)

    def update_cache(self):
        self.log.append('update')

    def simulate_install(self, specs):
        return [{'action': 'install', 'name': n, 'from': self.db.get(n), 'to': v} for n, v in specs]

    def install(self, specs):
        self.log.append(('install', list(specs)))
        branches = set(nvidia.branch_of(v) for n, v in specs)
        for name in list(self.db):  # other branches conflict (nvidia-driver-binary & co.)
            if name.split('-')[-1].isdigit() and name.split('-')[-1] not in branches and not name.startswith('linux-'):
                del self.db[name]
        self.db.update(dict(specs))
        return self.simulate_install(specs)

    def hold(self, names):
        self.log.append(('hold', sorted(names)))
        self.holds.update(names)

    def unhold(self, names):
        self.log.append(('unhold', sorted(names)))
        self.holds.difference_update(names)

    def enable_module_stream(self, name, stream):
        self.log.append(('stream', name, stream))


class FakeHost(object):
    def __init__(self, packages, loaded='550.127.08', procs=(), gpus=None, in_use=False, services=(), procs_unknown=None,
                 pci=None, mig=None, mig_unknown=None, mig_broken=False):
        self.mig = mig or {}
        self.mig_unknown = mig_unknown
        self.mig_broken = mig_broken
        self.packages = packages
        self.loaded = loaded
        self.procs = list(procs)
        self.procs_unknown = procs_unknown
        self._pci = pci
        self._gpus = gpus if gpus is not None else [{'name': 'NVIDIA H100 80GB HBM3', 'architecture': 'Hopper'}]
        self.cuda_root = '/nonexistent/cuda-root'
        self.in_use = in_use
        self.active = set(services)
        self.log = []

    def kernel_release(self):
        return '6.1.0-28-amd64'

    def loaded_version(self):
        return self.loaded

    def loaded_modules(self):
        return ['nvidia_uvm', 'nvidia'] if self.loaded else []

    def gpus(self):
        return self._gpus or None

    # MIG: self.mig is {uuid: {'index', 'name', 'current', 'pending', 'instances'}}; instances vanish on unload
    def mig_snapshot(self):
        if self.mig_unknown:
            raise MigUnknown(self.mig_unknown)
        return json.loads(json.dumps(self.mig))

    def smi(self, args):
        self.log.append(('nvidia-smi',) + tuple(args))
        args = list(args)
        if args[:1] == ['-i'] and args[2:] == ['-mig', '1']:
            for gpu in self.mig.values():
                if gpu['index'] == int(args[1]):
                    gpu['current'] = 'Enabled'
            return 0, '', ''
        if args == ['mig', '-lgi']:
            rows = []
            for gpu in self.mig.values():
                for gi_id, gi in enumerate(gpu['instances'], 1):
                    rows.append('|  %2d  MIG %-12s %4d %8d %10d:%d     |' % (gpu['index'], gi['name'], gi['profile_id'], gi_id, gi['start'], gi['size']))
            return (0, '\n'.join(rows) + '\n', '') if rows else (6, 'No GPU instances found: Not Found\n', '')
        gpu = [g for g in self.mig.values() if args[:3] == ['mig', '-i', str(g['index'])]][0]
        op = args[3]
        if op in ('-dci', '-dgi'):
            if op == '-dgi':
                gpu['instances'] = []
            return 0, '', ''
        if op == '-cgi':
            profile, start = [int(x) for x in args[4].split(':')]
            if not self.mig_broken:
                names = {19: '1g.10gb', 9: '3g.40gb', 14: '2g.20gb'}
                gpu['instances'].append({'profile_id': profile, 'name': names[profile], 'start': start,
                                         'size': {19: 1, 14: 2, 9: 4}[profile], 'compute': []})
            return 0, '', ''
        if op == '-gi':
            gi = gpu['instances'][int(args[4]) - 1]
            for ci in args[6].split(','):
                gi['compute'].append({'profile_id': int(ci), 'name': gi['name'], 'start': 0, 'size': gi['size']})
            return 0, '', ''
        raise AssertionError(args)

    def set_mig_mode(self, index, mode=1):
        return self.smi(['-i', str(index), '-mig', str(mode)])

    def mig_command(self, index, *args):
        return self.smi(['mig', '-i', str(index)] + list(args))

    def mig_list(self, flag):
        return self.smi(['mig', flag])

    def unload(self, modules):
        return self.modprobe('-r', *modules)

    def load(self, module_name):
        return self.modprobe(module_name)

    def pci_gpus(self):
        return self._pci

    def gpu_processes(self):
        if self.procs_unknown:
            raise ProcessesUnknown(self.procs_unknown)
        return [dict(pid=p[0], name=p[1], used_memory_mib=20480, gpu_uuid='GPU-1') for p in self.procs]

    def systemctl(self, *args):
        self.log.append(('systemctl',) + args)
        if args[0] == 'stop':
            self.active.discard(args[1])
            self.procs = [p for p in self.procs if p[2] != args[1]]
        elif args[0] == 'start':
            self.active.add(args[1])
        return 0, '', ''

    def is_active(self, service):
        return service in self.active

    def modprobe(self, *args):
        self.log.append(('modprobe',) + args)
        if args[0] == '-r':
            if self.in_use:
                return 1, '', 'modprobe: FATAL: Module nvidia is in use.'
            self.loaded = None
            for gpu in self.mig.values():
                gpu['instances'] = []
            return 0, '', ''
        if args[0] == 'nvidia':
            self.loaded = _installed_upstream(self.packages)
        return 0, '', ''

    def sleep(self, seconds):
        self.log.append(('sleep', seconds))


def _installed_upstream(packages):
    for name, version in packages.db.items():
        if name.startswith('libnvidia-compute'):
            return nvidia.upstream_version(version)
    return None


class FakeModule(object):
    def __init__(self, check_mode=False):
        self.check_mode = check_mode


def params(**kwargs):
    base = dict((name, option.get('default')) for name, option in nvidia_driver.ARGUMENT_SPEC.items())
    base.update(version='570', stop_timeout=5, state_dir=None)  # a short wait; state_dir: each test's tmp dir
    base.update(kwargs)
    return base


def run(host, tmp_path, check_mode=False, facts=None, **kwargs):
    manager = DriverManager(FakeModule(check_mode), host, params(state_dir=str(tmp_path), **kwargs),
                            facts or {'distribution': 'Debian', 'distribution_version': '12'})
    return manager.run(), manager


def cuda_root(tmp_path, *versions):
    root = tmp_path / 'usr-local'
    for version in versions:
        path = root / ('cuda-' + '.'.join(version.split('.')[:2]))
        path.mkdir(parents=True)
        (path / 'version.json').write_text(json.dumps({'cuda': {'version': version}}))
    return str(root)


def test_branch_upgrade_reloads_holds_and_records(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm)
    result, dummy = run(host, tmp_path)
    assert result['changed'] is True
    assert result['version'] == {'before': '550.127.08', 'after': '570.133.20', 'loaded': '570.133.20'}
    assert result['plan']['layout'] == 'branch'
    assert result['plan']['packages']['nvidia-driver-570'] == '570.133.20-1'
    assert 'nvidia-fabricmanager-570' not in result['plan']['packages']  # none installed before: auto leaves it out
    assert result['reboot_required'] is False and result['reload']['succeeded'] is True
    assert ('modprobe', '-r', 'nvidia_uvm', 'nvidia') in host.log
    assert sorted(pm.holds) == sorted(nvidia.driver_package_names('branch', '570'))
    record = json.loads((tmp_path / 'nvidia_driver.json').read_text())
    assert record['previous']['version'] == '550.127.08'
    assert record['previous']['packages'] == OLD
    assert record['history'][-1]['from'] == '550.127.08' and record['history'][-1]['to'] == '570.133.20'
    assert 'nvidia-driver-550=550.127.08-1' in result['diff']['before']
    assert 'nvidia-driver-570=570.133.20-1' in result['diff']['after']


def test_second_run_changes_nothing(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm)
    run(host, tmp_path)
    pm.log = []
    result, dummy = run(host, tmp_path)
    assert result['changed'] is False
    assert pm.log == []
    assert result['previous_version'] == '550.127.08'


def test_missing_holds_are_a_change_of_their_own(tmp_path):
    pm = FakePackages(installed=dict((n, '570.133.20-1') for n in nvidia.driver_package_names('branch', '570')))
    result, dummy = run(FakeHost(pm, loaded='570.133.20'), tmp_path)
    assert result['changed'] is True
    assert not [entry for entry in pm.log if entry[0] == 'install']
    assert sorted(pm.holds) == sorted(nvidia.driver_package_names('branch', '570'))


def test_check_mode_plans_and_changes_nothing(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm)
    result, dummy = run(host, tmp_path, check_mode=True)
    assert result['changed'] is True
    assert result['version']['after'] == '570.133.20'
    assert result['plan']['actions'][0]['to'].startswith('570.133.20')
    assert pm.db == OLD and pm.holds == set() and host.loaded == '550.127.08'
    assert not (tmp_path / 'nvidia_driver.json').exists()


def test_exact_version(tmp_path):
    result, dummy = run(FakeHost(FakePackages()), tmp_path, version='570.124.06')
    assert result['version']['after'] == '570.124.06'


def test_unavailable_version_names_what_exists(tmp_path):
    with pytest.raises(DriverError, match=r'570\.999\.1 is not available.*nvidia-driver-570 \(570\.133\.20, 570\.124\.06\)'):
        run(FakeHost(FakePackages()), tmp_path, version='570.999.1')


def test_bad_version_string(tmp_path):
    with pytest.raises(DriverError, match='must be a driver branch'):
        run(FakeHost(FakePackages()), tmp_path, version='latest')


def test_refuses_while_gpu_processes_run(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, procs=[(4242, 'vllm', 'vllm.service')], mig=_mig_gpu(), gpus=_mig_gpus())
    with pytest.raises(DriverError, match=r'GPU compute processes are running: vllm \(pid 4242\).*stop_services') as caught:
        run(host, tmp_path)
    assert pm.db == OLD and caught.value.result is None
    assert not (tmp_path / 'nvidia_driver.json').exists()  # a refusal records nothing


def test_stops_and_restarts_named_services(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, procs=[(4242, 'vllm', 'vllm.service')], services=['vllm.service'])
    result, dummy = run(host, tmp_path, stop_services=['vllm.service'])
    assert result['services'] == {'stopped': ['vllm.service'], 'started': ['vllm.service']}
    assert result['reload']['succeeded'] is True
    assert host.log.index(('systemctl', 'stop', 'vllm.service')) < host.log.index(('modprobe', '-r', 'nvidia_uvm', 'nvidia'))


def test_processes_that_do_not_stop_abort_and_services_come_back(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, procs=[(4242, 'python3', 'other.service')], services=['vllm.service'])
    with pytest.raises(DriverError, match='still run after stopping vllm.service'):
        run(host, tmp_path, stop_services=['vllm.service'], stop_timeout=0)
    assert ('systemctl', 'start', 'vllm.service') in host.log
    assert pm.db == OLD


def test_module_in_use_means_reboot(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, in_use=True, procs=[(1, 'vllm', 'vllm.service')], services=['vllm.service'])
    result, manager = run(host, tmp_path, stop_services=['vllm.service'])
    assert result['reboot_required'] is True
    assert result['reload']['succeeded'] is False
    assert 'Module nvidia is in use' in result['reload']['message']
    assert result['version']['loaded'] == '550.127.08'
    assert result['services']['started'] == []
    assert any('left vllm.service stopped' in w for w in manager.warnings)


def test_first_install_loads_the_module(tmp_path):
    pm = FakePackages(installed={})
    # no driver yet: nvidia-smi cannot list the GPUs, the PCI bus (sysfs) can
    host = FakeHost(pm, loaded=None, gpus=[], pci=[{'index': None, 'name': None, 'pci_device_id': '2330', 'architecture': 'Hopper'}])
    result, dummy = run(host, tmp_path)
    assert {'check': 'GPU support', 'ok': True, 'detail': 'no NVIDIA GPU (from PCI bus)'} not in result['plan']['preflight']
    assert result['version'] == {'before': None, 'after': '570.133.20', 'loaded': '570.133.20'}
    assert ('modprobe', 'nvidia') in host.log and not [e for e in host.log if e[:2] == ('modprobe', '-r')]
    assert result['previous_version'] is None and result['reboot_required'] is False


def test_reload_disabled_means_reboot(tmp_path):
    result, dummy = run(FakeHost(FakePackages()), tmp_path, reload=False)
    assert result['reboot_required'] is True and result['reload']['attempted'] is False


def test_preflight_cuda_toolkit_too_new_for_target(tmp_path):
    pm = FakePackages(installed=dict((n, '570.133.20-1') for n in nvidia.driver_package_names('branch', '570')))
    host = FakeHost(pm, loaded='570.133.20')
    host.cuda_root = cuda_root(tmp_path, '12.8.1')
    with pytest.raises(DriverError, match=r'driver 550\.144\.03 cannot run the installed CUDA 12\.8\.1 toolkit \(needs >= 570\.26\)'):
        run(host, tmp_path, version='550')
    assert pm.log == []


def test_preflight_cuda_minor_version_compatibility(tmp_path):
    pm = FakePackages(installed=dict((n, '570.133.20-1') for n in nvidia.driver_package_names('branch', '570')))
    host = FakeHost(pm, loaded='570.133.20')
    host.cuda_root = cuda_root(tmp_path, '12.8.1')
    result, dummy = run(host, tmp_path, version='550', minor_version_compatibility=True)
    assert result['version']['after'] == '550.144.03'


def test_preflight_kernel_headers(tmp_path):
    repo = dict((k, v) for k, v in REPO.items() if not k.startswith('linux-headers'))
    with pytest.raises(DriverError, match='kernel headers for the running kernel.*linux-headers-6.1.0-28-amd64'):
        run(FakeHost(FakePackages(repo=repo)), tmp_path)
    result, dummy = run(FakeHost(FakePackages(repo=repo)), tmp_path, check_kernel_headers=False)
    assert result['changed'] is True


def test_preflight_gpu_support(tmp_path):
    host = FakeHost(FakePackages(), gpus=[{'name': 'Tesla V100', 'architecture': 'Volta'}])
    with pytest.raises(DriverError, match='open kernel modules do not support Volta'):
        run(host, tmp_path, kernel_module='open', check_kernel_headers=False)


def test_fabricmanager_follows_the_driver(tmp_path):
    installed = dict(OLD)
    installed['nvidia-fabricmanager-550'] = '550.127.08-1'
    pm = FakePackages(installed=installed)
    result, dummy = run(FakeHost(pm), tmp_path)
    assert pm.db['nvidia-fabricmanager-570'] == '570.133.20-1'
    assert 'nvidia-fabricmanager-570' in result['held']


def test_rollback_to_previous(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm)
    run(host, tmp_path)
    result, dummy = run(host, tmp_path, state='previous', version=None)
    assert result['version'] == {'before': '570.133.20', 'after': '550.127.08', 'loaded': '550.127.08'}
    assert dict((n, v) for n, v in pm.db.items() if n in OLD) == OLD
    record = json.loads((tmp_path / 'nvidia_driver.json').read_text())
    assert record['previous']['version'] == '570.133.20'  # rolling back again returns to 570


def test_rollback_without_record(tmp_path):
    with pytest.raises(DriverError, match='No previous driver version is recorded'):
        run(FakeHost(FakePackages()), tmp_path, state='previous', version=None)


def test_unreadable_record_is_a_clear_error(tmp_path):
    (tmp_path / 'nvidia_driver.json').write_text('{oops')
    with pytest.raises(DriverError, match='cannot read .*nvidia_driver.json'):
        run(FakeHost(FakePackages()), tmp_path)


def test_auto_layout_falls_back_to_unversioned(tmp_path):
    repo = {'nvidia-driver': ['590.44.01-1'], 'nvidia-utils': ['590.44.01-1'], 'libnvidia-compute': ['590.44.01-1'],
            'nvidia-kernel-common': ['590.44.01-1'], 'nvidia-dkms': ['590.44.01-1'], 'linux-headers-6.1.0-28-amd64': ['1']}
    pm = FakePackages(installed={}, repo=repo)
    result, dummy = run(FakeHost(pm, loaded=None, gpus=[], pci=[]), tmp_path, version='590', facts={'distribution': 'Ubuntu', 'distribution_version': '24.04'})
    assert result['plan']['layout'] == 'unversioned'
    assert result['previous_version'] is None


def test_dnf_enables_the_module_stream(tmp_path):
    repo = dict((n, ['3:570.133.20-1.el9']) for n in nvidia.driver_package_names('dnf', '570'))
    repo['linux-headers-6.1.0-28-amd64'] = []
    repo['kernel-devel-6.1.0-28-amd64'] = ['6.1.0-28']
    pm = FakePackages(installed={}, repo=repo)
    pm.name = 'dnf'
    result, dummy = run(FakeHost(pm, loaded=None), tmp_path, facts={'distribution': 'RedHat', 'distribution_version': '9.4'})
    assert ('stream', 'nvidia-driver', '570-dkms') in pm.log
    assert result['plan']['module_stream'] == 'nvidia-driver:570-dkms'
    assert result['plan']['packages']['kmod-nvidia-latest-dkms'] == '3:570.133.20-1.el9'


def test_package_errors_explain_what_to_do(tmp_path):
    pm = FakePackages()

    def broken(specs):
        raise pkg.PackageError('apt-get install -y failed (rc=100): E: Unable to fetch some archives')
    pm.install = broken
    with pytest.raises(DriverError, match='Package change failed: .*Unable to fetch.*state=previous'):
        run(FakeHost(pm), tmp_path)


# ---- GPU processes that cannot be read for sure: never "none" -------------------------------------------
def test_refuses_when_processes_cannot_be_read(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, procs_unknown='nvidia-smi --query-compute-apps failed (error, rc=15): Unknown Error')
    with pytest.raises(DriverError, match=r'Cannot tell whether GPU processes are running: nvidia-smi --query-compute-apps failed.*'
                                          r'Nothing was changed.*stop_services'):
        run(host, tmp_path)
    assert pm.db == OLD and not pm.log


def test_unreadable_processes_with_stop_services_stops_them_and_goes_ahead(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, procs_unknown='cannot be read', services=['vllm.service'])
    result, manager = run(host, tmp_path, stop_services=['vllm.service'])
    assert result['services']['stopped'] == ['vllm.service'] and result['version']['after'] == '570.133.20'
    assert any('still cannot be read' in w for w in manager.warnings)


def test_process_names_with_commas_are_named_in_the_refusal(tmp_path):
    host = FakeHost(FakePackages(), procs=[(77, 'python3 -m vllm --model a,b', 'vllm.service'), (78, None, 'x.service')])
    with pytest.raises(DriverError, match=r'python3 -m vllm --model a,b \(pid 77\), pid 78 \(name not readable\)'):
        run(host, tmp_path)


class SmiModule(object):
    """AnsibleModule stand-in for Host: nvidia-smi prints what the test says."""

    def __init__(self, smi_result, smi=True):
        self.smi_result = smi_result
        self.smi = smi
        self.calls = []

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name if (name != 'nvidia-smi' or self.smi) else None

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        return self.smi_result


def smi_host(tmp_path, result, loaded='550.127.08', smi=True):
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils._nvidia_driver import Host
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner
    sysfs = tmp_path / 'sys-module'
    if loaded:
        (sysfs / 'nvidia').mkdir(parents=True)
        (sysfs / 'nvidia' / 'version').write_text(loaded + '\n')
    return Host(Runner(SmiModule(result, smi)), FakePackages(), sysfs_root=str(sysfs))


def test_host_reads_processes_name_last(tmp_path):
    host = smi_host(tmp_path, (0, 'GPU-1, 4242, 20480, /usr/bin/python3 -m vllm serve m --x a,b\nGPU-2, 4242, [N/A], [Not Found]\n', ''))
    procs = host.gpu_processes()
    assert host.runner.module.calls[-1] == ['/usr/bin/nvidia-smi', '--query-compute-apps=gpu_uuid,pid,used_memory,process_name',
                                            '--format=csv,noheader,nounits']
    assert [(p['pid'], p['name'], p['used_memory_mib']) for p in procs] == [
        (4242, '/usr/bin/python3 -m vllm serve m --x a,b', 20480), (4242, None, None)]


@pytest.mark.parametrize('result,loaded,smi,expected', [
    ((0, '', ''), '550.127.08', True, []),
    ((6, 'No devices were found\n', ''), '550.127.08', True, []),
    ((9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", ''), None, True, []),
    ((0, '', ''), None, False, []),
    ((18, 'Failed to initialize NVML: Driver/library version mismatch\n', ''), '550.127.08', True, 'driver_library_mismatch'),
    ((15, 'Unable to determine the device handle for GPU 00000000:18:00.0: Unknown Error\n', ''), '550.127.08', True, 'rc=15'),
    ((0, 'GPU-1, [N/A], 1, x\n', ''), '550.127.08', True, 'cannot be read for sure'),
    ((0, 'GPU-1, 12\n', ''), '550.127.08', True, 'cannot be read for sure'),
    ((0, '', ''), '550.127.08', False, 'nvidia-smi is not installed while the nvidia module 550.127.08 is loaded'),
])
def test_host_process_list_known_or_unknown(tmp_path, result, loaded, smi, expected):
    host = smi_host(tmp_path, result, loaded, smi)
    if isinstance(expected, list):
        assert host.gpu_processes() == expected
    else:
        with pytest.raises(ProcessesUnknown, match=expected):
            host.gpu_processes()


# ---- GPU architecture that is not known -----------------------------------------------------------------
def test_unknown_architecture_refused(tmp_path):
    host = FakeHost(FakePackages(), gpus=[{'index': 0, 'name': 'Tesla M10', 'architecture': None, 'pci_device_id': '13be'}])
    with pytest.raises(DriverError, match=r'cannot tell whether driver branch 570 supports GPU 0 \(Tesla M10, PCI device id 13be\).*'
                                          r'allow_unknown_gpu=true'):
        run(host, tmp_path, check_kernel_headers=False)


def test_unknown_architecture_allowed_with_a_warning(tmp_path):
    host = FakeHost(FakePackages(), gpus=[{'index': 0, 'name': 'Tesla M10', 'architecture': None, 'pci_device_id': '13be'}])
    result, manager = run(host, tmp_path, check_kernel_headers=False, allow_unknown_gpu=True)
    assert result['version']['after'] == '570.133.20'
    assert any('allow_unknown_gpu' in w and 'Tesla M10' in w for w in manager.warnings)


def test_old_driver_without_architecture_uses_pci_table(tmp_path):
    # nvidia-smi 390 prints no <product_architecture>: the parser derives Maxwell from 13BD, and 590 dropped Maxwell
    with open(os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi', 'nagios-tesla-m10-390.94-v9-gpu0.xml')) as handle:
        gpus = nvidia.parse_smi_xml(handle.read())['gpus']
    repo = dict(REPO)
    for name in nvidia.driver_package_names('branch', '590'):
        repo[name] = ['590.44.01-1']
    with pytest.raises(DriverError, match=r'driver branch 590 no longer supports Maxwell GPUs'):
        run(FakeHost(FakePackages(repo=repo), gpus=gpus), tmp_path, version='590', check_kernel_headers=False)


def test_gpus_not_listable_at_all_refused_unless_allowed(tmp_path):
    host = FakeHost(FakePackages(), gpus=[], pci=None)
    with pytest.raises(DriverError, match='the GPUs cannot be listed'):
        run(host, tmp_path, check_kernel_headers=False)
    result, dummy = run(FakeHost(FakePackages(), gpus=[], pci=None), tmp_path, check_kernel_headers=False, allow_unknown_gpu=True)
    assert result['changed'] is True


# ---- MIG: record before, re-create after the reload or the reboot, verify -----------------------------------
def _mig_gpu():
    layout = [{'profile_id': 9, 'name': '3g.40gb', 'start': 0, 'size': 4, 'compute': [{'profile_id': 2, 'name': '3g.40gb', 'start': 0, 'size': 4}]},
              {'profile_id': 19, 'name': '1g.10gb', 'start': 4, 'size': 1, 'compute': [{'profile_id': 0, 'name': '1g.10gb', 'start': 0, 'size': 1}]},
              {'profile_id': 19, 'name': '1g.10gb', 'start': 5, 'size': 1, 'compute': []}]
    return {'GPU-A': {'index': 0, 'name': 'NVIDIA H100 80GB HBM3', 'current': 'Enabled', 'pending': 'Enabled', 'instances': layout}}


def _mig_gpus():
    return [{'index': 0, 'uuid': 'GPU-A', 'name': 'NVIDIA H100 80GB HBM3', 'architecture': 'Hopper'}]


def test_mig_layout_recreated_after_reload(tmp_path):
    host = FakeHost(FakePackages(), mig=_mig_gpu(), gpus=_mig_gpus())
    wanted = json.loads(json.dumps(host.mig['GPU-A']['instances']))
    result, dummy = run(host, tmp_path)
    assert result['reload']['succeeded'] is True
    assert result['mig']['restored'] is True and result['mig']['restore_pending'] is False
    assert result['mig']['message'] == 'GPU 0: MIG layout kept: 3g.40gb@0 [3g.40gb], 1g.10gb@4 [1g.10gb], 1g.10gb@5 [no compute instance]'
    assert [(g['profile_id'], g['start'], len(g['compute'])) for g in host.mig['GPU-A']['instances']] == [
        (g['profile_id'], g['start'], len(g['compute'])) for g in wanted]
    assert ('nvidia-smi', 'mig', '-i', '0', '-cgi', '9:0') in host.log
    assert 'mig_restore' not in json.loads((tmp_path / 'nvidia_driver.json').read_text())


def test_mig_layout_that_cannot_be_recreated_fails_and_stays_recorded(tmp_path):
    host = FakeHost(FakePackages(), mig=_mig_gpu(), gpus=_mig_gpus(), mig_broken=True)
    with pytest.raises(DriverError, match=r'MIG layout could not be re-created: GPU 0: MIG layout differs: recorded 3g.40gb@0') as caught:
        run(host, tmp_path)
    assert 'mig_restore' in json.loads((tmp_path / 'nvidia_driver.json').read_text())
    # the driver did change: the failure says so, for the role's rollback
    assert caught.value.result['changed'] is True and caught.value.result['previous_version'] == '550.127.08'
    assert caught.value.result['mig']['restore_pending'] is True


def test_mig_layout_recorded_across_reboot_and_recreated_by_the_next_run(tmp_path):
    host = FakeHost(FakePackages(), mig=_mig_gpu(), gpus=_mig_gpus())
    result, dummy = run(host, tmp_path, reload=False)
    assert result['reboot_required'] is True and result['mig']['restore_pending'] is True
    assert 'mig_restore' in json.loads((tmp_path / 'nvidia_driver.json').read_text())
    # the reboot: the new module is loaded, the instances are gone
    host.loaded = '570.133.20'
    host.mig['GPU-A']['instances'] = []
    result, dummy = run(host, tmp_path, reload=False)
    assert result['mig']['restored'] is True and result['changed'] is True
    assert len(host.mig['GPU-A']['instances']) == 3
    assert 'mig_restore' not in json.loads((tmp_path / 'nvidia_driver.json').read_text())


def test_mig_layout_unreadable_refuses(tmp_path):
    pm = FakePackages()
    host = FakeHost(pm, mig_unknown='nvidia-smi mig -lgi failed (rc=2): Insufficient Permissions')
    with pytest.raises(DriverError, match=r'Cannot read the MIG mode and instances of the GPUs: nvidia-smi mig -lgi failed.*Nothing was changed'):
        run(host, tmp_path)
    assert pm.db == OLD


def test_mig_check_mode_reports_the_layout(tmp_path):
    host = FakeHost(FakePackages(), mig=_mig_gpu(), gpus=_mig_gpus())
    result, dummy = run(host, tmp_path, check_mode=True)
    assert result['mig']['recorded'] == {'0': '3g.40gb@0 [3g.40gb], 1g.10gb@4 [1g.10gb], 1g.10gb@5 [no compute instance]'}
