# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_pkg: the cases of test_pkg.yaml (commands and results as data), run through a small module that calls the backend."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'modules'))  # the one helper of the data-driven tests
from helper import load_cases, run_case  # noqa: E402  pylint: disable=wrong-import-position


def main():
    """A module that calls the host's package backend: input `calls` ([method, args...]), result `results` (one per call)."""
    module = OnpremModule(argument_spec=dict(calls=dict(type='list', elements='raw', required=True)), supports_check_mode=True)
    try:
        backend = pkg.backend(Runner(module))
        results = [getattr(backend, call[0])(*call[1:]) for call in module.params['calls']]
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(**failure(exc))
    module.exit_json(changed=False, backend=backend.name, results=results)


@pytest.mark.parametrize('case', load_cases(__file__))
def test_case(case, tmp_path, monkeypatch):
    run_case(main, case, tmp_path, monkeypatch)


SIMULATION = 'Inst libnvidia-compute-570 (570.133.20-1 lab-nvidia-repo [amd64])\n'


class StatusReadingModule(object):
    """Records the dpkg status file apt-get was pointed at, while it still exists (a temporary file: not a YAML case)."""

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name

    def run_command(self, args, **kwargs):
        self.status_seen = None
        for arg in args:
            if arg.startswith('Dir::State::status='):
                with open(arg.split('=', 1)[1]) as handle:
                    self.status_seen = handle.read()
        return 0, SIMULATION, ''


def test_apt_simulation_ignores_holds_that_a_real_run_lifts(tmp_path):
    status = tmp_path / 'status'
    status.write_text('Package: nvidia-driver-570\nStatus: hold ok installed\n')
    module = StatusReadingModule()
    pkg.AptBackend(Runner(module)).simulate_install([('libnvidia-compute-570', '570.133.20-1')], status_file=str(status))
    assert module.status_seen == 'Package: nvidia-driver-570\nStatus: install ok installed\n'
    assert status.read_text().count('hold') == 1  # the real status file is untouched
