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


def default_layout(distribution, distribution_version, branch):
    """Package layout to try first for a distribution and branch ('branch', 'unversioned', 'dnf')."""
    distribution = (distribution or '').lower()
    if distribution in ('redhat', 'rhel', 'centos', 'rocky', 'almalinux', 'oraclelinux', 'fedora'):
        return 'dnf'
    if distribution == 'ubuntu' and branch and int(branch) >= 590:
        return 'unversioned'
    return 'branch'


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


def branch_supports_gpu(branch, architecture, open_kernel=False):
    """None when fine or unknown, else the reason the branch cannot drive this GPU architecture."""
    if not architecture or architecture not in ARCH_MIN_BRANCH:
        return None
    branch = int(branch)
    if branch < ARCH_MIN_BRANCH[architecture]:
        return 'driver branch %d is older than the first branch supporting %s GPUs (%d)' % (branch, architecture, ARCH_MIN_BRANCH[architecture])
    if architecture in ARCH_MAX_BRANCH and branch > ARCH_MAX_BRANCH[architecture]:
        return 'driver branch %d no longer supports %s GPUs (last: %d)' % (branch, architecture, ARCH_MAX_BRANCH[architecture])
    if open_kernel and architecture not in OPEN_KERNEL_ARCHS:
        return 'the open kernel modules do not support %s GPUs (Turing or newer needed)' % architecture
    return None


# Kernel modules of the driver, in the order they must be unloaded.
KERNEL_MODULES_UNLOAD_ORDER = ['nvidia_peermem', 'nvidia_drm', 'nvidia_modeset', 'nvidia_uvm', 'nvidia']
