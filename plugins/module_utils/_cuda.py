# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""CUDA toolkits side by side: plan, driver check, install / remove, /usr/local/cuda (the logic of cuda_toolkit).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import os
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._manifest import installed_driver_version
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

# Packages read from the package database: the driver (for its version) and every CUDA release package.
PACKAGE_PATTERNS = nvidia.NVIDIA_PACKAGE_PATTERNS + ['cuda-*', 'libcu*', 'libnpp*', 'libnv*']
ALTERNATIVE = 'cuda'
CUDA_ROOT = nvidia.CUDA_ROOT
SYSFS_MODULE_VERSION = nvidia.SYSFS_MODULE_VERSION

_REQUEST_RE = re.compile(r'^\s*(\d+)\.(\d+)(?:\.(\d+))?\s*$')
_TOOLKIT_PACKAGE_RE = re.compile(r'^cuda-toolkit-(\d+)-(\d+)$')
_TOOLKIT_DIR_RE = re.compile(r'^cuda-(\d+)\.(\d+)$')
# Packages that belong to one CUDA release X.Y (NVIDIA's naming: cuda-nvcc-12-8, libcublas-dev-12-8,
# cuda-toolkit-12-8-config-common, the cuda-12-8 meta package). cuda-compat-X-Y (forward compatibility,
# a driver-side package) and cuda-drivers-B are not part of a toolkit.
_RELEASE_PACKAGE_TEMPLATE = r'^(?:cuda(?:-[a-z0-9+._-]+?)?|lib(?:cu|npp|nv)[a-z0-9+._-]*?)-%d-%d(?:-config-common)?$'
_NOT_TOOLKIT_RE = re.compile(r'^cuda-(?:compat|drivers)')


class CudaError(OnpremError):
    """A request that cannot be carried out; the message says why and what to do."""

    error_kind = 'refused'


def parse_version(text):
    """'12.8' -> ('12.8', None); '12.8.1' -> ('12.8', '12.8.1'). Raises CudaError."""
    match = _REQUEST_RE.match(str(text))
    if not match:
        raise CudaError('invalid CUDA version %r: use MAJOR.MINOR (12.8) or MAJOR.MINOR.PATCH (12.8.1), quoted in YAML' % (text,))
    release = '%d.%d' % (int(match.group(1)), int(match.group(2)))
    exact = '%s.%d' % (release, int(match.group(3))) if match.group(3) is not None else None
    return release, exact


def parse_requests(versions):
    """{release: exact-or-None} of the versions option; one entry per release."""
    requests = {}
    for text in versions or []:
        release, exact = parse_version(text)
        if release in requests and requests[release] != exact:
            raise CudaError('CUDA %s is listed more than once with different versions (%s, %s); '
                            'only one release of each MAJOR.MINOR can be installed' % (release, requests[release] or release, exact or release))
        requests[release] = exact
    return requests


def release_key(release):
    return nvidia.version_tuple(release)


def toolkit_package(release):
    """'12.8' -> 'cuda-toolkit-12-8'."""
    return 'cuda-toolkit-%s' % release.replace('.', '-')


def toolkit_path(release, root=nvidia.CUDA_ROOT):
    return os.path.join(root, 'cuda-%s' % release)


def release_packages(packages, release):
    """Installed packages that belong to CUDA release X.Y (what removing the toolkit removes)."""
    major, minor = release_key(release)[:2]
    pattern = re.compile(_RELEASE_PACKAGE_TEMPLATE % (major, minor))
    return sorted(name for name in packages if pattern.match(name) and not _NOT_TOOLKIT_RE.match(name))


def read_default(root=nvidia.CUDA_ROOT):
    """Release that root/cuda resolves to ('12.8'), the resolved path when it is not a cuda-X.Y, None when absent."""
    link = os.path.join(root, 'cuda')
    if not os.path.lexists(link):
        return None
    target = os.path.realpath(link)
    match = _TOOLKIT_DIR_RE.match(os.path.basename(target))
    if match and os.path.dirname(target) == os.path.realpath(root):
        return '%d.%d' % (int(match.group(1)), int(match.group(2)))
    return target


