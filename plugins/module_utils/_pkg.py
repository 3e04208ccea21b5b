# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Package queries for apt (dpkg) and dnf (rpm) hosts.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile


class PackageQueryError(Exception):
    """A package database could not be read."""


def package_manager(module):
    """'apt' on dpkg hosts, 'dnf' on rpm hosts, None when neither is there."""
    if module.get_bin_path('dpkg-query'):
        return 'apt'
    if module.get_bin_path('rpm'):
        return 'dnf'
    return None


def installed_packages(module, patterns):
    """{name: version} of installed packages whose names match any of the shell patterns."""
    manager = package_manager(module)
    if manager == 'apt':
        cmd = [module.get_bin_path('dpkg-query', required=True), '-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n']
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            raise PackageQueryError('dpkg-query failed (rc=%s): %s' % (rc, (err or out).strip()))
        return _filter(_parse_dpkg(out), patterns)
    if manager == 'dnf':
        cmd = [module.get_bin_path('rpm', required=True), '-qa', '--qf', '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n']
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            raise PackageQueryError('rpm -qa failed (rc=%s): %s' % (rc, (err or out).strip()))
        return _filter(_parse_rpm(out), patterns)
    return {}


def _parse_dpkg(out):
    packages = {}
    for line in out.splitlines():
        parts = line.split('\t')
        if len(parts) != 3:
            continue
        name, version, status = parts
        # 'ii ' = installed; 'hi ' = installed and held; 'rc ' = removed, config left.
        if len(status) >= 2 and status[1] == 'i':
            packages[name.split(':', 1)[0]] = version
    return packages


def _parse_rpm(out):
    packages = {}
    for line in out.splitlines():
        parts = line.split('\t')
        if len(parts) != 2:
            continue
        name, version = parts
        if version.startswith('0:'):
            version = version[2:]
        packages[name] = version
    return packages


def _filter(packages, patterns):
    return dict((name, version) for name, version in sorted(packages.items())
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))


class PackageError(Exception):
    """A package operation failed; the message says what to do."""


def _apt_madison_versions(out, name):
    versions = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split('|')]
        if len(parts) >= 2 and parts[0] == name and parts[1] not in versions:
            versions.append(parts[1])
    return versions


def _rough_version_key(version):
    """Numbers of a package version in order, enough to tell an upgrade from a downgrade."""
    return [int(n) for n in re.findall(r'\d+', (version or '').split(':', 1)[-1])]


def _parse_apt_simulation(out):
    """Actions of `apt-get -s install`: [{'action': 'install'|'upgrade'|'downgrade'|'remove', 'name', 'from', 'to'}]."""
    actions = []
    for line in out.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] not in ('Inst', 'Remv'):
            continue
        name = words[1]
        current = None
        if len(words) > 2 and words[2].startswith('[') and words[2].endswith(']'):
            current = words[2][1:-1]
        if words[0] == 'Remv':
            actions.append({'action': 'remove', 'name': name, 'from': current, 'to': None})
            continue
        target = None
        for word in words[2:]:
            if word.startswith('('):
                target = word[1:]
                break
        if current is None:
            action = 'install'
        else:
            action = 'downgrade' if _rough_version_key(target) < _rough_version_key(current) else 'upgrade'
        actions.append({'action': action, 'name': name, 'from': current, 'to': target})
    return actions


