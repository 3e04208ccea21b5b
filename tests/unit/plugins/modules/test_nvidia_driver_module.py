# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nvidia_driver through its main(): the cases of test_nvidia_driver_module.yaml (commands and results as data), and the
argument handling under generated bad input (fail_json with a message, never a traceback)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given

from ansible.module_utils.common.sys_info import get_distribution, get_distribution_version
from ansible_collections.onprem_ai.maintenance.plugins.modules import nvidia_driver

from fuzz import FUZZ_SETTINGS, mutated_args, run_module
from helper import load_cases, run_case

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')
VALID = dict(((name, option.get('default')) for name, option in nvidia_driver.ARGUMENT_SPEC.items() if name != 'state_dir'),
             version='570', stop_timeout=1)
KEYS = sorted(set(VALID) | {'state_dir', 'bogus_option'})


@pytest.mark.parametrize('case', load_cases(__file__))
def test_case(case, tmp_path, monkeypatch):
    run_case(nvidia_driver.main, case, tmp_path, monkeypatch)


# distro runs lsb_release once (stdout to /dev/null, which the harness's write guard would report) and caches
# the answer: ask once here, outside the guard.
get_distribution()
get_distribution_version()


def _commands(argv, **kwargs):
    """nvidia-smi answers from a real capture and a process list with a comma in a name; every other command fails."""
    name = os.path.basename(argv[0])
    if name == 'nvidia-smi' and '-x' in argv:
        with open(os.path.join(FIXTURES, 'telegraf-dual-rtx2080-590.44.01-v13.xml')) as handle:
            return 0, handle.read(), ''
    if name == 'nvidia-smi':
        return 0, 'GPU-1, 4242, 20480, python3 -m vllm --model a,b\n', ''
    if name == 'dpkg-query':
        return 0, 'nvidia-driver-550\t550.127.08-1\tii \nlibnvidia-compute-550\t550.127.08-1\thi \n', ''
    return 1, '', '%s: not run in this test' % name


@FUZZ_SETTINGS
@given(args=mutated_args(VALID, KEYS, infinity=True))
def test_fuzz_nvidia_driver_arguments(tmp_path, args):
    if 'state_dir' not in args or not isinstance(args.get('state_dir'), str):
        args['state_dir'] = str(tmp_path / 'state')
    run_module(nvidia_driver.main, args, allowed_root=tmp_path, commands=_commands, check_mode=True)


def test_infinite_or_nan_timeout_is_a_message(tmp_path):
    for value in (float('inf'), float('nan'), -1, 10 ** 30):
        args = dict(VALID, stop_timeout=value, state_dir=str(tmp_path))
        result = run_module(nvidia_driver.main, args, allowed_root=tmp_path, commands=_commands, check_mode=True)
        assert result['failed'] and 'stop_timeout must be a number of seconds' in result['msg']
