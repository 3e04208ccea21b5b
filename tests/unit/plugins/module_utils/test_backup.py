# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/module_utils/_backup.py: its errors are OnpremErrors that failure() turns into one result shape,
and its redactor masks every secret of the arguments (the module tests drive the actions themselves)."""

from __future__ import annotations

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _backup as backup
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure


def test_the_redactor_masks_password_env_values_and_the_url_password_also_unquoted():
    redact = backup.redactor({'password': 'pass-word-1', 'env': {'AWS_SECRET_ACCESS_KEY': 'env-secret-2', 'N': 12345},
                              'repository': 'rest:https://u:se%40cret-3@host:8000/n1/'})
    text = redact('pass-word-1 env-secret-2 12345 se%40cret-3 se@cret-3')
    assert 'pass-word' not in text and 'env-secret' not in text and '12345' not in text and 'cret-3' not in text


def test_a_usage_error_is_an_onprem_error_with_its_kind():
    params = dict(repository='/srv/restic', keep_last=-1, keep_daily=None, keep_weekly=None, keep_monthly=None)
    with pytest.raises(backup.BackupError) as info:
        backup.validate(params)
    assert isinstance(info.value, OnpremError)
    result = failure(info.value, backup.redactor(params), 'backup_snapshot')
    assert result['error_kind'] == 'usage' and 'keep_last must be from 1' in result['msg']


def test_a_restic_failure_keeps_restics_rc_and_output_and_masks_the_secrets(mocker):
    module = mocker.MagicMock(check_mode=False, no_log_values=set(), params=dict(
        repository='/srv/restic', password='pass-word-1', password_file=None, env={}, cache_dir=None, action='snapshots',
        paths=[], exclude=[], tags=[], include=[], host=None, reason=None, snapshot='latest', read_data_subset=None,
        keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None, state_dir='/var/lib/onprem_ai', target=None,
        models_root=None, litellm_dir=None, litellm_config=None))
    module.get_bin_path.return_value = '/usr/bin/restic'
    module.run_command.return_value = (1, '', 'Fatal: wrong password or no key found (pass-word-1)\n')
    with pytest.raises(backup.BackupError) as info:
        backup.run(module)
    result = failure(info.value, backup.redactor(module.params), 'backup_snapshot')
    assert result['error_kind'] == 'wrong_password' and result['rc'] == 1 and 'wrong password' in result['output']
    assert 'pass-word-1' not in str(result) and 'pass-word-1' in module.no_log_values