class AptBackend(object):
    """apt-get / apt-cache / apt-mark through module.run_command (argument lists, no shell)."""

    name = 'apt'
    _ENV = {'DEBIAN_FRONTEND': 'noninteractive', 'LC_ALL': 'C'}

    def __init__(self, module):
        self.module = module

    def _run(self, args, check=True):
        rc, out, err = self.module.run_command(args, environ_update=self._ENV)
        if check and rc != 0:
            raise PackageError('%s failed (rc=%s): %s' % (' '.join(args[:3]), rc, (err or out).strip()[-2000:]))
        return rc, out, err

    def installed(self, patterns):
        return installed_packages(self.module, patterns)

    def update_cache(self):
        self._run([self.module.get_bin_path('apt-get', required=True), 'update', '-q'])

    def available_versions(self, name):
        """Versions of a package the configured repositories offer, newest first (apt's order)."""
        dummy, out, dummy2 = self._run([self.module.get_bin_path('apt-cache', required=True), 'madison', name], check=False)
        return _apt_madison_versions(out, name)

    def _install_args(self, specs, simulate=False):
        args = [self.module.get_bin_path('apt-get', required=True), 'install', '-y', '-q', '--allow-downgrades',
                '--allow-change-held-packages', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']
        if simulate:
            args.append('-s')
        return args + ['%s=%s' % (name, version) if version else name for name, version in specs]

    def simulate_install(self, specs, status_file='/var/lib/dpkg/status'):
        """What installing these (name, version) pairs would do, without doing it.

        Holds are lifted before a real install, so the simulation reads a copy of the dpkg status
        without them (apt's resolver refuses to touch held packages even with --allow-change-held-packages).
        """
        args = self._install_args(specs, simulate=True)
        tmpdir = tempfile.mkdtemp(prefix='onprem_ai-apt-')
        try:
            try:
                with open(status_file) as source:
                    status = source.read()
            except (IOError, OSError):
                status = None
            if status is not None and 'Status: hold ' in status:
                unheld = os.path.join(tmpdir, 'status')
                with open(unheld, 'w') as handle:
                    handle.write(status.replace('Status: hold ', 'Status: install '))
                args[1:1] = ['-o', 'Dir::State::status=%s' % unheld]
            dummy, out, dummy2 = self._run(args)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return _parse_apt_simulation(out)

    def install(self, specs):
        dummy, out, dummy2 = self._run(self._install_args(specs))
        return _parse_apt_simulation(out)

    def remove(self, names, purge=False):
        if names:
            self._run([self.module.get_bin_path('apt-get', required=True), 'purge' if purge else 'remove', '-y', '-q'] + list(names))

    def held(self):
        dummy, out, dummy2 = self._run([self.module.get_bin_path('apt-mark', required=True), 'showhold'])
        return sorted(set(line.strip() for line in out.splitlines() if line.strip()))

    def hold(self, names):
        if names:
            self._run([self.module.get_bin_path('apt-mark', required=True), 'hold'] + sorted(names))

    def unhold(self, names):
        if names:
            self._run([self.module.get_bin_path('apt-mark', required=True), 'unhold'] + sorted(names))


def _parse_dnf_list(out, name):
    versions = []
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].rsplit('.', 1)[0] == name and words[1] not in versions:
            versions.append(words[1])
    return versions


class DnfBackend(object):
    """dnf with module streams and the versionlock plugin (RHEL family)."""

    name = 'dnf'

    def __init__(self, module):
        self.module = module

    def _run(self, args, check=True):
        rc, out, err = self.module.run_command(args, environ_update={'LC_ALL': 'C'})
        if check and rc != 0:
            raise PackageError('%s failed (rc=%s): %s' % (' '.join(args[:3]), rc, (err or out).strip()[-2000:]))
        return rc, out, err

    def _dnf(self):
        return self.module.get_bin_path('dnf', required=True)

    def installed(self, patterns):
        return installed_packages(self.module, patterns)

    def update_cache(self):
        self._run([self._dnf(), 'makecache', '-q'])

    def available_versions(self, name):
        dummy, out, dummy2 = self._run([self._dnf(), 'list', '--showduplicates', '--available', '-q', name], check=False)
        versions = _parse_dnf_list(out, name)
        versions.reverse()  # dnf lists oldest first
        return versions

    def enable_module_stream(self, module_name, stream):
        """`dnf module reset` then `enable` NAME:STREAM (e.g. nvidia-driver:570-dkms)."""
        self._run([self._dnf(), 'module', 'reset', '-y', module_name])
        self._run([self._dnf(), 'module', 'enable', '-y', '%s:%s' % (module_name, stream)])

    def simulate_install(self, specs):
        return [{'action': 'install', 'name': name, 'from': None, 'to': version} for name, version in specs]

    def install(self, specs):
        args = [self._dnf(), 'install', '-y', '--allowerasing']
        args += ['%s-%s' % (name, version.split(':', 1)[-1]) if version else name for name, version in specs]
        self._run(args)
        return self.simulate_install(specs)

    def remove(self, names, purge=False):
        if names:
            self._run([self._dnf(), 'remove', '-y'] + list(names))

    def held(self):
        dummy, out, dummy2 = self._run([self._dnf(), 'versionlock', 'list', '-q'], check=False)
        names = set()
        for line in out.splitlines():
            line = line.strip()
            if not line or line.startswith(('Last metadata', '#')):
                continue
            # entries look like 'nvidia-driver-3:570.133.20-1.el9.*'
            head = line.split(':', 1)[0]
            names.add(head.rsplit('-', 1)[0] if ':' in line else line)
        return sorted(names)

    def hold(self, names):
        if names:
            self._run([self._dnf(), 'versionlock', 'add'] + sorted(names))

    def unhold(self, names):
        if names:
            self._run([self._dnf(), 'versionlock', 'delete'] + sorted(names), check=False)


def backend(module):
    """The package backend of this host, or fail_json with what is missing."""
    manager = package_manager(module)
    if manager == 'apt':
        return AptBackend(module)
    if manager == 'dnf':
        return DnfBackend(module)
    module.fail_json(msg='Neither dpkg (apt) nor rpm (dnf) found on this host: only Debian/Ubuntu and the RHEL family are supported.')
    return None
