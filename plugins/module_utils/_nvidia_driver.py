# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logic of the nvidia_driver module: plan, preflight, install, hold, reload, record.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import os
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._manifest import installed_driver_version

STATE_NAME = 'nvidia_driver'
SYSFS_MODULES = '/sys/module'
FABRICMANAGER_SERVICE = 'nvidia-fabricmanager.service'
PERSISTENCED_SERVICE = 'nvidia-persistenced.service'


class DriverError(OnpremError):
    """Stop with this message. `result` is None when nothing was changed, else what was changed (changed=True),
    given back as details of the failure."""

    error_kind = 'refused'

    def __init__(self, message, result=None, error_kind=None):
        partial = dict((k, v) for k, v in (result or {}).items() if k not in ('warnings', 'changed', 'msg', 'diff'))
        super().__init__(message, error_kind=error_kind, changed=(result or {}).get('changed'), **partial)
        self.result = result


class ProcessesUnknown(OnpremError):
    """Whether GPU processes run cannot be told for sure (never the same as "none run")."""

    error_kind = 'unreadable'


class MigUnknown(OnpremError):
    """The MIG mode or instance layout cannot be read for sure."""

    error_kind = 'unreadable'


def _mig_key(instances):
    """What must be equal before and after: each GPU instance's profile and placement, and the profiles of its
    compute instances (instance ids are given anew when instances are created)."""
    return sorted((gi['profile_id'], gi['start'], gi['size'], tuple(sorted((ci['profile_id'], ci['size']) for ci in gi['compute'])))
                  for gi in instances)


_NO_SMI = (127, '', 'nvidia-smi is not installed')


