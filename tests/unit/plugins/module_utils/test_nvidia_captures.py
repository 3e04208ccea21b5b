# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nvidia-smi parsers against REAL captures (tests/unit/fixtures/nvidia_smi/README.md names each source).

Six GPU generations (Maxwell, Pascal, Turing, Ampere, Ada Lovelace, Blackwell), XML layouts v9, v11, v12 and v13,
the old single_bit/double_bit ECC layout, a MIG-enabled A100, a GRID vGPU guest with empty process names and N/A
memory, and --query-compute-apps CSV from Linux and Windows. Where a test changes a value of a capture (to show
an uncorrectable error count in a layout whose published capture has none) it says so.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'nvidia_smi')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def gpus_of(name):
    return nvidia.parse_smi_xml(fixture(name))['gpus']


NO_ECC = {'volatile': {'corrected': None, 'uncorrected': None}, 'aggregate': {'corrected': None, 'uncorrected': None}}
ZERO_ECC = {'volatile': {'corrected': 0, 'uncorrected': 0}, 'aggregate': {'corrected': 0, 'uncorrected': 0}}

# file, driver, dtd, [(index, minor, name, architecture, source, ecc_mode, ecc_errors, mig current)]
CAPTURES = [
    ('nagios-tesla-m10-390.94-v9-gpu0.xml', '390.94', 'v9',
     [(None, 0, 'Tesla M10', 'Maxwell', 'pci_device_id', None, NO_ECC, None)]),
    ('telegraf-grid-p4-1q-513.46-v11.xml', '513.46', 'v11',
     [(0, None, 'GRID P4-1Q', 'Pascal', 'nvidia-smi', None, NO_ECC, None)]),
    ('netdata-tesla-p100-510.47.03-v11.xml', '510.47.03', 'v11',
     [(0, 0, 'Tesla P100-PCIE-16GB', 'Pascal', 'nvidia-smi', 'Enabled',
       {'volatile': {'corrected': 0, 'uncorrected': 0}, 'aggregate': {'corrected': 3, 'uncorrected': 0}}, None)]),
    ('telegraf-dual-rtx2080-590.44.01-v13.xml', '590.44.01', 'v13',
     [(0, 0, 'NVIDIA GeForce RTX 2080', 'Turing', 'nvidia-smi', None, NO_ECC, None),
      (1, 1, 'NVIDIA GeForce RTX 2080', 'Turing', 'nvidia-smi', None, NO_ECC, None)]),
    ('derived-dual-rtx2080-590.44.01-v13-swapped-minor.xml', '590.44.01', 'v13',
     [(0, 1, 'NVIDIA GeForce RTX 2080', 'Turing', 'nvidia-smi', None, NO_ECC, None),
      (1, 0, 'NVIDIA GeForce RTX 2080', 'Turing', 'nvidia-smi', None, NO_ECC, None)]),
    ('telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml', '535.54.03', 'v12',
     [(None, 1, 'NVIDIA A100-SXM4-80GB', 'Ampere', 'nvidia-smi', 'Enabled', ZERO_ECC, 'Enabled')]),
    ('telegraf-rtx-4000-sff-ada-595.84-v13.xml', '595.84', 'v13',
     [(0, 0, 'NVIDIA RTX 4000 SFF Ada Generation', 'Ada Lovelace', 'nvidia-smi', 'Disabled', NO_ECC, None)]),
    ('telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml', '590.44.01', 'v13',
     [(0, 0, 'NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition', 'Blackwell', 'nvidia-smi', 'Disabled', NO_ECC, None)]),
]


@pytest.mark.parametrize('name,driver,dtd,expected', CAPTURES, ids=[c[0] for c in CAPTURES])
def test_real_capture(name, driver, dtd, expected):
    data = nvidia.parse_smi_xml(fixture(name))
    assert (data['driver_version'], data['dtd']) == (driver, dtd)
    got = [(g['index'], g['minor_number'], g['name'], g['architecture'], g['architecture_source'], g['ecc_mode'],
            g['ecc_errors'], g['mig']['current']) for g in data['gpus']]
    assert got == expected
    assert nvidia.ecc_problems(data['gpus']) == []


