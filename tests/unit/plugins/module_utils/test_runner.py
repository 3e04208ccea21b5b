# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_runner: what every declared tool gets (the tools' own command lines are tested by the YAML cases of their domains)."""

from __future__ import annotations

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import TOOLS, CommandError, Runner, trim


class Module(object):
    """get_bin_path finds every binary but those in `missing`; run_command answers `answer` and records the call."""

    def __init__(self, answer=(0, '', ''), missing=(), check_mode=False):
        self.answer, self.missing, self.check_mode = answer, missing, check_mode
        self.calls = []

    def get_bin_path(self, name, required=False):
        return None if name in self.missing else '/usr/bin/' + name

    def run_command(self, args, **kwargs):
        self.calls.append((args, kwargs))
        return self.answer


def test_every_tool_runs_with_lc_all_c_and_its_own_environment():
    module = Module()
    Runner(module).run('apt-get', 'update', env={'http_proxy': 'http://proxy:3128'})
    args, kwargs = module.calls[0]
    assert args == ['/usr/bin/apt-get', 'update', '-q']
    assert kwargs['environ_update'] == {'LC_ALL': 'C', 'DEBIAN_FRONTEND': 'noninteractive', 'http_proxy': 'http://proxy:3128'}
    assert all(tool.env['LC_ALL'] == 'C' for tool in TOOLS.values())


def test_a_failure_names_the_tool_rc_and_the_end_of_stderr():
    module = Module((100, 'Reading package lists...\n', 'W: noise\n' * 100 + 'E: Unable to locate package nvidia-driver-999\n'))
    with pytest.raises(CommandError) as info:
        Runner(module).run('apt-get', 'install options specs', specs=[('nvidia-driver-999', None)])
    result = failure(info.value)
    assert result['msg'].startswith('apt-get install failed (rc=100): ...')
    assert result['msg'].endswith('E: Unable to locate package nvidia-driver-999')
    assert len(result['stderr']) <= 303 and result['error_kind'] == 'command' and result['tool'] == 'apt-get' and result['rc'] == 100


def test_a_failure_can_be_a_domain_error():
    class DomainError(CommandError):
        error_kind = 'package'

    with pytest.raises(DomainError):
        Runner(Module((1, '', 'boom'))).run('apt-mark', 'showhold', error=DomainError)


def test_check_is_off_and_parse_gets_the_result():
    runner = Runner(Module((3, 'inactive\n', '')))
    assert runner.run('systemctl', 'is_active unit', check=False, unit='x.service', parse=lambda r: (r.rc, r.out.strip())) == (3, 'inactive')


def test_a_changing_command_is_never_run_in_check_mode():
    module = Module(check_mode=True)
    runner = Runner(module)
    assert runner.run('apt-mark', 'showhold').rc == 0
    with pytest.raises(CommandError) as info:
        runner.run('apt-mark', 'hold names', names=['nvidia-driver-570'])
    assert info.value.error_kind == 'internal' and len(module.calls) == 1


def test_a_missing_tool_and_an_undeclared_argument():
    with pytest.raises(CommandError) as info:
        Runner(Module(missing=['modprobe'])).run('modprobe', 'modules', modules=['nvidia'])
    assert info.value.error_kind == 'missing_tool' and 'modprobe is not installed' in info.value.msg
    with pytest.raises(CommandError) as info:
        Runner(Module()).run('modprobe', 'force modules', modules=['nvidia'])
    assert info.value.error_kind == 'internal' and 'modprobe has no argument force' in info.value.msg


def test_binaries_are_looked_up_once_and_can_be_given():
    module = Module()
    lookups = []
    module.get_bin_path = lambda name, required=False: lookups.append(name) or '/usr/bin/' + name
    runner = Runner(module, paths={'restic': '/opt/restic/bin/restic'})
    runner.run('apt-mark', 'showhold')
    runner.run('apt-mark', 'showhold')
    runner.run('restic', 'args', args=['version'])
    assert lookups == ['apt-mark'] and module.calls[-1][0] == ['/opt/restic/bin/restic', 'version']


def test_trim_keeps_the_end():
    assert trim('  short \n') == 'short'
    assert trim('x' * 500 + 'END', limit=10) == '...xxxxxxxEND'
    assert issubclass(CommandError, OnpremError)
