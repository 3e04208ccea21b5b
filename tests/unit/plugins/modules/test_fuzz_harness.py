# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The property-test harness itself catches what it promises to catch."""

from __future__ import annotations

import pytest
from hypothesis import given

from ansible.module_utils.basic import AnsibleModule

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

SECRET = 'tok-FUZZ-secret'


def sample_main():
    module = AnsibleModule(argument_spec=dict(path=dict(type='path', required=True),
                                              count=dict(type='int', default=1),
                                              token=dict(type='str', no_log=True)))
    if not 0 <= module.params['count'] <= 4096:
        module.fail_json(msg='count must be between 0 and 4096')
    with open(module.params['path'], 'w') as handle:
        handle.write('x' * module.params['count'])
    module.exit_json(changed=True)


@FUZZ_SETTINGS
@given(args=mutated_args({'path': 'PLACEHOLDER', 'count': 1, 'token': SECRET}, ['count', 'token']))
def test_a_well_behaved_module_passes(tmp_path, args):
    args['path'] = str(tmp_path / 'out')
    run_module(sample_main, args, allowed_root=tmp_path, secrets=[SECRET])


def test_a_write_elsewhere_is_refused_and_reported(tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    with pytest.raises((AssertionError, PermissionError)):
        run_module(sample_main, {'path': str(elsewhere / 'x')}, allowed_root=tmp_path / 'inside')
    assert not (elsewhere / 'x').exists()


def test_a_traceback_fails_the_property(tmp_path):
    def crashing_main():
        AnsibleModule(argument_spec={})
        raise ValueError('boom')
    with pytest.raises(ValueError):
        run_module(crashing_main, {}, allowed_root=tmp_path)


def test_a_printed_secret_fails_the_property(tmp_path):
    def leaking_main():
        module = AnsibleModule(argument_spec=dict(token=dict(type='str')))
        module.exit_json(changed=False, echo=module.params['token'])
    with pytest.raises(AssertionError, match='secret printed'):
        run_module(leaking_main, {'token': SECRET}, allowed_root=tmp_path, secrets=[SECRET])