class Host(object):
    """What the driver logic reads and does on the host (through the runner), in one place so that tests can script it."""

    def __init__(self, runner, packages, sysfs_root=None, cuda_root=None, pci_root=None):
        self.runner = runner
        self.packages = packages
        self.sysfs_root = sysfs_root or SYSFS_MODULES
        self.cuda_root = cuda_root or nvidia.CUDA_ROOT
        self.pci_root = pci_root or nvidia.PCI_ROOT

    def kernel_release(self):
        return os.uname().release

    def loaded_version(self):
        return nvidia.read_loaded_module_version(os.path.join(self.sysfs_root, 'nvidia', 'version'))

    def loaded_modules(self):
        return [m for m in nvidia.KERNEL_MODULES_UNLOAD_ORDER if os.path.isdir(os.path.join(self.sysfs_root, m))]

    def smi(self, order, **values):
        """(rc, out, err) of nvidia-smi with the named arguments of _runner.TOOLS; None when it is not installed."""
        if not self.runner.which('nvidia-smi'):
            return None
        return self.runner.run('nvidia-smi', order, check=False, **values)

    def set_mig_mode(self, index, mode=1):
        return self.smi('gpu mig_mode', gpu=index, mig_mode=mode) or _NO_SMI

    def mig_command(self, index, *args):
        """`nvidia-smi mig -i INDEX ARGS...` (create / destroy instances)."""
        return self.smi('mig gpu args', gpu=index, args=args) or _NO_SMI

    def mig_list(self, flag):
        """`nvidia-smi mig -lgi` or `-lci`."""
        return self.smi('mig ' + {'-lgi': 'lgi', '-lci': 'lci'}[flag]) or _NO_SMI

    def gpus(self):
        """GPU list from nvidia-smi, or None when nvidia-smi cannot tell (not installed, no driver, mismatch)."""
        result = self.smi('xml')
        if not result or result[0] != 0:
            return None
        try:
            return nvidia.parse_smi_xml(result[1])['gpus']
        except nvidia.SmiUnreadable:
            return None

    def pci_gpus(self):
        """NVIDIA display controllers on the PCI bus (works without a driver), or None when sysfs cannot be read."""
        return nvidia.pci_gpus(self.pci_root)

    def gpu_processes(self):
        """Compute processes on the GPUs ([{'pid', 'name', 'used_memory_mib', 'gpu_uuid'}]).

        Empty only when it is certain that none run (no nvidia module loaded, or nvidia-smi lists none).
        Raises ProcessesUnknown when nvidia-smi cannot tell or its answer cannot be read for sure.
        """
        loaded = self.loaded_version()
        result = self.smi('compute_apps')
        if result is None:
            if loaded is None:
                return []
            raise ProcessesUnknown('nvidia-smi is not installed while the nvidia module %s is loaded' % loaded)
        rc, out, err = result
        if rc != 0:
            state = nvidia.classify_smi_failure(rc, out, err)
            if state in (nvidia.SMI_NO_DRIVER, nvidia.SMI_NO_DEVICES) and loaded is None:
                return []
            if state == nvidia.SMI_NO_DEVICES:
                return []
            raise ProcessesUnknown('nvidia-smi --query-compute-apps failed (%s, rc=%s): %s' % (state, rc, ((err or out).strip() or '-')[:300]))
        try:
            return nvidia.parse_compute_apps(out)
        except nvidia.SmiUnreadable as exc:
            raise ProcessesUnknown('the process list printed by nvidia-smi cannot be read for sure (%s)' % exc) from exc

    def mig_snapshot(self):
        """{uuid: {'index', 'name', 'current', 'pending', 'instances'}} of the GPUs whose MIG mode is enabled now or pending.

        {} when no GPU has MIG enabled, or when no nvidia module is loaded (no instance can exist then).
        Raises MigUnknown when it cannot be read for sure.
        """
        result = self.smi('xml')
        if result is None:
            return {}
        rc, out, err = result
        if rc != 0:
            state = nvidia.classify_smi_failure(rc, out, err)
            if state in (nvidia.SMI_NO_DRIVER, nvidia.SMI_NO_DEVICES) and self.loaded_version() is None:
                return {}
            raise MigUnknown('nvidia-smi -q -x failed (%s): %s' % (state, ((err or out).strip() or '-')[:300]))
        try:
            gpus = nvidia.parse_smi_xml(out)['gpus']
        except nvidia.SmiUnreadable as exc:
            raise MigUnknown(str(exc)) from exc
        mig_gpus = [g for g in gpus if 'Enabled' in (g['mig']['current'], g['mig']['pending'])]
        if not mig_gpus:
            return {}
        if any(g['index'] is None or not g['uuid'] for g in mig_gpus):
            raise MigUnknown('nvidia-smi does not show the index and UUID of every MIG-enabled GPU')
        tables = []
        for flag in ('-lgi', '-lci'):
            rc, out, err = self.mig_list(flag)
            if rc != 0 and not nvidia.mig_none(out + err):
                raise MigUnknown('nvidia-smi mig %s failed (rc=%s): %s' % (flag, rc, ((err or out).strip() or '-')[:300]))
            tables.append('' if rc != 0 else out)
        try:
            layout = nvidia.mig_layout(nvidia.parse_mig_lgi(tables[0]), nvidia.parse_mig_lci(tables[1]))
        except nvidia.SmiUnreadable as exc:
            raise MigUnknown(str(exc)) from exc
        return dict((g['uuid'], {'index': g['index'], 'name': g['name'], 'current': g['mig']['current'],
                                 'pending': g['mig']['pending'], 'instances': layout.get(g['index'], [])}) for g in mig_gpus)

    def systemctl(self, action, service):
        """(rc, out, err) of `systemctl stop|start SERVICE`."""
        return self.runner.run('systemctl', '%s unit' % action, check=False, unit=service)

    def is_active(self, service):
        if not self.runner.which('systemctl'):
            return False
        return self.runner.run('systemctl', 'is_active quiet unit', check=False, unit=service).rc == 0

    def unload(self, modules):
        return self.runner.run('modprobe', 'remove modules', check=False, modules=modules)

    def load(self, module_name):
        return self.runner.run('modprobe', 'modules', check=False, modules=[module_name])

    def sleep(self, seconds):
        time.sleep(seconds)


