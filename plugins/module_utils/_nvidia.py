# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""NVIDIA driver domain logic: nvidia-smi parsing, version maths, loaded-module state.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

# Where the running kernel reports the version of the loaded nvidia module.
SYSFS_MODULE_VERSION = '/sys/module/nvidia/version'
CUDA_ROOT = '/usr/local'
PCI_ROOT = '/sys/bus/pci/devices'

# nvidia-smi outcomes that are states of the node, not failures of the tool.
SMI_OK = 'ok'
SMI_NOT_INSTALLED = 'not_installed'
SMI_NO_DRIVER = 'driver_not_loaded'
SMI_MISMATCH = 'driver_library_mismatch'
SMI_NO_DEVICES = 'no_devices'
SMI_ERROR = 'error'

_MISMATCH_RE = re.compile(r'Driver/library version mismatch', re.I)
_NO_DRIVER_RE = re.compile(r"couldn't communicate with the NVIDIA driver|NVIDIA driver is not loaded", re.I)
_NO_DEVICES_RE = re.compile(r'No devices were found', re.I)
_NVML_VERSION_RE = re.compile(r'NVML library version:\s*([0-9.]+)')
_MIB_RE = re.compile(r'^\s*([0-9]+)\s*MiB\s*$')


def classify_smi_failure(rc, out, err):
    """Map a failed nvidia-smi run to one of the SMI_* states."""
    text = '%s\n%s' % (out or '', err or '')
    if _MISMATCH_RE.search(text):
        return SMI_MISMATCH
    if _NO_DRIVER_RE.search(text):
        return SMI_NO_DRIVER
    if _NO_DEVICES_RE.search(text):
        return SMI_NO_DEVICES
    return SMI_ERROR if rc else SMI_OK


def nvml_library_version(text):
    """The user-space NVML version printed with a mismatch error, or None."""
    match = _NVML_VERSION_RE.search(text or '')
    return match.group(1) if match else None


def version_tuple(version):
    """'570.133.20' -> (570, 133, 20); Debian revisions and epochs are ignored."""
    if version is None:
        return ()
    upstream = str(version).split(':', 1)[-1].split('-', 1)[0]
    parts = []
    for piece in upstream.split('.'):
        digits = re.match(r'\d+', piece)
        if not digits:
            break
        parts.append(int(digits.group(0)))
    return tuple(parts)


def upstream_version(version):
    """'1:570.133.20-1ubuntu1' -> '570.133.20'."""
    if version is None:
        return None
    return str(version).split(':', 1)[-1].split('-', 1)[0]


def branch_of(version):
    """'570.133.20' -> '570'."""
    parts = version_tuple(version)
    return str(parts[0]) if parts else None


# What nvidia-smi prints where it has no value. Every parser below turns these into None, and None
# always means "not known": a caller must never read None as zero, "none" or "disabled".
_NA_VALUES = ('', 'N/A', '[N/A]', 'Not Supported', '[Not Supported]', 'Unknown Error', '[Unknown Error]',
              'Requested functionality has been deprecated', '[Requested functionality has been deprecated]',
              'Insufficient Permissions', '[Insufficient Permissions]', 'Not Found', '[Not Found]')


class SmiUnreadable(OnpremError, ValueError):
    """nvidia-smi answered, but its output cannot be read for sure (the caller must treat it as unknown)."""

    error_kind = 'unreadable'


def _text(node, path, default=None):
    found = node.find(path)
    if found is None or found.text is None:
        return default
    value = found.text.strip()
    return default if value in _NA_VALUES else value


def _mib(value):
    if value is None:
        return None
    match = _MIB_RE.match(value)
    return int(match.group(1)) if match else None


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


_WATTS_RE = re.compile(r'^\s*([0-9]+(?:\.[0-9]+)?)\s*W\s*$')
_MHZ_RE = re.compile(r'^\s*([0-9]+)\s*MHz\s*$')
_DEPRECATED = 'Requested functionality has been deprecated'


def _unit(node, path, pattern, cast):
    """(present, value): present when the element is printed at all; value None when N/A or unreadable."""
    found = node.find(path)
    if found is None:
        return False, None
    match = pattern.match(_text(node, path) or '')
    return True, cast(match.group(1)) if match else None


