# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Operating system and security updates of apt (Debian, Ubuntu) and dnf (RHEL family) hosts.

One plan, the same in check mode and for real: the pending updates with their source (apt: the
origin/suite of `apt-get -s dist-upgrade`; dnf: `dnf check-update` and the advisories of
`dnf updateinfo list --security`), each with a security flag; then what this run installs after the
mode (`full` or `security`), the held packages (apt-mark hold / dnf versionlock: the NVIDIA stack),
the deny list and the keep-back list. A new kernel among them: are the NVIDIA kernel modules built
for it (DKMS status, or the module file under /lib/modules/<kernel>/)? A reboot is allowed only then.
What needs a reboot or a service restart: /var/run/reboot-required, `needs-restarting -r/-s`,
`needrestart -b`.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import platform
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

REBOOT_REQUIRED_FILE = '/var/run/reboot-required'
MODULES_ROOT = '/lib/modules'
SYSFS_NVIDIA = '/sys/module/nvidia'
NVIDIA_MODULE_FILES = ('nvidia.ko', 'nvidia.ko.xz', 'nvidia.ko.zst', 'nvidia.ko.gz')
COMPONENT = 'os_update'


def running_kernel():
    """The running kernel release (uname -r)."""
    return platform.release()


class OsUpdateError(OnpremError):
    """An OS update that cannot be planned or applied; the message says why and what to do."""

    error_kind = 'refused'


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns or [])


# -- apt ----------------------------------------------------------------------------------------------------
_APT_INST = re.compile(r'^Inst (?P<name>\S+) (?:\[(?P<from>[^\]]*)\] )?\((?P<to>\S+)(?: (?P<origins>.*?))? \[(?P<arch>[^\]]+)\]\)')
_APT_REMV = re.compile(r'^Remv (?P<name>\S+)(?: \[(?P<from>[^\]]*)\])?')


def _suite(origin):
    """'Debian-Security:12/stable-security' -> 'stable-security'; 'Ubuntu:24.04/noble-security' -> 'noble-security'."""
    origin = origin.strip()
    if '/' in origin:
        return origin.rsplit('/', 1)[1]
    return origin.split(':', 1)[-1] if ':' in origin else origin


def parse_apt_simulation(out, security_suites=('*-security',)):
    """Actions of `apt-get -s dist-upgrade` / `install`, in apt's order.

    [{name, action: install|upgrade|downgrade|remove, from, to, origins: [..], suites: [..], security, arch}]
    """
    actions = []
    for line in out.splitlines():
        match = _APT_INST.match(line)
        if match:
            origins = [o.strip() for o in (match.group('origins') or '').split(',') if o.strip()]
            suites = [_suite(o) for o in origins]
            current, target = match.group('from'), match.group('to')
            if current is None:
                action = 'install'
            else:
                action = 'downgrade' if pkg._rough_version_key(target) < pkg._rough_version_key(current) else 'upgrade'
            actions.append(dict(name=match.group('name'), action=action, **{'from': current, 'to': target}, origins=origins,
                                suites=suites, security=any(_matches(s, security_suites) for s in suites), arch=match.group('arch')))
            continue
        match = _APT_REMV.match(line)
        if match:
            actions.append(dict(name=match.group('name'), action='remove', **{'from': match.group('from'), 'to': None},
                                origins=[], suites=[], security=False, arch=None))
    return actions


def parse_needrestart(out):
    """`needrestart -b`: {'services': [...], 'kernel_status': int or None, 'kernel_current', 'kernel_expected'}."""
    result = dict(services=[], kernel_status=None, kernel_current=None, kernel_expected=None)
    for line in out.splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        value = value.strip()
        if key == 'NEEDRESTART-SVC' and value and value not in result['services']:
            result['services'].append(value)
        elif key == 'NEEDRESTART-KSTA' and value.isdigit():
            result['kernel_status'] = int(value)
        elif key == 'NEEDRESTART-KCUR':
            result['kernel_current'] = value
        elif key == 'NEEDRESTART-KEXP':
            result['kernel_expected'] = value
    return result


