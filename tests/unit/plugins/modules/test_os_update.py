# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""os_update: the cases of test_os_update.yaml (helper.py) and the parsers on real output captures."""

from __future__ import annotations

import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _os_update as osu
from ansible_collections.onprem_ai.maintenance.plugins.modules import os_update

from helper import FIXTURES, load_cases, run_case


@pytest.mark.parametrize('case', load_cases(__file__))
def test_os_update(case, tmp_path, monkeypatch):
    run_case(os_update.main, case, tmp_path, monkeypatch)


def _fixture(name):
    with open(os.path.join(FIXTURES, 'os_update', name)) as handle:
        return handle.read()


def test_apt_simulation_debian_security_suite():
    actions = osu.parse_apt_simulation(_fixture('apt_dist_upgrade_bookworm.txt'))
    assert [(a['name'], a['action'], a['from'], a['to'], a['security']) for a in actions] == [
        ('libc6', 'upgrade', '2.36-9+deb12u7', '2.36-9+deb12u10', False),
        ('libssl3', 'upgrade', '3.0.11-1~deb12u2', '3.0.15-1~deb12u1', True),
        ('openssl', 'upgrade', '3.0.11-1~deb12u2', '3.0.15-1~deb12u1', True),
        ('linux-image-6.1.0-30-amd64', 'install', None, '6.1.124-1', False),
        ('linux-image-amd64', 'upgrade', '6.1.119-1', '6.1.124-1', False),
    ]
    assert actions[1]['suites'] == ['stable-security'] and actions[1]['origins'] == ['Debian-Security:12/stable-security']
    assert actions[0]['suites'] == ['stable'] and actions[0]['arch'] == 'amd64'


def test_apt_simulation_ubuntu_two_origins():
    actions = dict((a['name'], a) for a in osu.parse_apt_simulation(_fixture('apt_dist_upgrade_noble.txt')))
    assert actions['openssl']['suites'] == ['noble-updates', 'noble-security'] and actions['openssl']['security']
    assert actions['htop']['security'] is False
    assert osu.kernel_release(actions['linux-image-6.8.0-63-generic'], 'apt') == '6.8.0-63-generic'
    assert osu.kernel_release(actions['linux-image-generic'], 'apt') is None


def test_apt_simulation_own_security_patterns_and_removal():
    out = 'Inst lab-tool [1.0-1] (1.0-2 Lab:12/bookworm-security [all])\nRemv old-lib [0.9-1]\n'
    actions = osu.parse_apt_simulation(out, security_suites=['*-updates'])
    assert actions[0]['security'] is False and actions[0]['arch'] == 'all'
    assert actions[1] == dict(name='old-lib', action='remove', origins=[], suites=[], security=False, arch=None, **{'from': '0.9-1', 'to': None})


def test_needrestart_batch():
    result = osu.parse_needrestart(_fixture('needrestart_batch.txt'))
    assert result == dict(services=['systemd-journald.service', 'systemd-machined.service'], kernel_status=1,
                          kernel_current='3.19.3-tl1+', kernel_expected='3.19.3-tl1+')


def test_dnf_updateinfo_security():
    advisories = osu.parse_dnf_updateinfo(_fixture('dnf_updateinfo_security_rhel9.txt'))
    assert sorted(advisories) == ['bash', 'curl', 'dbus', 'kernel', 'kernel-core']
    assert advisories['dbus'] == [dict(id='RHSA-2023:0335', severity='Moderate', version='1:1.12.20-7.el9_1')]
    assert [a['id'] for a in advisories['kernel']] == ['RHSA-2023:0334', 'RHSA-2023:0951', 'RHSA-2023:1470']
    assert osu._worst(a['severity'] for a in advisories['curl']) == 'Moderate'


def test_dnf_check_update_stops_at_obsoletes():
    updates = osu.parse_dnf_check_update(_fixture('dnf_check_update_rhel9.txt'))
    assert [u['name'] for u in updates] == ['bash', 'curl', 'dbus', 'kernel', 'kernel-core', 'tzdata', 'nvidia-driver']
    assert updates[2] == dict(name='dbus', arch='x86_64', to='1:1.12.20-7.el9_1', repo='rhel-9-baseos-rhui-rpms')
    kernel = dict(updates[4], action='upgrade')
    assert osu.kernel_release(kernel, 'dnf') == '5.14.0-162.22.2.el9_1.x86_64'


@pytest.mark.parametrize('nevra, expected', [
    ('kernel-core-5.14.0-162.12.1.el9_1.x86_64', ('kernel-core', '5.14.0-162.12.1.el9_1', 'x86_64')),
    ('grub2-common-1:2.06-46.el9_1.3.noarch', ('grub2-common', '1:2.06-46.el9_1.3', 'noarch')),
    ('kernel-livepatch-6.1.12-17.42-1.0-4.amzn2023.x86_64', ('kernel-livepatch-6.1.12-17.42', '1.0-4.amzn2023', 'x86_64')),
])
def test_split_nevra(nevra, expected):
    assert osu.split_nevra(nevra) == expected


def test_needs_restarting_services():
    assert osu.parse_needs_restarting_services('sshd.service\nNetworkManager.service\n\n') == ['sshd.service', 'NetworkManager.service']