def _unmanaged_toolkit(path):
    """A cuda-X.Y directory that holds a toolkit (runfile install), not only leftovers."""
    return os.path.isfile(os.path.join(path, 'version.json')) or os.path.isfile(os.path.join(path, 'bin', 'nvcc'))


def installed_toolkits(packages, root=nvidia.CUDA_ROOT):
    """{release: toolkit} from the cuda-toolkit-X-Y packages, plus toolkits on disk that no package owns."""
    found = {}
    for name, version in packages.items():
        match = _TOOLKIT_PACKAGE_RE.match(name)
        if not match:
            continue
        release = '%d.%d' % (int(match.group(1)), int(match.group(2)))
        found[release] = {'release': release, 'version': nvidia.upstream_version(version), 'package': name,
                          'package_version': version, 'path': toolkit_path(release, root)}
    for disk in nvidia.cuda_toolkits(root):
        release = os.path.basename(disk['path']).split('-', 1)[1]
        if release not in found and _unmanaged_toolkit(disk['path']):
            found[release] = {'release': release, 'version': disk['version'], 'package': None, 'package_version': None, 'path': disk['path']}
    return found


def toolkit_list(toolkits, default):
    """The RV(toolkits) list: oldest first, with the default marked."""
    items = []
    for release in sorted(toolkits, key=release_key):
        item = dict(toolkits[release])
        item['default'] = release == default
        items.append(item)
    return items


def pick_version(available, release, exact):
    """Package version to install: the newest for 'X.Y', the one whose upstream is 'X.Y.Z' otherwise."""
    name = toolkit_package(release)
    if not available:
        raise CudaError('%s is not available from the configured package repositories (is the NVIDIA CUDA repository configured, '
                        'and the cache current? update_cache=true refreshes it)' % name)
    if exact is None:
        # newest upstream release; among equal ones the repository's (apt's, newest first) order decides
        return sorted(available, key=nvidia.version_tuple, reverse=True)[0]
    for version in available:
        if nvidia.upstream_version(version) == exact:
            return version
    raise CudaError('CUDA %s is not available: the repositories offer %s %s' % (exact, name, ', '.join(available)))


def driver_problem(driver, version, minor_compat):
    """Why the driver cannot run this toolkit version, None when it can (or when the release is unknown)."""
    release = '%d.%d' % release_key(version)[:2]
    ok = nvidia.driver_runs_cuda(driver, version, minor_compat)
    if ok is None or ok:
        return None
    minimum = nvidia.cuda_min_driver(version, minor_compat)
    if minor_compat:
        return ('CUDA toolkit %s needs NVIDIA driver >= %s even with minor version compatibility, but the installed driver is %s; '
                'upgrade the driver first (onprem_ai.maintenance.nvidia_driver)' % (release, minimum, driver))
    compat = nvidia.cuda_min_driver(version, True)
    hint = ' (CUDA %s.x then runs on >= %s, without PTX JIT of newer code)' % (release.split('.')[0], compat) if compat else ''
    return ('CUDA toolkit %s needs NVIDIA driver >= %s, but the installed driver is %s; upgrade the driver first '
            '(onprem_ai.maintenance.nvidia_driver) or set minor_version_compatibility=true%s' % (release, minimum, driver, hint))


def _diff_state(toolkits, default):
    return {'toolkits': [toolkits[r]['version'] for r in sorted(toolkits, key=release_key)], 'default': default}


def _set_default(runner, manager, release, root):
    """`update-alternatives --set cuda ROOT/cuda-X.Y` (dpkg) or `alternatives --set ...` (rpm)."""
    tool = 'update-alternatives' if manager == 'apt' else 'alternatives'
    if not runner.which(tool):
        raise CudaError('%s not found: cannot point %s at CUDA %s' % (tool, os.path.join(root, 'cuda'), release), error_kind='missing_tool')
    path = toolkit_path(release, root)
    rc, out, err = runner.run(tool, 'set name path', check=False, name=ALTERNATIVE, path=path)
    if rc != 0:
        raise CudaError('%s --set %s %s failed (rc=%s): %s. Is %s registered as an alternative of %s (installed from packages)?'
                        % (tool, ALTERNATIVE, path, rc, (err or out).strip(), path, os.path.join(root, 'cuda')), error_kind='command')
    now = read_default(root)
    if now != release:
        raise CudaError('%s --set %s %s succeeded but %s resolves to %s' % (tool, ALTERNATIVE, path, os.path.join(root, 'cuda'), now))


