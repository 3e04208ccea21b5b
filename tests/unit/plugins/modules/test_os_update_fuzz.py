# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""os_update with generated bad options: fail_json with a message, never a traceback, no write anywhere."""

from __future__ import annotations

import os

from hypothesis import given

from ansible_collections.onprem_ai.maintenance.plugins.modules import os_update

from fuzz import FUZZ_SETTINGS, mutated_args, run_module
from helper import FIXTURES

VALID = dict(mode='full', deny=['linux-image-*'], keep_back=['lab-tools-sim'], security_suites=['*-security'],
             build_kernel_modules=False, update_cache=True)

with open(os.path.join(FIXTURES, 'os_update', 'apt_dist_upgrade_bookworm.txt')) as _handle:
    DIST_UPGRADE = _handle.read()


def _commands(argv, **kwargs):
    """A Debian node with the fixture's updates pending; the NVIDIA driver held."""
    name = os.path.basename(argv[0])
    if name == 'apt-mark':
        return 0, 'nvidia-driver-550\n', ''
    if name == 'apt-get' and '-s' in argv:
        return 0, DIST_UPGRADE, ''
    if name == 'needrestart':
        return 0, 'NEEDRESTART-VER: 3.6\n', ''
    return 1, '', '%s: not run in this test' % name


@FUZZ_SETTINGS
@given(args=mutated_args(VALID, sorted(set(VALID) | {'bogus_option'}), infinity=True))
def test_fuzz_os_update_arguments(tmp_path, args):
    run_module(os_update.main, args, allowed_root=tmp_path, commands=_commands, check_mode=True)
