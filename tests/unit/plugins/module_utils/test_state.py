# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's one atomic write (plugins/module_utils/_state.py): private from its creation, synced,
renamed into place, and state records readable by root alone."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError, failure


def mode_of(path):
    return os.stat(str(path)).st_mode & 0o777


def test_save_writes_the_record_0600_and_load_reads_it(tmp_path):
    state.save(str(tmp_path / 'state'), 'driver', {'current': {'version': '570'}})
    assert mode_of(tmp_path / 'state' / 'driver.json') == 0o600
    assert state.load(str(tmp_path / 'state'), 'driver') == {'current': {'version': '570'}}


def test_save_makes_an_older_world_readable_record_private(tmp_path):
    path = tmp_path / 'driver.json'
    path.write_text('{}')
    os.chmod(str(path), 0o644)
    state.save(str(tmp_path), 'driver', {'a': 1})
    assert mode_of(path) == 0o600 and json.loads(path.read_text()) == {'a': 1}


def test_the_temporary_file_is_private_before_anything_is_written(tmp_path, mocker):
    modes = []
    real_fsync = os.fsync

    def fsync(fd):
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fsync(fd)

    mocker.patch.object(state.os, 'fsync', side_effect=fsync)
    state.write_text(str(tmp_path / 'config.yaml'), 'key: value\n', mode=0o640)
    assert modes[0] == 0o600  # the file, while its content is synced
    assert len(modes) == 2  # and the directory after the rename
    assert mode_of(tmp_path / 'config.yaml') == 0o640


def test_a_failed_rename_leaves_the_old_file_and_no_temporary_file(tmp_path, mocker):
    path = tmp_path / 'record.json'
    path.write_text('{"old": true}')
    mocker.patch.object(state.os, 'replace', side_effect=OSError(28, 'No space left on device'))
    with pytest.raises(OSError):
        state.write_json(str(path), {'new': True})
    assert json.loads(path.read_text()) == {'old': True} and os.listdir(str(tmp_path)) == ['record.json']


def test_install_keeps_the_replaced_file_mode_when_none_is_given(tmp_path):
    path = tmp_path / 'config.yaml'
    path.write_text('old')
    os.chmod(str(path), 0o640)
    state.install(state.write_private(str(tmp_path), 'config.yaml', 'new'), str(path))
    assert mode_of(path) == 0o640 and path.read_text() == 'new'


def test_state_errors_are_onprem_errors_with_their_kind(tmp_path):
    (tmp_path / 'bad.json').write_text('[1]')
    with pytest.raises(state.StateError) as info:
        state.load(str(tmp_path), 'bad')
    assert isinstance(info.value, OnpremError)
    assert failure(info.value)['error_kind'] == 'state' and 'does not hold a JSON object' in failure(info.value)['msg']