def test_six_generations_and_four_layouts():
    archs, dtds = set(), set()
    for name, dummy, dtd, expected in CAPTURES:
        archs.update(e[3] for e in expected)
        dtds.add(dtd)
    assert archs == {'Maxwell', 'Pascal', 'Turing', 'Ampere', 'Ada Lovelace', 'Blackwell'}
    assert dtds == {'v9', 'v11', 'v12', 'v13'}


def test_index_is_enumeration_order_not_minor_number():
    first, second = gpus_of('derived-dual-rtx2080-590.44.01-v13-swapped-minor.xml')
    assert (first['pci_bus_id'], first['index'], first['minor_number']) == ('00000000:01:00.0', 0, 1)
    assert (second['pci_bus_id'], second['index'], second['minor_number']) == ('00000000:02:00.0', 1, 0)


def test_filtered_output_has_no_index():
    # The published A100 capture lists 1 of its 4 attached GPUs: its position is not nvidia-smi's index.
    data = nvidia.parse_smi_xml(fixture('telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml'))
    assert data['attached_gpus'] == 4 and len(data['gpus']) == 1
    assert data['gpus'][0]['index'] is None and data['gpus'][0]['minor_number'] == 1


def test_mig_devices_of_a100():
    mig = gpus_of('telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml')[0]['mig']
    assert (mig['current'], mig['pending']) == ('Enabled', 'Enabled')
    assert [(d['index'], d['gpu_instance_id'], d['compute_instance_id'], d['multiprocessor_count'], d['memory_total_mib'])
            for d in mig['devices']] == [(0, 3, 0, 14, 19968), (1, 4, 0, 14, 19968), (2, 5, 0, 14, 19968), (3, 6, 0, 14, 19968)]


def test_mig_na_on_gpus_without_mig():
    for name in ('telegraf-grid-p4-1q-513.46-v11.xml', 'telegraf-rtx-4000-sff-ada-595.84-v13.xml'):
        assert gpus_of(name)[0]['mig'] == {'current': None, 'pending': None, 'devices': []}


def test_vgpu_guest_processes_empty_names_na_memory():
    data = nvidia.parse_smi_xml(fixture('telegraf-grid-p4-1q-513.46-v11.xml'))
    gpu = data['gpus'][0]
    assert gpu['persistence_mode'] is None and gpu['virtualization_mode'] == 'VGPU'
    procs = data['processes']
    assert len(procs) == 13 and {p['type'] for p in procs} == {'C+G'}
    assert [p['name'] for p in procs].count(None) == 12
    assert procs[-1]['name'] == 'C:\\Windows\\explorer.exe'
    assert all(p['used_memory_mib'] is None for p in procs)


def test_graphics_and_compute_processes_keep_their_type():
    procs = nvidia.parse_smi_xml(fixture('telegraf-rtx-4000-sff-ada-595.84-v13.xml'))['processes']
    assert [(p['pid'], p['type'], p['name'], p['used_memory_mib']) for p in procs] == [
        (1842, 'G', 'cosmic-comp', 410), (3190, 'G', '/usr/bin/code', 451), (4937, 'C', 'python', 160),
        (34626, 'C+G', '/usr/lib/chromium/chromium', 183)]


def test_vgpu_host_process_names_are_stripped():
    procs = nvidia.parse_smi_xml(fixture('nagios-tesla-m10-390.94-v9-gpu0.xml'))['processes']
    assert [(p['pid'], p['name'], p['type'], p['used_memory_mib']) for p in procs] == [
        (42818686, 'TS-526', 'C+G', 4064), (43962378, 'TS-530', 'C+G', 4064)]


def test_architecture_from_pci_device_id_of_every_capture():
    for name, dummy, dummy2, expected in CAPTURES:
        for gpu in gpus_of(name):
            assert nvidia.architecture_from_pci(gpu['pci_device_id']) == gpu['architecture'], name


@pytest.mark.parametrize('value,device', [('20B210DE', '20b2'), ('0x13bd', '13bd'), ('13BD', '13bd'), ('100210DE', '1002'),
                                          ('10021002', None), ('', None), (None, 'x')])