def _power_and_clocks(gpu):
    """Power limit and application clocks as the tuning checks read them (keys only where nvidia-smi prints the
    element: v9-v11 <power_readings><power_limit>, v12+ <gpu_power_readings><current_power_limit>; N/A -> None).
    Application clocks are left out where the driver says they are deprecated (v13: nothing to tune there)."""
    out = {}
    for key, paths in (('power_limit_w', ('gpu_power_readings/current_power_limit', 'power_readings/power_limit')),
                       ('default_power_limit_w', ('gpu_power_readings/default_power_limit', 'power_readings/default_power_limit')),
                       ('max_power_limit_w', ('gpu_power_readings/max_power_limit', 'power_readings/max_power_limit'))):
        for path in paths:
            present, value = _unit(gpu, path, _WATTS_RE, float)
            if present:
                out[key] = value
                break
    for key, path in (('clocks_applications_graphics_mhz', 'applications_clocks/graphics_clock'),
                      ('clocks_default_applications_graphics_mhz', 'default_applications_clocks/graphics_clock')):
        found = gpu.find(path)
        if found is not None and _DEPRECATED not in (found.text or ''):
            out[key] = _unit(gpu, path, _MHZ_RE, int)[1]
    return out


# ---- GPU architecture -------------------------------------------------------------------------------
# Drivers up to 470 print no <product_architecture>; for those the architecture comes from the PCI
# device id. SOURCE: the PCI ID Repository (https://pci-ids.ucw.cz, vendor 10de), as shipped in
# Debian 12's pci.ids package 0.0~2023.04.11-1: every 10de device whose name starts with a chip code
# (GM107GL [Tesla M10] -> GM107), audio/USB/UCSI functions left out; plus 2bb4 (GB202, from the
# nvidia-smi capture of an RTX PRO 6000 Blackwell Max-Q, tests/unit/fixtures/nvidia_smi/README.md).
# A GPU newer than this table runs a driver that prints <product_architecture> itself.
_CHIP_FAMILIES = {'GM': 'Maxwell', 'GP': 'Pascal', 'GV': 'Volta', 'TU': 'Turing', 'GA': 'Ampere',
                  'AD': 'Ada Lovelace', 'GH': 'Hopper', 'GB': 'Blackwell'}
_PCI_DEVICE_IDS = {
    'GM108': '1340 1341 1344 1346 1347 1348 1349 134b 134d 134e 134f 137a 137b 137d 174d 174e',
    'GM107': '1380 1381 1382 1389 1390 1391 1392 1393 1398 1399 139a 139b 139c 139d 13b0 13b1 13b2 13b3 13b4 13b6 13b9 '
             '13ba 13bb 13bc 13bd 1789 179c',
    'GM204': '13c0 13c1 13c2 13c3 13d7 13d8 13d9 13da 13e7 13f0 13f1 13f2 13f3 13f8 13f9 13fa 13fb 1617 1618 1619 161a 1667',
    'GM206': '1401 1402 1404 1406 1407 1427 1430 1431 1436',
    'GM200': '17c2 17c8 17f0 17f1 17fd',
    'GP100': '15f0 15f1 15f7 15f8 15f9 1725 172e 172f',
    'GP102': '1b00 1b01 1b02 1b04 1b06 1b07 1b30 1b38 1b39 1b70 1b78',
    'GP104': '1b80 1b81 1b82 1b83 1b84 1b87 1ba0 1ba1 1ba2 1ba9 1baa 1bad 1bb0 1bb1 1bb3 1bb4 1bb5 1bb6 1bb7 1bb8 1bb9 '
             '1bbb 1bc7 1be0 1be1',
    'GP106': '1c00 1c01 1c02 1c03 1c04 1c06 1c07 1c09 1c20 1c21 1c22 1c23 1c2d 1c30 1c31 1c35 1c36 1c60 1c61 1c62 1c70',
    'GP107': '1c81 1c82 1c83 1c8c 1c8d 1c8e 1c8f 1c90 1c91 1c92 1c94 1c96 1ca7 1ca8 1caa 1cb1 1cb2 1cb3 1cb6 1cba 1cbb '
             '1cbc 1cbd 1ccc 1ccd 1cfa 1cfb',
    'GP108': '1d01 1d02 1d10 1d11 1d12 1d13 1d16 1d33 1d34 1d52 1d56',
    'GV100': '1d81 1db1 1db2 1db3 1db4 1db5 1db6 1db7 1db8 1dba 1dbe 1df0 1df2 1df5 1df6',
    'TU102': '1e02 1e03 1e04 1e07 1e09 1e2d 1e2e 1e30 1e36 1e37 1e38 1e3c 1e3d 1e3e 1e78',
    'TU104': '1e81 1e82 1e84 1e87 1e89 1e90 1e91 1e93 1eab 1eae 1eb0 1eb1 1eb4 1eb5 1eb6 1eb8 1eb9 1eba 1ebe 1ec2 1ec7 '
             '1ed0 1ed1 1ed3 1ef5',
    'TU106': '1f02 1f03 1f04 1f06 1f07 1f08 1f09 1f0a 1f0b 1f10 1f11 1f12 1f14 1f15 1f2e 1f36 1f42 1f47 1f50 1f51 1f54 '
             '1f55 1f76',
    'TU116': '2182 2183 2184 2187 2188 2189 2191 2192 21ae 21bf 21c2 21c4 21d1',
    'TU117': '1f81 1f82 1f83 1f91 1f92 1f94 1f95 1f96 1f97 1f98 1f99 1f9c 1f9d 1f9f 1fa0 1fa1 1fae 1fb0 1fb1 1fb2 1fb6 '
             '1fb7 1fb8 1fb9 1fba 1fbb 1fbc 1fbf 1fd9 1fdd 1ff0 1ff2 1ff9',
    'GA100': '1af1 2082 20b0 20b1 20b2 20b3 20b5 20b6 20b7 20b8 20b9 20bb 20be 20bf 20c2 20f0 20f1 20f2 20f3 20f5 20f6 20fd',
    'GA102': '2200 2203 2204 2205 2206 2207 2208 220a 220d 2216 222b 222f 2230 2231 2232 2233 2235 2236 2237 2238 223f',
    'GA103': '2414 2420 2438 2460',
    'GA104': '2482 2483 2484 2486 2487 2488 2489 248a 249c 249d 249f 24a0 24a4 24ac 24ad 24af 24b0 24b1 24b6 24b7 24b8 '
             '24b9 24ba 24bb 24bf 24c7 24c8 24c9 24dc 24dd 24df 24e0 24fa',
    'GA106': '2501 2503 2504 2505 2507 2508 2509 2520 2521 2523 252f 2531 2544 2560 2561 2563 2571',
    'GA107': '2582 2583 25a0 25a2 25a3 25a4 25a5 25a6 25a7 25a9 25aa 25ab 25ad 25af 25b5 25b6 25b8 25b9 25ba 25bb 25bc '
             '25bd 25e0 25e2 25e5 25ed 25f9 25fa 25fb',
    'GH100': '2302 2313 2321 2322 2324 2330 2331 2336 2339',
    'AD102': '2681 2684 26b1 26b5 26b8 26f5',
    'AD103': '2704 2730',
    'AD104': '2782 2785 2786 27a0 27b0 27b7 27b8 27ba 27bb 27e0',
    'AD106': '2803 2820 2838 2860',
    'AD107': '28a0 28a1 28b8 28e0 28e1',
    'GB202': '2bb4',
}
PCI_DEVICE_CHIPS = dict((device, chip) for chip, ids in _PCI_DEVICE_IDS.items() for device in ids.split())


