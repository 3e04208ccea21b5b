# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The textfile exporter: gpu_info results of the real nvidia-smi captures (tests/unit/fixtures/nvidia_smi, through
_gpu_info.gather) and drill entries as the backup role writes them, rendered and parsed back with prometheus_client's
own parser (the format node_exporter reads)."""

from __future__ import annotations

import os
import stat

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _gpu_info
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _metrics_textfile as mt

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')
DPKG = 'nvidia-driver-570\t570.133.20-1\tii \nlibnvidia-compute-570\t570.133.20-1\tii \n'
MISMATCH = 'Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.133\n'
DRILL = {'started': '2026-12-01T02:00:05Z', 'node': 'gpu-1', 'ok': True, 'rto_seconds': '312.4', 'files': 10}


class FakeModule(object):
    def __init__(self, smi):
        self.smi = smi

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name if name in ('dpkg-query', 'nvidia-smi') else None

    def run_command(self, args, **kwargs):
        return (0, DPKG, '') if args[0].endswith('dpkg-query') else self.smi


def gather(tmp_path, smi, loaded='570.133.20'):
    version = tmp_path / 'version'
    version.write_text(loaded + '\n')
    return _gpu_info.gather(Runner(FakeModule(smi)), sysfs_version_path=str(version), cuda_root=str(tmp_path))


def parse(text):
    """{name: [(labels, value)]} through prometheus_client's parser; every family is a gauge with HELP."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.type == 'gauge' and fam.documentation and fam.name.startswith('onprem_ai_'), fam
        out[fam.name] = [(s.labels, s.value) for s in fam.samples]
    return out


def export(**given):
    fams, unknown = mt.families(**given)
    text = mt.render(fams)
    assert 'onprem_ai' in text and text.endswith('\n')
    return parse(text), unknown, text


def test_healthy_h100_node(tmp_path):
    info = gather(tmp_path, (0, open(os.path.join(FIXTURES, 'handwritten-h100x2-570.xml')).read(), ''))
    got, unknown, _text = export(gpu_info=info, gpus_expected=2)
    assert unknown == []
    assert got['onprem_ai_nvidia_driver_info'] == [({'installed': '570.133.20', 'loaded': '570.133.20'}, 1.0)]
    assert got['onprem_ai_nvidia_driver_mismatch'] == [({}, 0.0)]
    assert got['onprem_ai_gpus_seen'] == [({}, 2.0)] and got['onprem_ai_gpus_expected'] == [({}, 2.0)]
    assert got['onprem_ai_nvidia_smi_up'] == [({}, 1.0)]
    ecc = {(s[0]['gpu'], s[0]['scope']): s[1] for s in got['onprem_ai_gpu_ecc_uncorrected_errors']}
    assert ecc[('0', 'aggregate')] == 1.0 and ecc[('0', 'volatile')] == 0.0  # gpu_info names GPU 0: 1 aggregate
    assert all(s[0]['uuid'].startswith('GPU-') for s in got['onprem_ai_gpu_ecc_uncorrected_errors'])
    assert 'onprem_ai_metrics_unknown' not in got


def test_mismatch_after_package_upgrade(tmp_path):
    got, unknown, _text = export(gpu_info=gather(tmp_path, (18, MISMATCH, ''), loaded='550.127.08'), gpus_expected=8)
    assert got['onprem_ai_nvidia_driver_info'] == [({'installed': '570.133.20', 'loaded': '550.127.08'}, 1.0)]
    assert got['onprem_ai_nvidia_driver_mismatch'] == [({}, 1.0)]
    assert got['onprem_ai_nvidia_smi_state'] == [({'state': 'driver_library_mismatch'}, 1.0)]
    assert got['onprem_ai_nvidia_smi_up'] == [({}, 0.0)]
    assert got['onprem_ai_gpus_seen'] == [({}, 0.0)] and got['onprem_ai_gpus_expected'] == [({}, 8.0)]
    assert unknown == []


@pytest.mark.parametrize('name', sorted(n for n in os.listdir(FIXTURES) if n.endswith('.xml')))
def test_every_real_capture_parses(tmp_path, name):
    info = gather(tmp_path, (0, open(os.path.join(FIXTURES, name)).read(), ''))
    got, unknown, _text = export(gpu_info=info)
    assert got['onprem_ai_gpus_seen'] == [({}, float(info['gpu_count']))]
    for item in unknown:  # every unknown is exported as such, never as a 0
        assert ({k: str(v) for k, v in item.items()}, 1.0) in got['onprem_ai_metrics_unknown']