def test_pci_device_id(value, device):
    assert nvidia.pci_device_id(value) == (None if device == 'x' else device)


def test_pci_gpus_from_sysfs(tmp_path):
    assert nvidia.pci_gpus(str(tmp_path / 'missing')) is None
    for name, vendor, klass, device in (('0000:1a:00.0', '0x10de', '0x030200', '0x13bd'), ('0000:1a:00.1', '0x10de', '0x040300', '0x0fbc'),
                                        ('0000:00:02.0', '0x8086', '0x030000', '0x3e92'), ('0000:3b:00.0', '0x10de', '0x030200', '0x9999')):
        (tmp_path / name).mkdir()
        for key, value in (('vendor', vendor), ('class', klass), ('device', device)):
            (tmp_path / name / key).write_text(value + '\n')
    assert [(g['pci_bus_id'], g['architecture']) for g in nvidia.pci_gpus(str(tmp_path))] == [
        ('0000:1a:00.0', 'Maxwell'), ('0000:3b:00.0', None)]


# ---- uncorrectable ECC in every layout (counts changed in a copy of a real capture, as stated) -------------
def _replace_once(text, old, new):
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def test_ecc_old_layout_double_bit_total():
    # netdata P100 capture with <aggregate><double_bit><device_memory> and <total> set to 2
    text = fixture('netdata-tesla-p100-510.47.03-v11.xml')
    agg = text.index('<aggregate>')
    head, tail = text[:agg], text[agg:]
    tail = _replace_once(tail, '<double_bit>\n\t\t\t\t\t<device_memory>0</device_memory>', '<double_bit>\n\t\t\t\t\t<device_memory>2</device_memory>')
    tail = _replace_once(tail, '<cbu>N/A</cbu>\n\t\t\t\t\t<total>0</total>\n\t\t\t\t</double_bit>',
                         '<cbu>N/A</cbu>\n\t\t\t\t\t<total>2</total>\n\t\t\t\t</double_bit>')
    gpus = nvidia.parse_smi_xml(head + tail)['gpus']
    assert gpus[0]['ecc_errors']['aggregate'] == {'corrected': 3, 'uncorrected': 2}
    assert nvidia.ecc_problems(gpus) == ['GPU 0 (00000000:00:04.0, GPU-d3da8716-eaab-75db-efc1-60e88e1cd55e) has uncorrectable '
                                         'ECC errors: 2 aggregate']


def test_ecc_v13_split_sram_counters():
    # Ada capture (v13) with ECC enabled and sram_uncorrectable_parity=1, _secded=2, dram_uncorrectable=3 (volatile)
    text = fixture('telegraf-rtx-4000-sff-ada-595.84-v13.xml').replace('<current_ecc>Disabled</current_ecc>', '<current_ecc>Enabled</current_ecc>')
    for tag, value in (('sram_uncorrectable_parity', 1), ('sram_uncorrectable_secded', 2), ('dram_uncorrectable', 3), ('sram_correctable', 4)):
        text = _replace_once(text, '<%s>N/A</%s>' % (tag, tag), '<%s>%d</%s>' % (tag, value, tag))
    gpus = nvidia.parse_smi_xml(text)['gpus']
    assert gpus[0]['ecc_errors']['volatile'] == {'corrected': 4, 'uncorrected': 6}
    assert gpus[0]['ecc_errors']['aggregate'] == {'corrected': None, 'uncorrected': None}
    assert nvidia.ecc_problems(gpus) == ['GPU 0 (00000000:06:00.0, GPU-37037c3f-65c8-ec4d-24a9-420204ad8026) has uncorrectable '
                                         'ECC errors: 6 volatile']