def pci_device_id(value):
    """'20B210DE' (nvidia-smi: device then vendor), '0x20b2' or '20b2' (sysfs) -> '20b2'; None when not NVIDIA/unreadable."""
    text = str(value or '').strip().lower()
    if text.startswith('0x'):
        text = text[2:]
    if re.match(r'^[0-9a-f]{8}$', text):
        return text[:4] if text[4:] == '10de' else None
    return text if re.match(r'^[0-9a-f]{4}$', text) else None


def architecture_from_pci(device_id):
    """Architecture of an NVIDIA PCI device id ('20b2' -> 'Ampere'), None when the table does not know it."""
    chip = PCI_DEVICE_CHIPS.get(pci_device_id(device_id) or '')
    return _CHIP_FAMILIES.get(chip[:2]) if chip else None


def _read_sysfs(path):
    with open(path) as handle:
        return handle.read().strip()


def pci_gpus(root=PCI_ROOT):
    """NVIDIA display/3D controllers on the PCI bus from sysfs (no driver needed): [{'pci_bus_id', 'pci_device_id',
    'architecture', 'architecture_source', 'name', 'index'}], or None when sysfs cannot be read."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    gpus = []
    for name in names:
        try:
            vendor = _read_sysfs(os.path.join(root, name, 'vendor'))
            klass = _read_sysfs(os.path.join(root, name, 'class'))
            device = _read_sysfs(os.path.join(root, name, 'device'))
        except (IOError, OSError):
            continue
        if vendor.lower() != '0x10de' or not klass.lower().startswith(('0x0300', '0x0302')):
            continue
        device_id = pci_device_id(device)
        arch = architecture_from_pci(device_id)
        gpus.append({'index': None, 'name': None, 'pci_bus_id': name, 'pci_device_id': device_id, 'architecture': arch,
                     'architecture_source': 'pci_device_id' if arch else None})
    return gpus


# ---- ECC ----------------------------------------------------------------------------------------------
def _ecc_count(node):
    """A counter element: its number, the <total> of a nested one (old single_bit/double_bit layout),
    else the sum of its numeric children; None when nothing in it is a number."""
    children = list(node)
    if not children:
        return _int(node.text)
    total = node.find('total')
    if total is not None:
        return _int(total.text)
    values = [v for v in (_ecc_count(child) for child in children) if v is not None]
    return sum(values) if values else None


def _ecc_kind(tag):
    """'uncorrected', 'corrected' or None (not an error counter, e.g. sram_threshold_exceeded)."""
    if 'uncorrectable' in tag or tag in ('double_bit', 'total_uncorrectable'):
        return 'uncorrected'
    if tag.endswith('correctable') or tag in ('single_bit', 'total_correctable'):
        return 'corrected'
    return None


def parse_ecc_scope(node):
    """{'corrected': n, 'uncorrected': n} of one <volatile> or <aggregate> element, in every layout:
    v13 (sram_uncorrectable_parity + sram_uncorrectable_secded + dram_uncorrectable), v11/v12
    (sram_uncorrectable + dram_uncorrectable), and the old nested single_bit/double_bit totals.
    A count is the sum of the readable counters; None when no counter of that kind could be read."""
    sums = {'corrected': None, 'uncorrected': None}
    if node is None:
        return sums
    for child in node:
        kind = _ecc_kind(child.tag)
        value = _ecc_count(child) if kind else None
        if value is not None:
            sums[kind] = (sums[kind] or 0) + value
    return sums


def _ecc(gpu):
    errors = dict((scope, parse_ecc_scope(gpu.find('ecc_errors/%s' % scope))) for scope in ('volatile', 'aggregate'))
    return {'mode': _text(gpu, 'ecc_mode/current_ecc'), 'pending_mode': _text(gpu, 'ecc_mode/pending_ecc'), 'errors': errors}


def ecc_problems(gpus):
    """Human-readable problems: uncorrectable ECC errors (volatile or aggregate), and GPUs whose ECC is
    enabled but whose uncorrectable counters cannot be read. Empty when every GPU is known to be clean."""
    problems = []
    for gpu in gpus:
        label = 'GPU %s (%s, %s)' % (gpu.get('index'), gpu.get('pci_bus_id') or '?', gpu.get('uuid') or '?')
        errors = gpu.get('ecc_errors') or {}
        counts = dict((scope, (errors.get(scope) or {}).get('uncorrected')) for scope in ('volatile', 'aggregate'))
        found = ['%d %s' % (n, scope) for scope, n in sorted(counts.items()) if n]
        if found:
            problems.append('%s has uncorrectable ECC errors: %s' % (label, ', '.join(found)))
        elif gpu.get('ecc_mode') == 'Enabled' and counts['volatile'] is None:
            problems.append('%s has ECC enabled but its uncorrectable error count cannot be read' % label)
    return problems


# ---- MIG --------------------------------------------------------------------------------------------------
def _mig(gpu):
    devices = []
    for dev in gpu.findall('mig_devices/mig_device'):
        devices.append({
            'index': _int(_text(dev, 'index')),
            'gpu_instance_id': _int(_text(dev, 'gpu_instance_id')),
            'compute_instance_id': _int(_text(dev, 'compute_instance_id')),
            'multiprocessor_count': _int(_text(dev, 'device_attributes/shared/multiprocessor_count')),
            'memory_total_mib': _mib(_text(dev, 'fb_memory_usage/total')),
        })
    return {'current': _text(gpu, 'mig_mode/current_mig'), 'pending': _text(gpu, 'mig_mode/pending_mig'), 'devices': devices}


# `nvidia-smi mig -lgi` / `-lci` tables (the only place that names the profile and placement of an instance):
# |   0  MIG 1g.10gb          19        9          2:1     |
# |   0      1       MIG 3g.40gb          2         0          0:4     |
_LGI_ROW = re.compile(r'^\|\s*(\d+)\s+(MIG\s+\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|\s*$')
_LCI_ROW = re.compile(r'^\|\s*(\d+)\s+(\d+)\s+(MIG\s+\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|\s*$')
_MIG_NONE_RE = re.compile(r'No (GPU|compute) instances? (was |were )?found', re.I)


def mig_none(text):
    """True when nvidia-smi says there is no GPU / compute instance (its 'Not Found' answer, not an error)."""
    return bool(_MIG_NONE_RE.search(text or ''))


def parse_mig_lgi(text):
    """`nvidia-smi mig -lgi` -> [{'gpu', 'name', 'profile_id', 'gi_id', 'start', 'size'}]; SmiUnreadable for a table row
    that does not parse (a layout that cannot be read for sure is never "no instances")."""
    rows = []
    for line in (text or '').splitlines():
        line = line.rstrip()
        match = _LGI_ROW.match(line)
        if match:
            gpu, name, profile, gi_id, start, size = match.groups()
            rows.append({'gpu': int(gpu), 'name': name.split()[-1], 'profile_id': int(profile), 'gi_id': int(gi_id),
                         'start': int(start), 'size': int(size)})
        elif re.match(r'^\|\s*\d', line):
            raise SmiUnreadable('unexpected row in nvidia-smi mig -lgi: %r' % line)
    return rows


def parse_mig_lci(text):
    """`nvidia-smi mig -lci` -> [{'gpu', 'gi_id', 'name', 'profile_id', 'ci_id', 'start', 'size'}] (SmiUnreadable as above)."""
    rows = []
    for line in (text or '').splitlines():
        line = line.rstrip()
        match = _LCI_ROW.match(line)
        if match:
            gpu, gi_id, name, profile, ci_id, start, size = match.groups()
            rows.append({'gpu': int(gpu), 'gi_id': int(gi_id), 'name': name.split()[-1], 'profile_id': int(profile),
                         'ci_id': int(ci_id), 'start': int(start), 'size': int(size)})
        elif re.match(r'^\|\s*\d', line):
            raise SmiUnreadable('unexpected row in nvidia-smi mig -lci: %r' % line)
    return rows


def mig_layout(lgi_rows, lci_rows):
    """{gpu index: [GPU instance, each {'profile_id', 'name', 'start', 'size', 'compute': [{'profile_id', 'name', 'start',
    'size'}]}]} sorted by placement: what re-creating the instances must give again (instance ids are not kept)."""
    layout = {}
    for gi in sorted(lgi_rows, key=lambda r: (r['gpu'], r['start'])):
        compute = sorted(({'profile_id': ci['profile_id'], 'name': ci['name'], 'start': ci['start'], 'size': ci['size']}
                          for ci in lci_rows if ci['gpu'] == gi['gpu'] and ci['gi_id'] == gi['gi_id']),
                         key=lambda c: (c['start'], c['profile_id']))
        layout.setdefault(gi['gpu'], []).append({'profile_id': gi['profile_id'], 'name': gi['name'], 'start': gi['start'],
                                                 'size': gi['size'], 'compute': compute})
    return layout


def describe_mig_layout(instances):
    """'1g.10gb@0 [1g.10gb], 3g.40gb@4 [3g.40gb]'."""
    return ', '.join('%s@%d [%s]' % (gi['name'], gi['start'], ', '.join(c['name'] for c in gi['compute']) or 'no compute instance')
                     for gi in instances) or 'no GPU instance'


# ---- the whole -q -x document ------------------------------------------------------------------------
def _process(proc, gpu):
    name = proc.find('process_name')
    raw_name = None if name is None or name.text is None else name.text.strip()
    return {
        'pid': _int(_text(proc, 'pid')),
        'name': raw_name if raw_name not in _NA_VALUES else None,
        'type': _text(proc, 'type'),
        'used_memory_mib': _mib(_text(proc, 'used_memory')),
        'gpu_uuid': gpu['uuid'],
        'gpu_index': gpu['index'],
        'gpu_instance_id': _int(_text(proc, 'gpu_instance_id')),
        'compute_instance_id': _int(_text(proc, 'compute_instance_id')),
    }


def parse_smi_xml(text):
    """Parse `nvidia-smi -q -x` output (DTD v9 to v13) into plain data.

    GPUs keep nvidia-smi's order: `index` is the position in the output, which is nvidia-smi's own
    index (as in `nvidia-smi -L` and `--query-gpu=index`) as long as the output is not filtered with
    -i. `minor_number` is the /dev/nvidiaN number, a different thing (None when N/A). Every value that
    nvidia-smi prints as N/A (or not at all) is None. Raises SmiUnreadable (a ValueError) on bad XML.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SmiUnreadable('nvidia-smi -q -x did not print valid XML: %s' % exc) from exc
    if root.tag != 'nvidia_smi_log':
        raise SmiUnreadable('unexpected nvidia-smi XML root element <%s>' % root.tag)
    gpus = []
    processes = []
    for index, node in enumerate(root.findall('gpu')):
        device_id = pci_device_id(_text(node, 'pci/pci_device_id'))
        architecture = _text(node, 'product_architecture')
        source = 'nvidia-smi' if architecture else None
        if not architecture:
            architecture = architecture_from_pci(device_id)
            source = 'pci_device_id' if architecture else None
        ecc = _ecc(node)
        gpu = {
            'index': index,
            'minor_number': _int(_text(node, 'minor_number')),
            'name': _text(node, 'product_name'),
            'brand': _text(node, 'product_brand'),
            'uuid': _text(node, 'uuid'),
            'pci_bus_id': node.get('id') or _text(node, 'pci/pci_bus_id'),
            'pci_device_id': device_id,
            'serial': _text(node, 'serial'),
            'architecture': architecture,
            'architecture_source': source,
            'vbios_version': _text(node, 'vbios_version'),
            'persistence_mode': _text(node, 'persistence_mode'),
            'virtualization_mode': _text(node, 'gpu_virtualization_mode/virtualization_mode'),
            'memory_total_mib': _mib(_text(node, 'fb_memory_usage/total')),
            'memory_used_mib': _mib(_text(node, 'fb_memory_usage/used')),
            'ecc_mode': ecc['mode'],
            'ecc_pending_mode': ecc['pending_mode'],
            'ecc_errors': ecc['errors'],
            'mig': _mig(node),
        }
        gpu.update(_power_and_clocks(node))
        gpus.append(gpu)
        for proc in node.findall('processes/process_info'):
            processes.append(_process(proc, gpu))
    attached = _int(_text(root, 'attached_gpus'))
    if attached is not None and attached != len(gpus):
        # Output filtered with -i (or GPUs missing from it): positions are not nvidia-smi's indexes.
        for gpu in gpus:
            gpu['index'] = None
        for proc in processes:
            proc['gpu_index'] = None
    return {
        'driver_version': _text(root, 'driver_version'),
        'cuda_version': _text(root, 'cuda_version'),
        'attached_gpus': attached,
        'dtd': _dtd(text),
        'gpus': gpus,
        'processes': processes,
    }