def _check_options(params, requests, default):
    if params['versions'] is None and (params['state'] == 'absent' or params['remove_others']):
        raise CudaError('versions is required unless only default is given')
    if params['state'] == 'absent' and params['remove_others']:
        raise CudaError('remove_others works with state=present only')
    if params['state'] == 'absent' and default in requests:
        raise CudaError('default %s is listed in versions for removal' % default)


class _Run(object):
    """One run of the module: read, plan, check, then change (unless check mode)."""

    def __init__(self, module, cuda_root, sysfs_version_path):
        self.module = module
        self.runner = Runner(module)
        self.params = module.params
        self.root = cuda_root
        self.sysfs = sysfs_version_path
        self.backend = None
        self.requests = {}
        self.default = None
        self.touched = False  # whether a change was started (for honest changed= on failure)

    def warn(self, msg):
        self.module.warn(msg)

    def plan(self):
        params = self.params
        self.requests = parse_requests(params['versions'])
        self.default = parse_version(params['default'])[0] if params['default'] else None
        _check_options(params, self.requests, self.default)
        self.backend = pkg.backend(self.runner)
        if params['update_cache'] and not self.module.check_mode:
            self.backend.update_cache()
        packages = self.backend.installed(PACKAGE_PATTERNS)
        current = installed_toolkits(packages, self.root)
        plan = {'packages': packages, 'current': current, 'driver': installed_driver_version(packages),
                'default_before': read_default(self.root), 'install': [], 'remove': []}
        if params['state'] == 'present':
            self._plan_install(plan)
            if params['remove_others']:
                keep = set(self.requests) | set([self.default])
                self._plan_remove(plan, [r for r in current if r not in keep])
        else:
            self._plan_remove(plan, [r for r in self.requests if r in current and self.requests[r] in (None, current[r]['version'])])
        self._check_default(plan)
        return plan

    def _plan_install(self, plan):
        for release in sorted(self.requests, key=release_key):
            exact = self.requests[release]
            have = plan['current'].get(release)
            if have and (exact is None or have['version'] == exact):
                continue
            if have and not have['package']:
                raise CudaError('CUDA %s in %s was not installed from packages (version %s); remove it before installing %s'
                                % (release, have['path'], have['version'], exact))
            name = toolkit_package(release)
            version = pick_version(self.backend.available_versions(name), release, exact)
            plan['install'].append({'release': release, 'package': name, 'package_version': version,
                                    'version': nvidia.upstream_version(version), 'from': have['version'] if have else None})

    def _plan_remove(self, plan, releases):
        for release in sorted(releases, key=release_key):
            have = plan['current'][release]
            if not have['package']:
                self.warn('CUDA %s in %s was not installed from packages; left in place' % (release, have['path']))
                continue
            plan['remove'].append({'release': release, 'version': have['version'], 'packages': release_packages(plan['packages'], release)})

    def _check_default(self, plan):
        if not self.default:
            return
        removed = set(item['release'] for item in plan['remove'])
        will_have = (set(plan['current']) - removed) | set(item['release'] for item in plan['install'])
        if self.default not in will_have:
            raise CudaError('default %s is neither installed nor listed in versions (installed: %s)'
                            % (self.default, ', '.join(sorted(plan['current'], key=release_key)) or 'none'))

    def check_driver(self, plan):
        """Refuse (CudaError) toolkits the installed driver cannot run; warn about what cannot be checked."""
        driver = plan['driver']
        minor_compat = self.params['minor_version_compatibility']
        problems = []
        for item in plan['install']:
            minimum = nvidia.cuda_min_driver(item['version'], minor_compat)
            if minimum is None:
                self.warn('CUDA %s is not in the table of minimum drivers of this collection; the driver was not checked for it' % item['release'])
            elif driver is None:
                if not self.params['allow_no_driver']:
                    problems.append('no NVIDIA driver is installed, so CUDA toolkit %s (needs driver >= %s) cannot be checked; install the driver '
                                    'first (onprem_ai.maintenance.nvidia_driver) or set allow_no_driver=true on hosts that only build CUDA code'
                                    % (item['release'], minimum))
            else:
                problem = driver_problem(driver, item['version'], minor_compat)
                if problem:
                    problems.append(problem)
        if problems:
            raise CudaError('; '.join(problems) + '. Nothing was changed.')
        if driver is None or self.params['state'] != 'present':
            return
        loaded = nvidia.read_loaded_module_version(self.sysfs)
        planned = dict((item['release'], item['version']) for item in plan['install'])
        for release in sorted(self.requests, key=release_key):
            version = planned.get(release)
            if version is None:
                version = plan['current'][release]['version']
                problem = driver_problem(driver, version, minor_compat)
                if problem:
                    self.warn('CUDA %s is installed, but: %s' % (release, problem))
                    continue
            if loaded and loaded != driver and nvidia.driver_runs_cuda(loaded, version, minor_compat) is False:
                self.warn('the loaded nvidia kernel module is %s (installed driver %s): CUDA %s runs once the driver is reloaded '
                          'or the host rebooted' % (loaded, driver, release))

    def apply(self, plan):
        """Make the changes; returns (package actions, whether the default was set)."""
        actions = []
        specs = [(item['package'], item['package_version']) for item in plan['install']]
        if specs:
            # apt resolves the whole transaction first: a dependency problem stops here, before any change.
            actions = self.backend.simulate_install(specs)
        for item in plan['remove']:
            actions.extend({'action': 'remove', 'name': name, 'from': plan['packages'].get(name), 'to': None} for name in item['packages'])
        if self.module.check_mode:
            return actions, bool(self.default and plan['default_before'] != self.default)
        if specs:
            self.touched = True
            self.backend.install(specs)
        names = [name for item in plan['remove'] for name in item['packages']]
        if names:
            self.touched = True
            self.backend.remove(names)
        if self.default and read_default(self.root) != self.default:
            self.touched = True
            _set_default(self.runner, self.backend.name, self.default, self.root)
            return actions, True
        return actions, False

    def result(self):
        plan = self.plan()
        self.check_driver(plan)
        actions, default_set = self.apply(plan)
        before = _diff_state(plan['current'], plan['default_before'])
        if self.module.check_mode:
            after_toolkits = dict((r, t) for r, t in plan['current'].items() if r not in set(i['release'] for i in plan['remove']))
            for item in plan['install']:
                after_toolkits[item['release']] = {'release': item['release'], 'version': item['version'], 'package': item['package'],
                                                   'package_version': item['package_version'], 'path': toolkit_path(item['release'], self.root)}
            after_default = self.default if self.default else plan['default_before']
            if after_default in set(i['release'] for i in plan['remove']):
                after_default = None
        else:
            after_toolkits = installed_toolkits(self.backend.installed(PACKAGE_PATTERNS), self.root)
            after_default = read_default(self.root)
        changed = bool(plan['install'] or plan['remove'] or default_set)
        result = {
            'changed': changed,
            'toolkits': toolkit_list(after_toolkits, after_default),
            'installed': [item['version'] for item in plan['install']],
            'removed': [item['version'] for item in plan['remove']],
            'default': after_default,
            'driver_version': plan['driver'],
            'package_actions': actions,
        }
        if self.module._diff:
            result['diff'] = {'before': before, 'after': _diff_state(after_toolkits, after_default)}
        return result


def manage(module, cuda_root=None, sysfs_version_path=None):
    """Everything cuda_toolkit does (the module's result). Raises an OnpremError whose `changed` says whether a change was started."""
    run = _Run(module, cuda_root or CUDA_ROOT, sysfs_version_path or SYSFS_MODULE_VERSION)
    try:
        return run.result()
    except OnpremError as exc:
        if exc.changed is None:
            exc.changed = run.touched
        if isinstance(exc, pkg.PackageError):
            exc.msg = 'Package operation failed: %s' % exc.msg
        raise
