# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Packages of apt (dpkg) and dnf (rpm) hosts: query, install exact versions, hold / unhold.

The package manager is detected once, by `backend(runner)`; every command runs through the runner
(_runner.TOOLS declares apt-get, apt-cache, apt-mark, dpkg-query, dnf and rpm).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import CommandError


class PackageQueryError(CommandError):
    """A package database could not be read."""

    error_kind = 'unreadable'


class PackageError(CommandError):
    """A package operation failed; the message says what to do."""

    error_kind = 'package'


DPKG_STATUS = '/var/lib/dpkg/status'


def _query_error(msg, **details):
    return PackageQueryError('Cannot read the package database: %s' % msg, **details)


def _parse_rpm(out):
    return dict((name, version[2:] if version.startswith('0:') else version) for name, version in manifest.parse_rpm(out).items())


def _filter(packages, patterns):
    return dict((name, version) for name, version in sorted(packages.items())
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))


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


class _Backend(object):
    """What both package managers do alike: run their tools through the runner, read the installed packages."""

    name = None
    query_tool = None   # the tool that lists the installed packages (its `list` argument)

    def __init__(self, runner):
        self.runner = runner

    def _run(self, tool, order, check=True, **values):
        return self.runner.run(tool, order, check=check, error=PackageError, **values)

    def parse_installed(self, out):
        """{name: version} of the output of `query_tool`."""
        raise NotImplementedError

    def installed(self, patterns):
        """{name: version} of installed packages whose names match any of the shell patterns."""
        return _filter(self.runner.run(self.query_tool, 'list', error=_query_error, parse=lambda result: self.parse_installed(result.out)),
                       patterns)


class AptBackend(_Backend):
    """apt-get / apt-cache / apt-mark, dpkg-query for what is installed."""

    name = 'apt'
    query_tool = 'dpkg-query'

    def parse_installed(self, out):
        return manifest.parse_dpkg(out)

    def update_cache(self):
        self._run('apt-get', 'update')

    def available_versions(self, name):
        """Versions of a package the configured repositories offer, newest first (apt's order)."""
        return _apt_madison_versions(self._run('apt-cache', 'madison name', check=False, name=name).out, name)

    def simulate_install(self, specs, status_file=None):
        """What installing these (name, version) pairs would do, without doing it.

        Holds are lifted before a real install, so the simulation reads a copy of the dpkg status
        without them (apt's resolver refuses to touch held packages even with --allow-change-held-packages).
        """
        tmpdir = tempfile.mkdtemp(prefix='onprem_ai-apt-')
        try:
            try:
                with open(status_file or DPKG_STATUS) as source:
                    status = source.read()
            except (IOError, OSError):
                status = None
            unheld = None
            if status is not None and 'Status: hold ' in status:
                unheld = os.path.join(tmpdir, 'status')
                with open(unheld, 'w') as handle:
                    handle.write(status.replace('Status: hold ', 'Status: install '))
            out = self._run('apt-get', 'status_file simulate_install options simulate specs', status_file=unheld, specs=specs).out
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return _parse_apt_simulation(out)

    def install(self, specs):
        return _parse_apt_simulation(self._run('apt-get', 'install options specs', specs=specs).out)

    def remove(self, names, purge=False):
        if names:
            self._run('apt-get', '%s names' % ('purge' if purge else 'remove'), names=list(names))

    def held(self):
        out = self._run('apt-mark', 'showhold').out
        return sorted(set(line.strip() for line in out.splitlines() if line.strip()))

    def hold(self, names):
        if names:
            self._run('apt-mark', 'hold names', names=sorted(names))

    def unhold(self, names):
        if names:
            self._run('apt-mark', 'unhold names', names=sorted(names))


def _parse_dnf_list(out, name):
    versions = []
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].rsplit('.', 1)[0] == name and words[1] not in versions:
            versions.append(words[1])
    return versions


class DnfBackend(_Backend):
    """dnf with module streams and the versionlock plugin (RHEL family), rpm for what is installed."""

    name = 'dnf'
    query_tool = 'rpm'

    def parse_installed(self, out):
        return _parse_rpm(out)

    def update_cache(self):
        self._run('dnf', 'makecache')

    def available_versions(self, name):
        versions = _parse_dnf_list(self._run('dnf', 'available name', check=False, name=name).out, name)
        versions.reverse()  # dnf lists oldest first
        return versions

    def enable_module_stream(self, module_name, stream):
        """`dnf module reset` then `enable` NAME:STREAM (e.g. nvidia-driver:570-dkms)."""
        self._run('dnf', 'module_reset name', name=module_name)
        self._run('dnf', 'module_enable stream', stream=(module_name, stream))

    def simulate_install(self, specs):
        return [{'action': 'install', 'name': name, 'from': None, 'to': version} for name, version in specs]

    def install(self, specs):
        self._run('dnf', 'install specs', specs=specs)
        return self.simulate_install(specs)

    def remove(self, names, purge=False):
        if names:
            self._run('dnf', 'remove names', names=list(names))

    def held(self):
        out = self._run('dnf', 'versionlock_list', check=False).out
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
            self._run('dnf', 'versionlock_add names', names=sorted(names))

    def unhold(self, names):
        if names:
            self._run('dnf', 'versionlock_delete names', check=False, names=sorted(names))


def backend(runner, required=True):
    """The package backend of this host: apt where dpkg-query is, dnf where rpm is (decided here, once per run).

    None when neither is there and not required; else PackageError (error_kind unsupported).
    """
    if runner.which('dpkg-query'):
        return AptBackend(runner)
    if runner.which('rpm'):
        return DnfBackend(runner)
    if not required:
        return None
    raise PackageError('Neither dpkg (apt) nor rpm (dnf) found on this host: only Debian/Ubuntu and the RHEL family are supported.',
                       error_kind='unsupported')