def _dtd(text):
    match = re.search(r'nvsmi_device_(v\d+)\.dtd', text[:400] if text else '')
    return match.group(1) if match else None


# ---- CSV (--query-*) ---------------------------------------------------------------------------------------
_CSV_UNIT_RE = re.compile(r'^(-?[0-9.]+)\s*(MiB|W|%|MHz|us|KB/s)$')


def _csv_value(value):
    value = value.strip()
    if value in _NA_VALUES:
        return None
    match = _CSV_UNIT_RE.match(value)
    return match.group(1) if match else value


def parse_csv_query(text, fields, header=False):
    """Parse `--format=csv[,noheader][,nounits]` output for the given field names.

    The LAST field may contain commas (nvidia-smi does not quote): every row is split into at most
    len(fields) cells, so put free text such as process_name last. Units ('370 MiB') are dropped and
    N/A-like cells ([N/A], [Not Found], [Insufficient Permissions], ...) become None. A row with too
    few cells raises SmiUnreadable: the caller must treat the whole answer as unknown.
    """
    rows = []
    lines = [line for line in (text or '').splitlines() if line.strip()]
    if header and lines:
        lines = lines[1:]
    for line in lines:
        values = line.split(',', len(fields) - 1)
        if len(values) != len(fields):
            raise SmiUnreadable('expected %d columns, got %d in %r' % (len(fields), len(values), line))
        rows.append(dict(zip(fields, [_csv_value(v) for v in values])))
    return rows


