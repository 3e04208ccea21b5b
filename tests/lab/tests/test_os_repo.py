# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab OS repository (tests/lab/os_repo): suites, origins and versions as apt reads them; cached rebuilds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILDER = os.path.join(HERE, '..', 'os_repo', 'build_os_repo.py')

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ('dpkg-deb', 'apt-ftparchive', 'gpg')),
                                reason='needs dpkg-deb, apt-ftparchive and gpg (tools/ensure-host.sh)')


@pytest.fixture(scope='module')
def repo(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('os-repo'))
    first = subprocess.run([sys.executable, BUILDER, out], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, BUILDER, out], capture_output=True, text=True, check=True)
    return out, first.stdout, again.stdout


def _fields(text):
    return dict(line.split(': ', 1) for line in text.splitlines() if ': ' in line and not line.startswith(' '))


def _packages(out, suite):
    arch = subprocess.run(['dpkg', '--print-architecture'], capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(out, 'dists', suite, 'main', 'binary-%s' % arch, 'Packages')) as handle:
        stanzas = [_fields(s) for s in handle.read().split('\n\n') if s.strip()]
    return dict((s['Package'], s['Version']) for s in stanzas)


def test_second_build_is_cached(repo):
    out, first, again = repo
    assert first.startswith('built: ') and again.startswith('cached: ')


@pytest.mark.parametrize('suite, origin', [('bookworm', 'Lab'), ('bookworm-updates', 'Lab'), ('bookworm-security', 'Lab-Security')])
def test_release_files_name_the_suite(repo, suite, origin):
    out = repo[0]
    with open(os.path.join(out, 'dists', suite, 'Release')) as handle:
        release = _fields(handle.read())
    assert release['Suite'] == suite and release['Codename'] == suite and release['Origin'] == origin
    assert 'SIMULATED' in release['Description']
    for name in ('InRelease', 'Release.gpg'):
        assert os.path.getsize(os.path.join(out, 'dists', suite, name)) > 0
    assert os.path.getsize(os.path.join(out, 'lab-os-sim.gpg')) > 0


def test_versions_per_suite(repo):
    out = repo[0]
    assert _packages(out, 'bookworm-security') == {
        'lab-libssl-sim': '3.0.15-1', 'lab-openssl-sim': '3.0.15-1', 'linux-image-6.1.0-91-lab': '6.1.124-1',
        'linux-headers-6.1.0-91-lab': '6.1.124-1', 'linux-image-lab': '6.1.124-1', 'linux-headers-lab': '6.1.124-1'}
    assert _packages(out, 'bookworm-updates') == {'lab-tzdata-sim': '2025b-1', 'lab-tools-sim': '1.1-1'}
    base = _packages(out, 'bookworm')
    assert base['linux-image-lab'] == '6.1.119-1' and base['lab-openssl-sim'] == '3.0.11-1' and 'dkms' in base


def test_kernel_package_runs_the_hooks_and_installs_placeholders(repo):
    out = repo[0]
    deb = [n for n in os.listdir(os.path.join(out, 'pool', 'bookworm-security')) if n.startswith('linux-image-6.1.0-91-lab_')][0]
    path = os.path.join(out, 'pool', 'bookworm-security', deb)
    files = subprocess.run(['dpkg-deb', '-c', path], capture_output=True, text=True, check=True).stdout
    assert './boot/vmlinuz-6.1.0-91-lab' in files and './lib/modules/6.1.0-91-lab/modules.order' in files
    postinst = subprocess.run(['dpkg-deb', '-I', path, 'postinst'], capture_output=True, text=True, check=True).stdout
    assert 'run-parts --report --exit-on-error --arg=6.1.0-91-lab --arg=/boot/vmlinuz-6.1.0-91-lab /etc/kernel/postinst.d' in postinst
    control = subprocess.run(['dpkg-deb', '-f', path, 'Description'], capture_output=True, text=True, check=True).stdout
    assert 'SIMULATED for the onprem_ai lab' in control
