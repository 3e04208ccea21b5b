# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""gpu_info: the cases of test_gpu_info.yaml (commands and results as data), every real nvidia-smi capture, fuzzing."""

from __future__ import annotations

import copy
import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.modules import gpu_info

from helper import load_cases, run_case

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')
DPKG = 'libnvidia-compute-570\t570.133.20-1\tii \nnvidia-driver-570\t570.133.20-1\thi \n'
CASES = dict((param.values[0]['id'], param.values[0]) for param in load_cases(__file__))


def xml(name='handwritten-h100x2-570.xml'):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize('case', load_cases(__file__))
def test_case(case, tmp_path, monkeypatch):
    run_case(gpu_info.main, case, tmp_path, monkeypatch)


# Every real capture of the fixtures through the whole module logic: index order, ECC, MIG, processes.
REAL = {
    'telegraf-dual-rtx2080-590.44.01-v13.xml': dict(indexes=[0, 1], minors=[0, 1], mig=[], procs=0, unknown=0),
    'derived-dual-rtx2080-590.44.01-v13-swapped-minor.xml': dict(indexes=[0, 1], minors=[1, 0], mig=[], procs=0, unknown=0),
    'telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml': dict(indexes=[None], minors=[1], mig=[None], procs=0, unknown=1),
    'telegraf-grid-p4-1q-513.46-v11.xml': dict(indexes=[0], minors=[None], mig=[], procs=13, unknown=0),
    'netdata-tesla-p100-510.47.03-v11.xml': dict(indexes=[0], minors=[0], mig=[], procs=0, unknown=0),
    'nagios-tesla-m10-390.94-v9-gpu0.xml': dict(indexes=[None], minors=[0], mig=[], procs=2, unknown=1),
    'telegraf-rtx-4000-sff-ada-595.84-v13.xml': dict(indexes=[0], minors=[0], mig=[], procs=4, unknown=0),
    'telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml': dict(indexes=[0], minors=[0], mig=[], procs=1, unknown=0),
}


@pytest.mark.parametrize('name', sorted(REAL))
def test_gather_real_capture(tmp_path, monkeypatch, name):
    want = REAL[name]
    case = copy.deepcopy(CASES['healthy_node'])
    case['mocks']['run_command'][1]['out_file'] = 'nvidia_smi/' + name
    result = run_case(gpu_info.main, dict(case, output={}), tmp_path, monkeypatch)
    assert [g['index'] for g in result['gpus']] == want['indexes']
    assert [g['minor_number'] for g in result['gpus']] == want['minors']
    assert result['mig_enabled'] == want['mig']
    assert len(result['processes']) == want['procs']
    assert len(result['unknown']) == want['unknown'], result['unknown']
    assert result['ecc_problems'] == []
    assert result['nvidia_smi']['dtd'] in ('v9', 'v11', 'v12', 'v13')


# ---- generated bad input: fail_json with a message, never a traceback ------------------------------------
from hypothesis import given  # noqa: E402  (kept next to the property tests it serves)
from hypothesis import strategies as st  # noqa: E402

from fuzz import FUZZ_SETTINGS, JUNK_WITH_INFINITY, run_module  # noqa: E402


def _smi_commands(xml_text, rc=0):
    def commands(argv, **kwargs):
        name = os.path.basename(argv[0])
        if name == 'nvidia-smi':
            return rc, xml_text, ''
        if name == 'dpkg-query':
            return 0, DPKG, ''
        return 1, '', 'not run'
    return commands


@FUZZ_SETTINGS
@given(args=st.dictionaries(st.sampled_from(['name', 'gpus', 'filter', '_ansible_check_mode', 'index']), JUNK_WITH_INFINITY, max_size=3))
def test_fuzz_gpu_info_arguments(tmp_path, args):
    result = run_module(gpu_info.main, args, allowed_root=tmp_path, commands=_smi_commands(xml()))
    if not result.get('failed'):
        assert result['gpu_count'] == 2


@FUZZ_SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.sampled_from([
    '<nvidia_smi_log><gpu><minor_number>x</minor_number><ecc_errors><volatile><double_bit><total>-</total></double_bit>'
    '</volatile></ecc_errors></gpu></nvidia_smi_log>',
    '<nvidia_smi_log><attached_gpus>N/A</attached_gpus><gpu id="x"><processes><process_info><pid>x</pid></process_info>'
    '</processes><mig_devices><mig_device><index>a</index></mig_device></mig_devices></gpu></nvidia_smi_log>',
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "zzz">]><nvidia_smi_log>&e;</nvidia_smi_log>'])),
    rc=st.sampled_from([0, 2, 6, 9, 15, 18, 255]))
def test_fuzz_gpu_info_nvidia_smi_output(tmp_path, text, rc):
    """Whatever nvidia-smi prints, gpu_info reports (or fails with a message), never a traceback."""
    result = run_module(gpu_info.main, {}, allowed_root=tmp_path, commands=_smi_commands(text, rc))
    assert not result.get('failed')
    assert result['nvidia_smi']['state'] in ('ok', 'no_devices', 'error', 'driver_not_loaded', 'driver_library_mismatch')