# Fields of the compute-process query, free text last (see parse_csv_query).
COMPUTE_APP_FIELDS = ['gpu_uuid', 'pid', 'used_memory', 'process_name']


def parse_compute_apps(text, fields=None):
    """`--query-compute-apps=gpu_uuid,pid,used_memory,process_name --format=csv,noheader,nounits` ->
    [{'pid', 'name', 'used_memory_mib', 'gpu_uuid'}]. A pid that is not a number makes the whole
    answer unreadable (SmiUnreadable): a list that cannot be read for sure is never "no processes".
    Names nvidia-smi cannot see ([Not Found], [Insufficient Permissions], empty) are None."""
    fields = fields or COMPUTE_APP_FIELDS
    procs = []
    for row in parse_csv_query(text, fields):
        pid = _int(row.get('pid'))
        if pid is None:
            raise SmiUnreadable('a GPU process row has no readable pid: %r' % (row,))
        procs.append({'pid': pid, 'name': row.get('process_name'), 'used_memory_mib': _int(row.get('used_memory')),
                      'gpu_uuid': row.get('gpu_uuid')})
    return procs


def describe_processes(procs):
    """'python3 (pid 12, GPU-...), pid 13 (name unknown)': each pid once, however many GPUs it uses."""
    seen = {}
    for proc in procs:
        seen.setdefault(proc['pid'], proc)
    parts = []
    for pid, proc in seen.items():
        parts.append('%s (pid %s)' % (proc['name'], pid) if proc.get('name') else 'pid %s (name not readable)' % pid)
    return ', '.join(parts)


