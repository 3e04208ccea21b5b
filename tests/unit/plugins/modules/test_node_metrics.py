# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""node_metrics as a module: writes its file once (then unchanged), check mode writes nothing, diff shows the text,
and whatever it is given it fails cleanly and writes nowhere but its directory (property test)."""

from __future__ import annotations

import os
import stat

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.onprem_ai.maintenance.plugins.modules import node_metrics

from fuzz import FUZZ_SETTINGS, mutated_args, run_module

GPU_INFO = {'driver': {'installed_version': '570.133.20', 'loaded_version': '550.127.08', 'mismatch': True},
            'gpu_count': 0, 'nvidia_smi': {'state': 'driver_library_mismatch'}, 'gpus': []}
DRILL = {'started': '2026-12-01T02:00:05Z', 'ok': True, 'rto_seconds': 312.4}


def test_write_once_then_unchanged(tmp_path):
    args = {'textfile_dir': str(tmp_path), 'file_name': 'onprem_ai_gpu.prom', 'gpu_info': GPU_INFO, 'gpus_expected': 2}
    planned = run_module(node_metrics.main, dict(args, _ansible_diff=True), allowed_root=tmp_path, check_mode=True)
    assert planned['changed'] and not os.listdir(tmp_path) and 'onprem_ai_nvidia_driver_mismatch 1' in planned['diff']['after']
    first = run_module(node_metrics.main, args, allowed_root=tmp_path)
    path = tmp_path / 'onprem_ai_gpu.prom'
    assert first['changed'] and first['path'] == str(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    names = {f.name for f in text_string_to_metric_families(path.read_text())}
    assert names == set(first['metrics']) and 'onprem_ai_gpus_expected' in names
    assert not run_module(node_metrics.main, args, allowed_root=tmp_path)['changed']
    assert sorted(os.listdir(tmp_path)) == ['onprem_ai_gpu.prom']


@FUZZ_SETTINGS
@given(data=st.data(), check_mode=st.booleans())
def test_bad_input_fails_cleanly(tmp_path, data, check_mode):
    base = {'textfile_dir': str(tmp_path), 'file_name': 'f.prom', 'gpu_info': GPU_INFO, 'gpus_expected': 2,
            'backup_last_success': '1796086800', 'drill': DRILL}
    # not textfile_dir: a junk absolute path ('/') is a directory the module would rightly write to
    args = data.draw(mutated_args(base, [k for k in base if k != 'textfile_dir']))
    result = run_module(node_metrics.main, args, allowed_root=tmp_path, check_mode=check_mode)
    if not result.get('failed') and not check_mode:
        text = open(result['path']).read()
        assert {f.name for f in text_string_to_metric_families(text)} == set(result['metrics'])