def test_an_unreadable_ecc_count_is_unknown_not_zero():
    info = {'driver': {'installed_version': '570.1', 'loaded_version': None, 'mismatch': None},
            'gpu_count': 1, 'nvidia_smi': {'state': 'ok'},
            'gpus': [{'index': 0, 'uuid': 'GPU-x', 'pci_bus_id': '0:1', 'ecc_mode': 'Enabled',
                      'ecc_errors': {'volatile': {'uncorrected': None}, 'aggregate': {'uncorrected': 4}}},
                     {'index': 1, 'uuid': 'GPU-y', 'ecc_mode': 'Disabled', 'ecc_errors': None}]}
    got, unknown, _text = export(gpu_info=info)
    assert got['onprem_ai_gpu_ecc_uncorrected_errors'] == [
        ({'gpu': '0', 'uuid': 'GPU-x', 'pci_bus_id': '0:1', 'scope': 'aggregate'}, 4.0)]
    assert {'metric': 'onprem_ai_gpu_ecc_uncorrected_errors', 'gpu': '0', 'scope': 'volatile'} in unknown
    assert 'onprem_ai_nvidia_driver_mismatch' not in got
    assert ({'metric': 'onprem_ai_nvidia_driver_mismatch'}, 1.0) in got['onprem_ai_metrics_unknown']
    assert got['onprem_ai_nvidia_driver_info'] == [({'installed': '570.1', 'loaded': ''}, 1.0)]


def test_backup_and_drill():
    got, unknown, text = export(backup_last_success='2026-12-01T01:00:00+00:00', drill=DRILL)
    assert got['onprem_ai_backup_last_success_timestamp_seconds'] == [({}, 1796086800.0)]
    assert got['onprem_ai_dr_drill_last_timestamp_seconds'] == [({}, 1796090405.0)]
    assert got['onprem_ai_dr_drill_last_rto_seconds'] == [({}, 312.4)]
    assert got['onprem_ai_dr_drill_last_success'] == [({}, 1.0)] and unknown == []
    assert 'e+09' in text or '1796086800' in text
    failed, unknown, _text = export(drill=dict(DRILL, ok='False', rto_seconds=None))
    assert failed['onprem_ai_dr_drill_last_success'] == [({}, 0.0)] and 'onprem_ai_dr_drill_last_rto_seconds' not in failed
    assert unknown == []
    odd, unknown, _text = export(drill=dict(DRILL, ok=None, rto_seconds='x'))
    assert {'metric': 'onprem_ai_dr_drill_last_success'} in unknown and {'metric': 'onprem_ai_dr_drill_last_rto_seconds'} in unknown
    assert export(backup_last_success=1796086800)[0] == export(backup_last_success='1796086800')[0]


def test_label_values_are_escaped():
    text = mt.render([mt.Family('onprem_ai_x', 'help with \\ and\nnewline').add(1, a='q"uo\\te\nnl')])
    fam = list(text_string_to_metric_families(text))[0]
    assert fam.samples[0].labels == {'a': 'q"uo\\te\nnl'} and fam.documentation == 'help with \\ and\nnewline'


@pytest.mark.parametrize('given, words', [
    ({}, 'nothing to export'),
    ({'gpu_info': {'gpus': []}}, 'not a gpu_info result'),
    ({'gpu_info': {'driver': {}, 'gpus': ['x']}}, 'gpus[0]'),
    ({'gpus_expected': 2, 'drill': DRILL}, 'needs gpu_info'),
    ({'gpu_info': {'driver': {}, 'gpus': []}, 'gpus_expected': -1}, 'whole number'),
    ({'backup_last_success': 'yesterday'}, 'neither Unix seconds'),
    ({'backup_last_success': '2026-02-30T00:00:00Z'}, 'not a valid time'),
    ({'drill': {'ok': True}}, 'no started'),
    ({'drill': 'x'}, 'drill entry'),
])
def test_bad_input(given, words):
    with pytest.raises(mt.MetricsError) as info:
        mt.families(**given)
    assert words in info.value.msg


def test_atomic_write_mode_and_idempotence(tmp_path, monkeypatch):
    text = mt.render(mt.families(drill=DRILL)[0])
    assert mt.write_textfile(str(tmp_path), 'x.prom', text, check_mode=True) == (True, None)
    assert not os.listdir(tmp_path)
    assert mt.write_textfile(str(tmp_path), 'x.prom', text) == (True, None)
    assert stat.S_IMODE(os.stat(tmp_path / 'x.prom').st_mode) == 0o644 and (tmp_path / 'x.prom').read_text() == text
    assert mt.write_textfile(str(tmp_path), 'x.prom', text) == (False, text)
    os.chmod(tmp_path / 'x.prom', 0o600)
    assert mt.write_textfile(str(tmp_path), 'x.prom', text)[0] and stat.S_IMODE(os.stat(tmp_path / 'x.prom').st_mode) == 0o644
    renames = []
    real = os.replace
    monkeypatch.setattr(os, 'replace', lambda a, b: renames.append((os.path.dirname(a), os.path.basename(a))) or real(a, b))
    mt.write_textfile(str(tmp_path), 'x.prom', text + '# more\n')
    assert renames[0][0] == str(tmp_path) and not renames[0][1].endswith('.prom')  # same dir, not read half-written
    assert sorted(os.listdir(tmp_path)) == ['x.prom']
    for name in ('../x.prom', 'x.txt', '.prom'):
        with pytest.raises(mt.MetricsError):
            mt.write_textfile(str(tmp_path), name, text)
    with pytest.raises(mt.MetricsError) as info:
        mt.write_textfile(str(tmp_path / 'missing'), 'x.prom', text)
    assert info.value.error_kind == 'write'
