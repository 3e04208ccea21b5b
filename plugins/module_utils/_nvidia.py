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

# Where the running kernel reports the version of the loaded nvidia module.
SYSFS_MODULE_VERSION = '/sys/module/nvidia/version'
CUDA_ROOT = '/usr/local'

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


def _text(node, path, default=None):
    found = node.find(path)
    if found is None or found.text is None:
        return default
    value = found.text.strip()
    return default if value in ('', 'N/A') else value


def _mib(value):
    if value is None:
        return None
    match = _MIB_RE.match(value)
    return int(match.group(1)) if match else None


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_smi_xml(text):
    """Parse `nvidia-smi -q -x` output into plain data. Raises ValueError on bad XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError('nvidia-smi -q -x did not print valid XML: %s' % exc) from exc
    if root.tag != 'nvidia_smi_log':
        raise ValueError('unexpected nvidia-smi XML root element <%s>' % root.tag)
    gpus = []
    processes = []
    for index, gpu in enumerate(root.findall('gpu')):
        uuid = _text(gpu, 'uuid')
        ecc = {}
        for scope in ('volatile', 'aggregate'):
            counters = gpu.find('ecc_errors/%s' % scope)
            if counters is None:
                continue
            corrected = uncorrected = None
            for child in counters:
                value = _int((child.text or '').strip())
                if value is None:
                    continue
                if child.tag.endswith('uncorrectable') or child.tag in ('double_bit', 'total_uncorrectable'):
                    uncorrected = (uncorrected or 0) + value
                elif child.tag.endswith('correctable') or child.tag == 'single_bit':
                    corrected = (corrected or 0) + value
            ecc[scope] = {'corrected': corrected, 'uncorrected': uncorrected}
        gpus.append({
            'index': _int(_text(gpu, 'minor_number')) if _text(gpu, 'minor_number') is not None else index,
            'name': _text(gpu, 'product_name'),
            'uuid': uuid,
            'pci_bus_id': gpu.get('id') or _text(gpu, 'pci/pci_bus_id'),
            'serial': _text(gpu, 'serial'),
            'architecture': _text(gpu, 'product_architecture'),
            'vbios_version': _text(gpu, 'vbios_version'),
            'persistence_mode': _text(gpu, 'persistence_mode'),
            'memory_total_mib': _mib(_text(gpu, 'fb_memory_usage/total')),
            'memory_used_mib': _mib(_text(gpu, 'fb_memory_usage/used')),
            'ecc_mode': _text(gpu, 'ecc_mode/current_ecc'),
            'ecc_errors': ecc,
        })
        for proc in gpu.findall('processes/process_info'):
            processes.append({
                'pid': _int(_text(proc, 'pid')),
                'name': _text(proc, 'process_name'),
                'type': _text(proc, 'type'),
                'used_memory_mib': _mib(_text(proc, 'used_memory')),
                'gpu_uuid': uuid,
            })
    return {
        'driver_version': _text(root, 'driver_version'),
        'cuda_version': _text(root, 'cuda_version'),
        'attached_gpus': _int(_text(root, 'attached_gpus')),
        'gpus': gpus,
        'processes': processes,
    }


def parse_csv_query(text, fields):
    """Parse `--format=csv,noheader,nounits` output for the given field names."""
    rows = []
    for line in (text or '').splitlines():
        if not line.strip():
            continue
        values = [v.strip() for v in line.split(',')]
        if len(values) != len(fields):
            raise ValueError('expected %d columns, got %d in %r' % (len(fields), len(values), line))
        rows.append(dict(zip(fields, [None if v in ('[N/A]', 'N/A', '[Not Supported]') else v for v in values])))
    return rows


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