def test_ecc_v12_unsplit_sram_counter():
    # A100 capture (v12: sram_uncorrectable) with 5 volatile SRAM uncorrectable errors
    text = _replace_once(fixture('telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml'), '<volatile>\n                <sram_correctable>0</sram_correctable>\n'
                         '                <sram_uncorrectable>0</sram_uncorrectable>',
                         '<volatile>\n                <sram_correctable>0</sram_correctable>\n                <sram_uncorrectable>5</sram_uncorrectable>')
    gpus = nvidia.parse_smi_xml(text)['gpus']
    assert gpus[0]['ecc_errors']['volatile'] == {'corrected': 0, 'uncorrected': 5}
    assert '5 volatile' in nvidia.ecc_problems(gpus)[0]


def test_ecc_enabled_but_unreadable_is_a_problem():
    # Blackwell capture with ECC enabled but every counter N/A: unknown, never "no errors"
    text = fixture('telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml').replace('<current_ecc>Disabled</current_ecc>', '<current_ecc>Enabled</current_ecc>')
    assert nvidia.ecc_problems(nvidia.parse_smi_xml(text)['gpus']) == [
        'GPU 0 (00000000:61:00.0, GPU-12345678-aaaa-bbbb-cccc-0123456789ab) has ECC enabled but its uncorrectable error count cannot be read']


# ---- --query-compute-apps (CSV) -------------------------------------------------------------------------
CAPTURE_FIELDS = ['timestamp', 'gpu_name', 'gpu_bus_id', 'gpu_serial', 'gpu_uuid', 'pid', 'process_name', 'used_memory']


def test_compute_apps_linux_capture_with_units():
    rows = nvidia.parse_csv_query(fixture('exporter-linux-rtx2080super-595.71.05-query-compute-apps.csv'), CAPTURE_FIELDS, header=True)
    assert [(r['pid'], r['process_name'], r['used_memory'], r['gpu_serial']) for r in rows] == [
        ('5268', 'ffmpeg', '370', None), ('5267', 'ffmpeg', '230', None)]


def test_compute_apps_windows_capture_paths_with_spaces_na_memory():
    rows = nvidia.parse_csv_query(fixture('exporter-windows-rtx2080super-591.86-query-compute-apps.csv'), CAPTURE_FIELDS, header=True)
    assert len(rows) == 12 and all(r['used_memory'] is None for r in rows)
    assert rows[5]['process_name'] == 'C:\\Program Files\\NVIDIA Corporation\\NVIDIA GeForce Experience\\NVIDIA Share.exe'
    # graphics shells (dwm.exe, explorer.exe) are listed by --query-compute-apps too: nvidia-smi -q -x calls them C+G
    assert {'C:\\Windows\\System32\\dwm.exe', 'C:\\Windows\\explorer.exe'} <= {r['process_name'] for r in rows}


def test_compute_apps_paste_insufficient_permissions_and_a_cut_row_is_unreadable():
    text = fixture('paste-windows-wddm-query-compute-apps-noheader.csv')
    with pytest.raises(nvidia.SmiUnreadable, match='expected 3 columns, got 2'):
        nvidia.parse_csv_query(text, ['pid', 'process_name', 'used_memory'])
    complete = '\n'.join(text.splitlines()[:-1])
    rows = nvidia.parse_csv_query(complete, ['pid', 'process_name', 'used_memory'])
    assert rows[0] == {'pid': '2296', 'process_name': None, 'used_memory': None}


def test_compute_apps_names_with_commas_are_read_whole():
    # The module's own query puts the free-text name last. Rows built from the Linux capture's values, with the
    # command line of a vLLM server (commas, spaces) as the name, the same pid on two GPUs, [Not Found] and N/A memory.
    text = ('GPU-00000000-0000-0000-0000-000000000000, 5268, 370, python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2\n'
            'GPU-00000000-0000-0000-0000-000000000001, 5268, 370, python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2\n'
            'GPU-00000000-0000-0000-0000-000000000000, 5267, [N/A], [Not Found]\n'
            'GPU-00000000-0000-0000-0000-000000000000, 5266, 12, \n')
    procs = nvidia.parse_compute_apps(text)
    assert procs[0] == {'pid': 5268, 'name': 'python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2', 'used_memory_mib': 370,
                        'gpu_uuid': 'GPU-00000000-0000-0000-0000-000000000000'}
    assert (procs[2]['name'], procs[2]['used_memory_mib'], procs[3]['name']) == (None, None, None)
    assert nvidia.describe_processes(procs) == ('python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2 (pid 5268), '
                                                'pid 5267 (name not readable), pid 5266 (name not readable)')