def _stack_names(installed):
    return sorted(name for name in installed if not name.startswith(('nvidia-container-toolkit', 'libnvidia-container')))


def _version_matching(versions, upstream):
    for version in versions:
        if nvidia.upstream_version(version) == upstream:
            return version
    return None


class Plan(object):
    """What the module is going to do; also what check mode returns."""

    def __init__(self):
        self.target = None
        self.branch = None
        self.layout = None
        self.specs = []          # [(name, package version)]
        self.actions = []        # apt's simulated actions
        self.preflight = []      # [{'check', 'ok', 'detail'}]
        self.stream = None

    def as_dict(self):
        return {'target_version': self.target, 'branch': self.branch, 'layout': self.layout,
                'packages': dict(self.specs), 'actions': self.actions, 'preflight': self.preflight,
                'module_stream': ':'.join(self.stream) if self.stream else None}


class DriverManager(object):
    """One run of the nvidia_driver module."""

    def __init__(self, module, host, params, facts):
        self.module = module
        self.host = host
        self.pm = host.packages
        self.params = params
        self.facts = facts   # {'distribution', 'distribution_version'}
        self.warnings = []

    # ---- reading -------------------------------------------------------------------------
    def current(self):
        installed = self.pm.installed(nvidia.STACK_PATTERNS)
        return {
            'version': installed_driver_version(installed),
            'loaded_version': self.host.loaded_version(),
            'packages': dict((n, installed[n]) for n in _stack_names(installed)),
            'stack': sorted(installed),
            'held': [n for n in self.pm.held() if n in installed],
        }

    def _wanted_fabricmanager(self, current):
        choice = self.params['fabricmanager']
        if choice == 'auto':
            return any('fabric' in name for name in current['packages'])
        return choice == 'present'

    def _resolve(self, current):
        """Target version, layout and exact package versions."""
        plan = Plan()
        open_kernel = self.params['kernel_module'] == 'open'
        want_fm = self._wanted_fabricmanager(current)
        if self.params['state'] == 'previous':
            record = self._load_state().get('previous')
            if not record or not record.get('packages'):
                raise DriverError('No previous driver version is recorded on this host (%s): nothing to roll back to.'
                                  % state.state_path(self.params['state_dir'], STATE_NAME))
            plan.target = record['version']
            plan.branch = nvidia.branch_of(plan.target)
            plan.layout = record.get('layout')
            plan.specs = sorted(record['packages'].items())
            return plan
        requested = str(self.params['version']).strip()
        parts = nvidia.version_tuple(requested)
        if not parts or str(parts[0]) != requested.split('.', 1)[0]:
            raise DriverError('version must be a driver branch such as "570" or an exact version such as "570.133.20", got %r' % requested)
        plan.branch = str(parts[0])
        layouts = [self.params['package_layout']] if self.params['package_layout'] != 'auto' else self._auto_layouts(plan.branch)
        tried = []
        for layout in layouts:
            names = nvidia.driver_package_names(layout, plan.branch, open_kernel, want_fm)
            if layout == 'dnf':
                plan.stream = nvidia.dnf_module_stream(plan.branch, open_kernel)
            anchor_versions = [v for v in self.pm.available_versions(names[0]) if nvidia.branch_of(v) == plan.branch]
            tried.append('%s (%s)' % (names[0], ', '.join(nvidia.upstream_version(v) for v in anchor_versions) or 'not available'))
            if len(parts) > 1:
                anchor = _version_matching(anchor_versions, requested)
            else:
                anchor = max(anchor_versions, key=nvidia.version_tuple) if anchor_versions else None
            if not anchor:
                continue
            plan.layout = layout
            plan.target = nvidia.upstream_version(anchor)
            missing = []
            for name in names:
                version = _version_matching(self.pm.available_versions(name), plan.target)
                if version:
                    plan.specs.append((name, version))
                else:
                    missing.append(name)
            if missing:
                raise DriverError('Driver %s is only partly available from the configured repositories: no %s at version %s. '
                                  'Check the repository mirror before retrying.' % (plan.target, ', '.join(missing), plan.target))
            return plan
        raise DriverError('Driver %s is not available from the configured repositories; looked for: %s. '
                          'Run with update_cache=true, or check the repository configuration.' % (requested, '; '.join(tried)))

    def _auto_layouts(self, branch):
        return nvidia.layouts_to_try(self.facts.get('distribution'), self.facts.get('distribution_version'), branch, self.pm.name)

    # ---- checks ----------------------------------------------------------------------------
    def _preflight(self, plan, current):
        checks = plan.preflight
        failures = []

        def check(name, problem, detail=None):
            checks.append({'check': name, 'ok': problem is None, 'detail': problem or detail})
            if problem:
                failures.append(problem)

        check('packages available', None, '%d packages at %s (%s layout)' % (len(plan.specs), plan.target, plan.layout))
        if self.params['check_kernel_headers']:
            kernel = self.host.kernel_release()
            header = ('kernel-devel-%s' if self.pm.name == 'dnf' else 'linux-headers-%s') % kernel
            present = header in self.pm.installed([header]) or bool(self.pm.available_versions(header))
            check('kernel headers', None if present else
                  'kernel headers for the running kernel are neither installed nor available (%s): DKMS cannot build the '
                  'module. Install them, or reboot into a kernel that has them.' % header, header)
        minor = self.params['minor_version_compatibility']
        for toolkit in nvidia.cuda_toolkits(self.host.cuda_root):
            runs = nvidia.driver_runs_cuda(plan.target, toolkit['version'], minor)
            if runs is None:
                self.warnings.append('CUDA %s is not in the minimum-driver table; not checked.' % toolkit['version'])
                continue
            check('CUDA %s' % toolkit['version'], None if runs else
                  'driver %s cannot run the installed CUDA %s toolkit (needs >= %s); upgrade to a newer branch or remove the toolkit first'
                  % (plan.target, toolkit['version'], nvidia.cuda_min_driver(toolkit['version'], minor)),
                  'needs >= %s' % nvidia.cuda_min_driver(toolkit['version'], minor))
        self._check_gpu_support(plan, check)
        if failures:
            raise DriverError('Preflight failed, nothing was changed: ' + ' | '.join(failures))

    def _check_gpu_support(self, plan, check):
        """Every GPU's architecture must be known and supported by the target branch (allow_unknown_gpu relaxes the first)."""
        if self.params['state'] == 'previous':
            check('GPU support', None, 'not checked: going back to the driver that ran on these GPUs before')
            return
        gpus, source = self.host.gpus(), 'nvidia-smi'
        if gpus is None:
            gpus, source = self.host.pci_gpus(), 'PCI bus'
        if gpus is None:
            problem = 'the GPUs cannot be listed (nvidia-smi cannot, and /sys/bus/pci/devices cannot be read)'
            if self.params['allow_unknown_gpu']:
                self.warnings.append('GPU support not checked: %s; going ahead because allow_unknown_gpu is set' % problem)
                check('GPU support', None, 'not checked: %s (allow_unknown_gpu)' % problem)
                return
            check('GPU support', problem + '. Set allow_unknown_gpu=true to go ahead without this check.')
            return
        problems, unknown = [], []
        for gpu in gpus:
            state, reason = nvidia.branch_gpu_support(plan.branch, gpu.get('architecture'), self.params['kernel_module'] == 'open')
            index = gpu.get('index') if gpu.get('index') is not None else '?'
            label = 'GPU %s (%s, PCI device id %s)' % (index, gpu.get('name') or 'unnamed', gpu.get('pci_device_id') or 'unknown')
            if state == nvidia.GPU_UNSUPPORTED:
                problems.append('%s: %s' % (label, reason))
            elif state == nvidia.GPU_UNKNOWN:
                unknown.append('%s: %s' % (label, reason))
        if unknown and self.params['allow_unknown_gpu']:
            self.warnings.append('driver branch %s was not checked against %s; going ahead because allow_unknown_gpu is set'
                                 % (plan.branch, '; '.join(unknown)))
        elif unknown:
            problems.append('cannot tell whether driver branch %s supports %s. Set allow_unknown_gpu=true to go ahead anyway'
                            % (plan.branch, '; '.join(unknown)))
        names = ', '.join(sorted(set(g.get('name') or '?' for g in gpus))) or 'no NVIDIA GPU'
        check('GPU support', '; '.join(problems) or None, '%s (from %s)' % (names, source))

    def _load_state(self):
        try:
            return state.load(self.params['state_dir'], STATE_NAME)
        except state.StateError as exc:
            raise DriverError(str(exc)) from exc

    # ---- GPU users -----------------------------------------------------------------------------
    def _read_gpu_processes(self):
        """(processes, None) when known, (None, reason) when it cannot be told for sure."""
        try:
            return self.host.gpu_processes(), None
        except ProcessesUnknown as exc:
            return None, str(exc)

    def _stop_gpu_users(self, result):
        procs, unknown = self._read_gpu_processes()
        if not procs and not unknown:
            return []
        services = self.params['stop_services']
        if not services:
            if unknown:
                raise DriverError('Cannot tell whether GPU processes are running: %s. Nothing was changed. Fix nvidia-smi, or name '
                                  'the services that use the GPUs in stop_services (they are stopped before the change and '
                                  'started again after it).' % unknown)
            raise DriverError('GPU compute processes are running: %s. Stop them first, or name the services that run them in '
                              'stop_services so that they are stopped and started again around the upgrade.'
                              % nvidia.describe_processes(procs))
        stopped = []
        for service in services:
            if self.host.is_active(service):
                rc, out, err = self.host.systemctl('stop', service)
                if rc != 0:
                    self._start(stopped)
                    raise DriverError('could not stop %s: %s' % (service, (err or out).strip()))
                stopped.append(service)
        result['services']['stopped'] = stopped
        deadline = time.time() + self.params['stop_timeout']
        while True:
            procs, unknown = self._read_gpu_processes()
            if unknown:
                self.warnings.append('after stopping %s the GPU processes still cannot be read (%s); going ahead because '
                                     'stop_services names what runs on the GPUs' % (', '.join(services), unknown))
                return stopped
            if not procs:
                return stopped
            if time.time() >= deadline:
                self._start(stopped)
                raise DriverError('GPU compute processes still run after stopping %s: %s. Nothing was changed; the services were '
                                  'started again.' % (', '.join(services), nvidia.describe_processes(procs)))
            self.host.sleep(2)

    def _start(self, services):
        started = []
        for service in services:
            rc, out, err = self.host.systemctl('start', service)
            if rc == 0:
                started.append(service)
            else:
                self.warnings.append('could not start %s again: %s' % (service, (err or out).strip()))
        return started

    # ---- MIG -------------------------------------------------------------------------------------------
    def _record_mig(self, record):
        """The MIG layout to keep across the change ({} when no GPU has MIG enabled). Refuses when it cannot be read."""
        try:
            return self.host.mig_snapshot()
        except MigUnknown as exc:
            saved = record.get('mig_restore')
            if saved:
                self.warnings.append('the MIG layout cannot be read now (%s); using the one recorded before the last change' % exc)
                return saved
            if self.params['state'] == 'previous' or self.params['allow_unknown_gpu']:
                self.warnings.append('the MIG layout cannot be read (%s); a MIG layout, if any, is not re-created after the change' % exc)
                return {}
            raise DriverError('Cannot read the MIG mode and instances of the GPUs: %s. Nothing was changed: a driver change would '
                              'lose MIG instances that cannot be recorded. Fix nvidia-smi first, or set allow_unknown_gpu=true to '
                              'go ahead without keeping a MIG layout.' % exc) from exc

    def _mig_run(self, index, *args):
        rc, out, err = self.host.mig_command(index, *args)
        return rc, (out or '') + (err or '')

    def _restore_mig(self, wanted):
        """Re-create the recorded MIG mode and instances after a reload or reboot, and verify them.
        Returns (ok, lines): lines say per GPU what was done or what differs."""
        try:
            now = self.host.mig_snapshot()
            gpus = self.host.gpus() or []
        except MigUnknown as exc:
            return False, ['the MIG layout cannot be read after the change: %s' % exc]
        by_uuid = dict((g['uuid'], g) for g in gpus)
        lines, ok = [], True
        for uuid, want in sorted(wanted.items(), key=lambda item: item[1]['index']):
            gpu = by_uuid.get(uuid)
            if gpu is None:
                ok = False
                lines.append('GPU %s (%s) is not listed by nvidia-smi after the change' % (want['index'], uuid))
                continue
            index = gpu['index']
            have = now.get(uuid)
            if want['current'] == 'Enabled' and (have is None or have['current'] != 'Enabled'):
                rc, out, err = self.host.set_mig_mode(index)
                if rc != 0:
                    ok = False
                    lines.append('GPU %s: could not enable MIG mode again: %s' % (index, (err or out).strip()))
                    continue
            current = (self.host.mig_snapshot().get(uuid) or {}).get('instances', [])
            if _mig_key(current) != _mig_key(want['instances']):
                self._mig_run(index, '-dci')
                self._mig_run(index, '-dgi')
                for gi in want['instances']:
                    rc, text = self._mig_run(index, '-cgi', '%d:%d' % (gi['profile_id'], gi['start']))
                    if rc != 0:
                        lines.append('GPU %s: nvidia-smi mig -cgi %d:%d failed: %s' % (index, gi['profile_id'], gi['start'], text.strip()))
                rc, text, err = self.host.mig_list('-lgi')
                try:
                    rows = nvidia.parse_mig_lgi(text if rc == 0 else '')
                except nvidia.SmiUnreadable as exc:
                    rows = []
                    lines.append('GPU %s: %s' % (index, exc))
                ids = dict(((row['start'], row['profile_id']), row['gi_id']) for row in rows if row['gpu'] == index)
                for gi in want['instances']:
                    gi_id = ids.get((gi['start'], gi['profile_id']))
                    if gi_id is not None and gi['compute']:
                        rc, text = self._mig_run(index, '-gi', str(gi_id), '-cci', ','.join(str(c['profile_id']) for c in gi['compute']))
                        if rc != 0:
                            lines.append('GPU %s: nvidia-smi mig -gi %s -cci failed: %s' % (index, gi_id, text.strip()))
            after = (self.host.mig_snapshot().get(uuid) or {}).get('instances', [])
            if _mig_key(after) == _mig_key(want['instances']):
                lines.append('GPU %s: MIG layout kept: %s' % (index, nvidia.describe_mig_layout(after)))
            else:
                ok = False
                lines.append('GPU %s: MIG layout differs: recorded %s, now %s' % (
                    index, nvidia.describe_mig_layout(want['instances']), nvidia.describe_mig_layout(after)))
        return ok, lines

    def _save_mig_pending(self, record, layout):
        record = dict(record)
        if layout:
            record['mig_restore'] = layout
        else:
            record.pop('mig_restore', None)
        try:
            state.save(self.params['state_dir'], STATE_NAME, record)
        except state.StateError as exc:
            raise DriverError('cannot record the MIG layout before the change: %s. Nothing was changed.' % exc) from exc
        return record

    def _finish_mig(self, result, record, layout, target):
        """After the change: re-create the layout when the new driver is loaded, else leave it recorded for the next run."""
        if not layout:
            return record
        result['mig']['recorded'] = dict((str(v['index']), nvidia.describe_mig_layout(v['instances'])) for v in layout.values())
        if self.host.loaded_version() != target:
            result['mig']['restore_pending'] = True
            result['mig']['message'] = ('the MIG layout is recorded in %s and is re-created by the next run of this module once '
                                        'driver %s is loaded (after the reboot)' % (state.state_path(self.params['state_dir'], STATE_NAME), target))
            return record
        ok, lines = self._restore_mig(layout)
        result['mig']['message'] = '; '.join(lines)
        result['changed'] = True
        if not ok:
            result['mig']['restore_pending'] = True
            result['version']['loaded'] = self.host.loaded_version()
            raise DriverError('Driver %s is loaded, but the MIG layout could not be re-created: %s. The recorded layout is kept in %s '
                              'and re-created by the next run.' % (target, '; '.join(lines), state.state_path(self.params['state_dir'], STATE_NAME)),
                              result=dict((k, v) for k, v in result.items() if k != 'diff'))
        result['mig']['restored'] = True
        return self._save_mig_pending(record, {})

    # ---- kernel modules ----------------------------------------------------------------------
    def _reload(self, target):
        """Unload the old modules and load the new ones; returns (succeeded, message)."""
        loaded = self.host.loaded_modules()
        helpers = [s for s in (FABRICMANAGER_SERVICE, PERSISTENCED_SERVICE) if self.host.is_active(s)]
        for service in helpers:
            self.host.systemctl('stop', service)
        if loaded:
            rc, out, err = self.host.unload(loaded)
            if rc != 0:
                self._start(helpers)
                return False, 'could not unload %s: %s' % (' '.join(loaded), (err or out).strip())
        for module_name in ('nvidia', 'nvidia_uvm'):
            rc, out, err = self.host.load(module_name)
            if rc != 0:
                self._start(helpers)
                return False, 'could not load %s: %s' % (module_name, (err or out).strip())
        now = self.host.loaded_version()
        self._start(helpers)
        if now != target:
            return False, 'after reloading, the kernel reports nvidia %s instead of %s' % (now, target)
        return True, 'unloaded %s and loaded nvidia %s' % (' '.join(loaded) or 'nothing', now)

    # ---- main --------------------------------------------------------------------------------
    def run(self):
        if self.params['update_cache'] and not self.module.check_mode:
            self.pm.update_cache()
        before = self.current()
        plan = self._resolve(before)
        want = dict(plan.specs)
        packages_ok = all(before['packages'].get(name) == version for name, version in want.items())
        holds_wanted = sorted(set(want) | set(before['stack'])) if self.params['hold'] else []
        result = {'changed': False, 'version': {'before': before['version'], 'after': before['version'],
                                                'loaded': before['loaded_version']},
                  'previous_version': None, 'reboot_required': False, 'reload': {'attempted': False, 'succeeded': None, 'message': None},
                  'services': {'stopped': [], 'started': []}, 'held': before['held'], 'plan': plan.as_dict(),
                  'mig': {'recorded': {}, 'restored': False, 'restore_pending': False, 'message': None}}
        record = self._load_state()
        result['previous_version'] = (record.get('previous') or {}).get('version')

        if packages_ok:
            missing_holds = [n for n in holds_wanted if n not in before['held']]
            if missing_holds:
                result['changed'] = True
                if not self.module.check_mode:
                    self.pm.hold(missing_holds)
                result['held'] = sorted(set(before['held']) | set(missing_holds))
            result['reboot_required'] = bool(before['loaded_version'] and before['loaded_version'] != plan.target)
            if record.get('mig_restore') and not self.module.check_mode:
                # the change happened in an earlier run (reboot path): re-create the recorded MIG layout now
                self._finish_mig(result, record, record['mig_restore'], plan.target)
            elif record.get('mig_restore'):
                result['mig']['restore_pending'] = True
                result['mig']['message'] = 'check mode: the recorded MIG layout would be re-created'
            return self._finish(result, before, plan)

        self._preflight(plan, before)
        plan.actions = self.pm.simulate_install(plan.specs)
        result['plan'] = plan.as_dict()
        result['changed'] = True
        result['version']['after'] = plan.target
        if self.module.check_mode:
            result['reboot_required'] = bool(before['loaded_version'])
            result['reload']['message'] = 'check mode: the modules would be reloaded if nothing holds them, else a reboot is required'
            try:
                layout = self.host.mig_snapshot()
                result['mig']['recorded'] = dict((str(v['index']), nvidia.describe_mig_layout(v['instances'])) for v in layout.values())
            except MigUnknown as exc:
                self.warnings.append('check mode: the MIG layout cannot be read (%s); a real run refuses unless allow_unknown_gpu' % exc)
            return self._finish(result, before, plan)

        mig_layout = self._record_mig(record)
        stopped = self._stop_gpu_users(result)
        if mig_layout:
            try:
                record = self._save_mig_pending(record, mig_layout)
            except DriverError:
                self._start(stopped)
                raise
        try:
            if plan.stream:
                self.pm.enable_module_stream(*plan.stream)
            self.pm.unhold(before['held'])
            self.pm.install(plan.specs)
            after = self.current()
            if self.params['hold']:
                self.pm.hold(after['stack'])
        except pkg.PackageError as exc:
            self._start(stopped)
            raise DriverError('Package change failed: %s. The previous packages may be partly replaced; run again, or roll back '
                              'with state=previous.' % exc, error_kind=exc.error_kind) from exc
        if after['version'] != plan.target:
            self._start(stopped)
            raise DriverError('After installing, the installed driver is %s, not %s.' % (after['version'], plan.target))
        previous = {'version': before['version'], 'packages': before['packages'],
                    'layout': (record.get('current') or {}).get('layout')} if before['version'] else None
        current = {'version': plan.target, 'packages': want, 'layout': plan.layout}
        record = state.record_change(record, current, previous)
        if mig_layout:
            record['mig_restore'] = mig_layout
        try:
            state.save(self.params['state_dir'], STATE_NAME, record)
        except state.StateError as exc:
            self.warnings.append('the driver was changed but the record of the previous version could not be written: %s' % exc)
        result['previous_version'] = before['version']
        result['held'] = self.pm.held()

        loaded = self.host.loaded_version()
        if loaded != plan.target and self.params['reload']:
            # also a first install: nothing loaded yet, load the new module
            result['reload']['attempted'] = True
            ok, message = self._reload(plan.target)
            result['reload'].update(succeeded=ok, message=message)
            result['reboot_required'] = not ok
        elif loaded != plan.target:
            result['reboot_required'] = True
            result['reload']['message'] = 'reload disabled: a reboot loads the new driver'
        if result['reboot_required']:
            result['reload']['message'] = (result['reload']['message'] or '') + '; a reboot is required to load %s' % plan.target
            if stopped:
                self.warnings.append('left %s stopped: they cannot use the GPUs until the node reboots' % ', '.join(stopped))
            self._finish_mig(result, record, mig_layout, plan.target)
        else:
            try:
                self._finish_mig(result, record, mig_layout, plan.target)
            except DriverError:
                if stopped:
                    self.warnings.append('left %s stopped: the MIG layout they need is not there' % ', '.join(stopped))
                raise
            result['services']['started'] = self._start(stopped)
        result['version']['loaded'] = self.host.loaded_version()
        return self._finish(result, before, plan)

    def _finish(self, result, before, plan):
        after_version = result['version']['after']
        result['diff'] = {
            'before': 'driver: %s\nloaded: %s\npackages:\n%s\nheld: %s\n' % (
                before['version'], before['loaded_version'],
                ''.join('  %s=%s\n' % item for item in sorted(before['packages'].items())).rstrip('\n') or '  (none)',
                ', '.join(before['held']) or '(none)'),
            'after': 'driver: %s\nloaded: %s\npackages:\n%s\nheld: %s\n' % (
                after_version, result['version']['loaded'] if not self.module.check_mode else before['loaded_version'],
                ''.join('  %s=%s\n' % item for item in plan.specs).rstrip('\n'),
                ', '.join(result['held']) or '(none)'),
        }
        result['warnings'] = self.warnings
        return result