# -- dnf ----------------------------------------------------------------------------------------------------
_DNF_NOISE = ('Last metadata expiration check', 'Updating Subscription Management', 'Unable to read consumer identity',
              'This system is not registered', 'Loaded plugins', 'Security:', 'Updates Information Summary')


def parse_dnf_check_update(out):
    """`dnf check-update`: [{name, arch, to, repo}] (the 'Obsoleting Packages' section is not an update)."""
    updates = []
    for line in out.splitlines():
        if line.startswith('Obsoleting Packages'):
            break
        words = line.split()
        if len(words) != 3 or line.startswith(_DNF_NOISE) or '.' not in words[0]:
            continue
        name, arch = words[0].rsplit('.', 1)
        updates.append(dict(name=name, arch=arch, to=words[1], repo=words[2]))
    return updates


def split_nevra(nevra):
    """'kernel-core-5.14.0-162.12.1.el9_1.x86_64' -> ('kernel-core', '5.14.0-162.12.1.el9_1', 'x86_64')."""
    head, dot, arch = nevra.rpartition('.')
    if not dot:
        head, arch = nevra, None
    parts = head.rsplit('-', 2)
    if len(parts) != 3:
        return head, None, arch
    return parts[0], '%s-%s' % (parts[1], parts[2]), arch


def parse_dnf_updateinfo(out):
    """`dnf updateinfo list --security`: {name: [{id, severity, version}]}."""
    advisories = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) != 3 or line.startswith(_DNF_NOISE) or '/Sec' not in words[1]:
            continue
        name, version, dummy = split_nevra(words[2])
        entry = dict(id=words[0], severity=words[1].split('/', 1)[0].capitalize(), version=version)
        if entry not in advisories.setdefault(name, []):
            advisories[name].append(entry)
    return advisories


def parse_needs_restarting_services(out):
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith(_DNF_NOISE)
            and re.match(r'^[\w@.:-]+$', line.strip())]


# -- kernels ------------------------------------------------------------------------------------------------
_DEB_KERNEL = re.compile(r'^linux-image-(?:unsigned-)?(\d\S*)$')
_RPM_KERNELS = ('kernel', 'kernel-core', 'kernel-rt-core')


def kernel_release(update, manager):
    """The kernel release (uname -r) an update installs, None when it is no kernel image."""
    if manager == 'apt':
        match = _DEB_KERNEL.match(update['name'])
        return match.group(1) if match and update.get('action') != 'remove' else None
    if update['name'] in _RPM_KERNELS and update.get('to'):
        version = update['to'].split(':', 1)[-1]
        return '%s.%s' % (version, update['arch']) if update.get('arch') else version
    return None