@pytest.mark.parametrize('text', ['GPU-1, [N/A], 10, python3\n', 'GPU-1, 12\n', 'garbage\n'])
def test_compute_apps_unreadable_rows_are_never_none(text):
    with pytest.raises(nvidia.SmiUnreadable):
        nvidia.parse_compute_apps(text)


def test_compute_apps_empty_answer_is_none_running():
    assert nvidia.parse_compute_apps('') == []
    assert nvidia.parse_compute_apps('\n') == []


def test_query_gpu_capture_header_and_na():
    rows = nvidia.parse_csv_query(fixture('netdata-tesla-p100-query-gpu.csv'), [
        'name', 'uuid', 'fan.speed', 'pstate', 'memory.reserved', 'memory.used', 'memory.free', 'utilization.gpu', 'utilization.memory',
        'temperature.gpu', 'power.draw', 'clocks.gr', 'clocks.sm', 'clocks.mem', 'clocks.video'], header=True)
    assert rows[0]['name'] == 'Tesla P100-PCIE-16GB' and rows[0]['fan.speed'] is None and rows[0]['power.draw'] == '28.16'


# Power limit and application clocks for the tuning checks (update_plan reads them from gpu_info's GPUs):
# file -> (power_limit_w, default_power_limit_w, max_power_limit_w, app clocks, default app clocks) of the first GPU;
# `-` where nvidia-smi prints no such element (v13 says application clocks are deprecated; the hand-written lab
# file has no power section).
POWER_AND_CLOCKS = [
    ('nagios-tesla-m10-390.94-v9-gpu0.xml', (53.0, 53.0, 53.0, 1032, 1032)),
    ('netdata-tesla-p100-510.47.03-v11.xml', (250.0, 250.0, 250.0, 1189, 1189)),
    ('telegraf-grid-p4-1q-513.46-v11.xml', (None, None, None, None, None)),
    ('telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml', (500.0, 500.0, 500.0, 1275, 1275)),
    ('telegraf-dual-rtx2080-590.44.01-v13.xml', (215.0, 215.0, 240.0, '-', '-')),
    ('telegraf-rtx-4000-sff-ada-595.84-v13.xml', (70.0, 70.0, 70.0, '-', '-')),
    ('telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml', (300.0, 300.0, 325.0, '-', '-')),
    ('handwritten-h100x2-570.xml', ('-', '-', '-', '-', '-')),
]
TUNING_KEYS = ('power_limit_w', 'default_power_limit_w', 'max_power_limit_w', 'clocks_applications_graphics_mhz',
               'clocks_default_applications_graphics_mhz')


@pytest.mark.parametrize('name,expected', POWER_AND_CLOCKS, ids=[c[0] for c in POWER_AND_CLOCKS])
def test_power_limit_and_clocks_of_real_captures(name, expected):
    gpu = gpus_of(name)[0]
    assert tuple(gpu.get(key, '-') for key in TUNING_KEYS) == expected


def test_tuning_checks_on_real_captures():
    """The captured GPUs run at their defaults: no recommendation; the vGPU guest cannot read them: unknown."""
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as housekeeping
    for name, dummy in POWER_AND_CLOCKS:
        findings = housekeeping.gpu_tuning(gpus_of(name))
        if name.startswith('telegraf-grid-p4'):
            assert {f['status'] for f in findings} == {'unknown'} and len(findings) == 2, findings
        else:
            assert findings == [], (name, findings)
    # A limit lowered below the default (the P100 capture with its limit set to 200 W) is a recommendation.
    lowered = fixture('netdata-tesla-p100-510.47.03-v11.xml').replace(
        '<power_limit>250.00 W</power_limit>', '<power_limit>200.00 W</power_limit>')
    findings = housekeeping.gpu_tuning(nvidia.parse_smi_xml(lowered)['gpus'])
    assert [(f['check'], f['status']) for f in findings] == [('power limit', 'recommend')], findings
