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