class OsUpdate(object):
    """One run of the os_update module (module params; module.check_mode)."""

    def __init__(self, module, runner, backend, running=None):
        self.module = module
        self.runner = runner
        self.backend = backend
        self.params = module.params
        self.running = running or running_kernel()
        self.warnings = []

    # -- reading -------------------------------------------------------------------------------------------
    def pending(self):
        """Every pending update as the package manager resolves it (held packages are left out by it)."""
        if self.backend.name == 'apt':
            out = self.runner.run('apt-get', 'simulate dist_upgrade', error=pkg.PackageQueryError).out
            return parse_apt_simulation(out, self.params['security_suites'])
        return self._dnf_pending()

    def _dnf_pending(self):
        result = self.runner.run('dnf', 'check_update quiet', check=False)
        if result.rc not in (0, 100):
            raise pkg.PackageQueryError('dnf check-update failed (rc=%s): %s' % (result.rc, (result.err or result.out).strip()[-300:]),
                                        tool='dnf', rc=result.rc)
        updates = parse_dnf_check_update(result.out) if result.rc == 100 else []
        advisories = self.runner.run('dnf', 'updateinfo_security quiet', error=pkg.PackageQueryError,
                                     parse=lambda r: parse_dnf_updateinfo(r.out))
        installed = self.backend.installed(sorted(set(u['name'] for u in updates))) if updates else {}
        pending = []
        for update in updates:
            found = advisories.get(update['name'], [])
            pending.append(dict(name=update['name'], action='upgrade' if update['name'] in installed else 'install',
                                **{'from': installed.get(update['name']), 'to': update['to']}, origins=[update['repo']],
                                suites=[update['repo']], security=bool(found), arch=update['arch'],
                                advisories=[a['id'] for a in found], severity=_worst(a['severity'] for a in found)))
        return pending

    def nvidia_module_built(self, kernel):
        """Whether the NVIDIA kernel module is there for this kernel (DKMS status, or the module file)."""
        root = os.path.join(MODULES_ROOT, kernel)
        for dirpath, dummy, files in os.walk(root):
            if any(name in files for name in NVIDIA_MODULE_FILES):
                return True
        if self.runner.which('dkms'):
            out = self.runner.run('dkms', 'status kernel', kernel=kernel, error=pkg.PackageQueryError).out
            return any(line.startswith('nvidia') and line.rstrip().endswith(': installed') for line in out.splitlines())
        return False

    def nvidia_module_needed(self):
        """Whether this host runs an NVIDIA kernel module that a new kernel needs too."""
        if os.path.isdir(SYSFS_NVIDIA):
            return True
        return any(glob.glob(os.path.join(MODULES_ROOT, '*', '**', name), recursive=True) for name in NVIDIA_MODULE_FILES)

    def reboot_required(self, new_kernel):
        if self.backend.name == 'apt':
            return os.path.exists(REBOOT_REQUIRED_FILE) or bool(new_kernel and new_kernel != self.running)
        if not self.runner.which('needs-restarting'):
            self.warnings.append('needs-restarting (dnf-utils) is not installed: a reboot is assumed to be required')
            return True
        result = self.runner.run('needs-restarting', 'reboothint', check=False)
        if result.rc not in (0, 1):
            raise pkg.PackageQueryError('needs-restarting -r failed (rc=%s): %s' % (result.rc, (result.err or result.out).strip()[-300:]),
                                        tool='needs-restarting', rc=result.rc)
        return result.rc == 1 or bool(new_kernel and new_kernel != self.running)

    def services_to_restart(self):
        """Services that use replaced files; None when no tool can tell (needrestart / needs-restarting missing)."""
        if self.backend.name == 'apt':
            if not self.runner.which('needrestart'):
                self.warnings.append('needrestart is not installed: the services that need a restart are unknown')
                return None
            return self.runner.run('needrestart', 'batch', error=pkg.PackageQueryError, parse=lambda r: parse_needrestart(r.out))['services']
        if not self.runner.which('needs-restarting'):
            return None
        return self.runner.run('needs-restarting', 'services', error=pkg.PackageQueryError,
                               parse=lambda r: parse_needs_restarting_services(r.out))

    # -- deciding ------------------------------------------------------------------------------------------
    def select(self, pending, held):
        """(selected updates, skipped updates with their reason)."""
        selected, skipped = [], []
        for update in pending:
            name = update['name']
            if update['action'] == 'remove':
                continue  # judged on the resolved transaction
            if name in held:
                reason = 'held (apt-mark hold / dnf versionlock)'
            elif _matches(name, self.params['deny']):
                reason = 'deny list'
            elif _matches(name, self.params['keep_back']):
                reason = 'keep_back list'
            elif self.params['mode'] == 'security' and not update['security']:
                reason = 'not a security update (mode security)'
            else:
                selected.append(update)
                continue
            skipped.append(dict(name=name, **{'from': update['from'], 'to': update['to']}, reason=reason))
        return selected, skipped

    def resolve(self, selected, held):
        """The exact transaction of the selected updates (apt resolves it; dnf: the selection), checked against the lists."""
        if not selected:
            return []
        if self.backend.name != 'apt':
            return selected
        # upgrades are named with their version; new packages (a new kernel image) come as their dependencies,
        # keeping apt's automatic marks. A new package that nothing pulls in is named as well.
        specs = [(u['name'], u['to']) for u in selected if u['from'] is not None]
        wanted = set(u['name'] for u in selected)
        specs_names = set(n for n, v in specs)
        out = self.runner.run('apt-get', 'simulate simulate_install upgrade_options specs', specs=specs, error=pkg.PackageError).out
        actions = parse_apt_simulation(out, self.params['security_suites'])
        got = set(a['name'] for a in actions)
        missing = [(u['name'], u['to']) for u in selected if u['from'] is None and u['name'] not in got]
        if missing:
            specs = specs + missing
            specs_names.update(n for n, v in missing)
            out = self.runner.run('apt-get', 'simulate simulate_install upgrade_options specs', specs=specs, error=pkg.PackageError).out
            actions = parse_apt_simulation(out, self.params['security_suites'])
        for action in actions:
            name = action['name']
            if action['action'] == 'remove':
                raise OsUpdateError('The updates would remove %s: not done by os_update (resolve it by hand, or keep back '
                                    'the package that needs it)' % name, package=name)
            why = ('held' if name in held else 'on the deny list' if _matches(name, self.params['deny'])
                   else 'on the keep_back list' if _matches(name, self.params['keep_back']) else None)
            if why:
                raise OsUpdateError('The selected updates need %s %s, which is %s: add the packages that depend on it to '
                                    'keep_back, or lift the %s' % (name, action['to'], why, why.split()[-1]), package=name)
            action['dependency'] = name not in wanted
        self._resolved_specs = specs
        return actions

    # -- the run -------------------------------------------------------------------------------------------
    def run(self):
        params = self.params
        check = self.module.check_mode
        if params['update_cache'] and not check:
            self.backend.update_cache()
        held = set(self.backend.held())
        pending = self.pending()
        selected, skipped = self.select(pending, held)
        actions = self.resolve(selected, held)
        kernels = [k for k in (kernel_release(a, self.backend.name) for a in actions) if k]
        new_kernel = sorted(kernels, key=pkg._rough_version_key)[-1] if kernels else None
        needed = self.nvidia_module_needed() if new_kernel else False
        changed = bool(actions)
        applied = False
        built = None
        build_ran = False
        if changed and not check:
            self.apply(actions)
            applied = True
        if new_kernel and needed:
            if applied or os.path.isdir(os.path.join(MODULES_ROOT, new_kernel)):
                built = self.nvidia_module_built(new_kernel)
            if applied and not built and params['build_kernel_modules']:
                try:
                    self.runner.run('dkms', 'autoinstall kernel', kernel=new_kernel, error=OsUpdateError)
                except OsUpdateError as exc:
                    raise OsUpdateError('The updates are installed but building the NVIDIA module for the new kernel %s failed: %s. '
                                        'Do not reboot before it is built.' % (new_kernel, exc.msg.rstrip('.')), changed=True,
                                        kernel=new_kernel, **exc.details)
                build_ran = True
                built = self.nvidia_module_built(new_kernel)
        reboot = self.reboot_required(new_kernel)
        services = self.services_to_restart()
        reboot_allowed = not (new_kernel and needed and built is not True)
        plan = [self._plan_item(a, new_kernel) for a in actions]
        result = dict(changed=changed, mode=params['mode'], manager=self.backend.name, updates=plan, skipped=skipped,
                      held=sorted(held), pending=[_pending_item(u) for u in pending],
                      kernel=dict(installed=new_kernel, running=self.running, nvidia_module_needed=needed,
                                  nvidia_module_built=built, build_ran=build_ran),
                      reboot_required=bool(reboot), reboot_allowed=reboot_allowed,
                      services_to_restart=services)
        if new_kernel and needed and built is False:
            result['reboot_refused'] = ('The NVIDIA kernel module is not built for the new kernel %s: a reboot would boot '
                                        'without the GPU driver. Install its headers (%s) and run `dkms autoinstall -k %s`, '
                                        'or set build_kernel_modules.'
                                        % (new_kernel, ('linux-headers-%s' if self.backend.name == 'apt' else 'kernel-devel-%s') % new_kernel,
                                           new_kernel))
        if self.module._diff:
            result['diff'] = dict(before=dict((a['name'], a['from']) for a in actions),
                                  after=dict((a['name'], a['to']) for a in actions))
        for warning in self.warnings:
            self.module.warn(warning)
        return result

    def apply(self, actions):
        if self.backend.name == 'apt':
            try:
                self.runner.run('apt-get', 'install upgrade_options specs', specs=self._resolved_specs, error=pkg.PackageError)
            except pkg.PackageError as exc:
                raise OsUpdateError('Installing the updates failed: %s' % exc.msg, changed=True, **exc.details)
            installed = self.backend.installed([a['name'] for a in actions])
        else:
            excludes = sorted(set(self.params['deny']) | set(self.params['keep_back']))
            try:
                self.runner.run('dnf', 'upgrade excludes specs', excludes=excludes, specs=[(a['name'], a['to']) for a in actions],
                                error=pkg.PackageError)
            except pkg.PackageError as exc:
                raise OsUpdateError('Installing the updates failed: %s' % exc.msg, changed=True, **exc.details)
            installed = self.backend.installed([a['name'] for a in actions])
        # dnf keeps several kernels installed (installonly): the rpm list cannot say which one a name means
        checked = [a for a in actions if a['to'] and not (self.backend.name == 'dnf' and kernel_release(a, 'dnf'))]
        wrong = ['%s (%s, wanted %s)' % (a['name'], installed.get(a['name']), a['to']) for a in checked
                 if installed.get(a['name']) not in (a['to'], a['to'].split(':', 1)[-1])]
        if wrong:
            raise OsUpdateError('After the update these packages are not at the planned version: %s' % ', '.join(wrong), changed=True)

    def _plan_item(self, action, new_kernel):
        kernel = kernel_release(action, self.backend.name)
        security = bool(action.get('security'))
        suite = ', '.join(action.get('suites') or []) or None
        if kernel:
            risk, reason = 'high', 'new kernel %s' % kernel
        elif security:
            risk, reason = 'medium', 'security update'
        else:
            risk, reason = 'low', 'update'
        if suite:
            reason += ' from %s' % suite
        if action.get('advisories'):
            reason += ' (%s%s)' % (', '.join(action['advisories']), ', %s' % action['severity'] if action.get('severity') else '')
        if action.get('dependency'):
            reason += ', needed by the selected updates'
        return dict(component=COMPONENT, name=action['name'], action=action['action'], **{'from': action['from'], 'to': action['to']},
                    suite=suite, origins=action.get('origins') or [], security=security,
                    advisories=action.get('advisories') or [], severity=action.get('severity'),
                    reboot=bool(kernel), kernel=kernel, risk=risk, reason=reason)


_SEVERITY = ['Low', 'Moderate', 'Important', 'Critical']


def _worst(severities):
    known = [s for s in severities if s in _SEVERITY]
    return max(known, key=_SEVERITY.index) if known else None


def _pending_item(update):
    return dict(name=update['name'], **{'from': update['from'], 'to': update['to']}, suites=update.get('suites') or [],
                security=bool(update.get('security')), advisories=update.get('advisories') or [], severity=update.get('severity'))


def manage(module, runner):
    """The os_update module's result (raises OnpremError)."""
    params = module.params
    for key in ('deny', 'keep_back', 'security_suites'):
        params[key] = [str(v) for v in (params.get(key) or [])]
    backend = pkg.backend(runner)
    return OsUpdate(module, runner, backend).run()