def read_loaded_module_version(path=SYSFS_MODULE_VERSION):
    """Version of the nvidia kernel module loaded now, or None when it is not loaded."""
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


def cuda_toolkits(root=CUDA_ROOT):
    """CUDA toolkits installed side by side under /usr/local/cuda-X.Y, and which is the default."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    default = None
    link = os.path.join(root, 'cuda')
    if os.path.exists(link):
        default = os.path.realpath(link)
    found = []
    for name in names:
        if not re.match(r'^cuda-\d+\.\d+$', name):
            continue
        path = os.path.join(root, name)
        version = name.split('-', 1)[1]
        try:
            with open(os.path.join(path, 'version.json')) as handle:
                version = json.load(handle).get('cuda', {}).get('version', version)
        except (IOError, OSError, ValueError):
            pass
        found.append({'version': version, 'path': path, 'default': default == os.path.realpath(path)})
    found.sort(key=lambda item: version_tuple(item['version']))
    return found


# Minimum driver of each CUDA toolkit release on Linux x86_64 ("Toolkit Driver Version" of NVIDIA's
# CUDA release notes, GA releases). Minor-version compatibility lets 12.x run on >= 525.60.13 and
# 13.x on >= 580 with restrictions (no PTX JIT of newer code); CUDA_MINOR_COMPAT_MIN_DRIVER holds those.
CUDA_MIN_DRIVER = {
    '11.8': '520.61.05',
    '12.0': '525.60.13',
    '12.1': '530.30.02',
    '12.2': '535.54.03',
    '12.3': '545.23.06',
    '12.4': '550.54.14',
    '12.5': '555.42.02',
    '12.6': '560.28.03',
    '12.8': '570.26',
    '12.9': '575.51.03',
    '13.0': '580.65.06',
}
CUDA_MINOR_COMPAT_MIN_DRIVER = {'11': '450.80.02', '12': '525.60.13', '13': '580.65.06'}


def cuda_min_driver(cuda_version, minor_compat=False):
    """Lowest driver that runs a CUDA toolkit ('12.4.1' or '12.4'), None when the release is unknown."""
    parts = version_tuple(cuda_version)
    if len(parts) < 2:
        return None
    if minor_compat:
        return CUDA_MINOR_COMPAT_MIN_DRIVER.get(str(parts[0]))
    return CUDA_MIN_DRIVER.get('%d.%d' % parts[:2])


def driver_runs_cuda(driver_version, cuda_version, minor_compat=False):
    """True/False, or None when the CUDA release is not in the table."""
    minimum = cuda_min_driver(cuda_version, minor_compat)
    if minimum is None:
        return None
    return version_tuple(driver_version) >= version_tuple(minimum)


# Driver package sets by repository layout. {b} = branch, {open} = '-open' for the open kernel modules.
#   branch:      NVIDIA's CUDA repository for Ubuntu (branches before 590) and mirrors using its names
#   server:      Ubuntu's own archive (the -server branches, as NVIDIA's ansible role installs them)
#   unversioned: NVIDIA's CUDA repository for Ubuntu from branch 590 on (names without the branch;
#                the version alone selects the branch)
DRIVER_LAYOUTS = {
    'branch': {
        'packages': ['nvidia-driver-{b}{open}', 'nvidia-utils-{b}', 'libnvidia-compute-{b}', 'nvidia-kernel-common-{b}', 'nvidia-dkms-{b}{open}'],
        'fabricmanager': 'nvidia-fabricmanager-{b}',
    },
    'server': {
        'packages': ['nvidia-driver-{b}-server{open}', 'nvidia-utils-{b}-server', 'libnvidia-compute-{b}-server',
                     'nvidia-kernel-common-{b}-server', 'nvidia-dkms-{b}-server{open}'],
        'fabricmanager': 'nvidia-fabricmanager-{b}',
    },
    'unversioned': {
        'packages': ['nvidia-driver{open}', 'nvidia-utils', 'libnvidia-compute', 'nvidia-kernel-common', 'nvidia-dkms{open}'],
        'fabricmanager': 'nvidia-fabricmanager',
    },
    # RHEL family: the dnf module stream nvidia-driver:<branch>-dkms (or <branch>-open) selects the branch.
    'dnf': {
        'packages': ['nvidia-driver', 'nvidia-driver-cuda', 'nvidia-driver-libs', 'kmod-nvidia-{kmod}-dkms'],
        'fabricmanager': 'nvidia-fabric-manager',
    },
}
# Everything that makes up the NVIDIA stack on a host, held together so that unattended or OS
# upgrades cannot move one part of it.
STACK_PATTERNS = ['nvidia-*', 'libnvidia-*', 'cuda-drivers*', 'kmod-nvidia*']
# What gpu_info reports and cuda_toolkit reads the driver version from.
NVIDIA_PACKAGE_PATTERNS = ['nvidia-*', 'libnvidia-*', 'cuda-drivers*', 'cuda-toolkit-*', 'cuda-compat-*', 'xserver-xorg-video-nvidia*']


def default_layout(distribution, distribution_version, branch, manager=None):
    """Package layout to try first for a host and branch ('branch', 'unversioned', 'dnf').

    THE place where the package layout per OS is decided (the gpu_stack role passes `auto`): the package
    manager (_pkg.backend, detected once) tells the RHEL family from Debian / Ubuntu; without it the
    distribution's name does.
    """
    distribution = (distribution or '').lower()
    if manager == 'dnf' or (manager is None and distribution in ('redhat', 'rhel', 'centos', 'rocky', 'almalinux', 'oraclelinux', 'fedora')):
        return 'dnf'
    if distribution == 'ubuntu' and branch and int(branch) >= 590:
        return 'unversioned'
    return 'branch'


def layouts_to_try(distribution, distribution_version, branch, manager=None):
    """Layouts in the order `package_layout: auto` tries them: the default first, then the other apt layouts."""
    first = default_layout(distribution, distribution_version, branch, manager)
    if first == 'dnf':
        return ['dnf']
    return [first] + [layout for layout in ('branch', 'unversioned', 'server') if layout != first]


def driver_package_names(layout, branch, open_kernel=False, fabricmanager=False):
    """Package names of one driver branch in a layout."""
    spec = DRIVER_LAYOUTS[layout]
    names = [name.format(b=branch, open='-open' if open_kernel else '', kmod='open' if open_kernel else 'latest')
             for name in spec['packages']]
    if fabricmanager:
        names.append(spec['fabricmanager'].format(b=branch))
    return names


def dnf_module_stream(branch, open_kernel=False):
    """('nvidia-driver', '570-dkms') or ('nvidia-driver', '570-open')."""
    return 'nvidia-driver', '%s-%s' % (branch, 'open' if open_kernel else 'dkms')


# Oldest driver branch that supports each GPU architecture, and the last branch for the ones NVIDIA
# has retired (590 drops Maxwell, Pascal and Volta). The open kernel modules need Turing or newer.
ARCH_MIN_BRANCH = {'Maxwell': 346, 'Pascal': 375, 'Volta': 384, 'Turing': 410, 'Ampere': 450,
                   'Ada Lovelace': 520, 'Hopper': 520, 'Blackwell': 570}
ARCH_MAX_BRANCH = {'Maxwell': 580, 'Pascal': 580, 'Volta': 580}
OPEN_KERNEL_ARCHS = ('Turing', 'Ampere', 'Ada Lovelace', 'Hopper', 'Blackwell')


GPU_SUPPORTED = 'supported'
GPU_UNSUPPORTED = 'unsupported'
GPU_UNKNOWN = 'unknown'


def branch_gpu_support(branch, architecture, open_kernel=False):
    """(state, reason): GPU_SUPPORTED with None, GPU_UNSUPPORTED with the reason, or GPU_UNKNOWN with
    what is not known (an architecture that nvidia-smi does not print and the PCI table does not know).
    An unknown architecture is never "supported": the caller decides (nvidia_driver's allow_unknown_gpu)."""
    if not architecture or architecture not in ARCH_MIN_BRANCH:
        return GPU_UNKNOWN, 'the GPU architecture %s' % ('"%s" is not in the support table' % architecture if architecture else 'is not known')
    branch = int(branch)
    if branch < ARCH_MIN_BRANCH[architecture]:
        return GPU_UNSUPPORTED, 'driver branch %d is older than the first branch supporting %s GPUs (%d)' % (
            branch, architecture, ARCH_MIN_BRANCH[architecture])
    if architecture in ARCH_MAX_BRANCH and branch > ARCH_MAX_BRANCH[architecture]:
        return GPU_UNSUPPORTED, 'driver branch %d no longer supports %s GPUs (last: %d)' % (branch, architecture, ARCH_MAX_BRANCH[architecture])
    if open_kernel and architecture not in OPEN_KERNEL_ARCHS:
        return GPU_UNSUPPORTED, 'the open kernel modules do not support %s GPUs (Turing or newer needed)' % architecture
    return GPU_SUPPORTED, None


# Kernel modules of the driver, in the order they must be unloaded.
KERNEL_MODULES_UNLOAD_ORDER = ['nvidia_peermem', 'nvidia_drm', 'nvidia_modeset', 'nvidia_uvm', 'nvidia']
