# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Package queries for apt (dpkg) and dnf (rpm) hosts.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import fnmatch


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
