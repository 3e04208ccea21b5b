# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Gather the GPU / NVIDIA driver / CUDA state of one host (the logic of the gpu_info module).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia as nvidia
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _pkg as pkg
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

NVIDIA_PACKAGE_PATTERNS = nvidia.NVIDIA_PACKAGE_PATTERNS
_FABRICMANAGER_RE = re.compile(r'^nvidia-fabric-?manager(-\d+)?$')


class GpuInfoError(OnpremError):
    """The host's state cannot be read at all (not a state of the host: a failure)."""

    error_kind = 'unreadable'


# Upstream driver version from installed package versions, or None (one rule for gpu_info and the manifest).
installed_driver_version = manifest.installed_driver_version


def _fabric_manager(runner, packages):
    names = [name for name in packages if _FABRICMANAGER_RE.match(name)]
    if not names:
        return {'installed': False, 'version': None, 'active': None}
    state = None
    if runner.which('systemctl'):
        state = runner.run('systemctl', 'is_active unit', check=False, unit='nvidia-fabricmanager.service').out.strip() or None
    return {'installed': True, 'version': nvidia.upstream_version(packages[sorted(names)[0]]), 'active': state}


def unknowns(smi_state, gpus):
    """What could not be read for sure, one line each (the values concerned are null in the result)."""
    lines = []
    if smi_state not in (nvidia.SMI_OK, nvidia.SMI_NOT_INSTALLED, nvidia.SMI_NO_DEVICES, nvidia.SMI_NO_DRIVER):
        lines.append('nvidia-smi failed (%s): GPUs, ECC counts, MIG and GPU processes are not known' % smi_state)
    for gpu in gpus:
        label = 'GPU %s (%s)' % (gpu['index'] if gpu['index'] is not None else '?', gpu['pci_bus_id'])
        if gpu['index'] is None:
            lines.append('%s: index (nvidia-smi listed %s)' % (label, 'fewer GPUs than are attached'))
        if gpu['architecture'] is None:
            lines.append('%s: architecture (not printed by nvidia-smi, PCI device id %s not in the table)' % (label, gpu['pci_device_id']))
        if gpu['ecc_mode'] == 'Enabled' and gpu['ecc_errors']['volatile']['uncorrected'] is None:
            lines.append('%s: uncorrectable ECC count (ECC is enabled)' % label)
    return lines


def gather(runner, sysfs_version_path=None, cuda_root=None):
    """Everything gpu_info reports. Never changes the host. Raises GpuInfoError when packages cannot be read."""
    sysfs_version_path = sysfs_version_path or nvidia.SYSFS_MODULE_VERSION
    cuda_root = cuda_root or nvidia.CUDA_ROOT
    backend = pkg.backend(runner, required=False)
    try:
        packages = backend.installed(NVIDIA_PACKAGE_PATTERNS) if backend else {}
    except pkg.PackageQueryError as exc:
        raise GpuInfoError(exc.msg, **exc.details) from exc
    installed = installed_driver_version(packages)
    loaded = nvidia.read_loaded_module_version(sysfs_version_path)

    smi = {'path': runner.which('nvidia-smi'), 'state': nvidia.SMI_NOT_INSTALLED, 'rc': None, 'message': None, 'dtd': None,
           'attached_gpus': None}
    parsed = {'driver_version': None, 'cuda_version': None, 'gpus': [], 'processes': [], 'dtd': None}
    library_version = None
    if smi['path']:
        rc, out, err = runner.run('nvidia-smi', 'xml', check=False)
        smi['rc'] = rc
        if rc == 0:
            try:
                parsed = nvidia.parse_smi_xml(out)
                smi['state'] = nvidia.SMI_OK if parsed['gpus'] else nvidia.SMI_NO_DEVICES
                smi['dtd'] = parsed['dtd']
                smi['attached_gpus'] = parsed['attached_gpus']
            except nvidia.SmiUnreadable as exc:
                smi['state'] = nvidia.SMI_ERROR
                smi['message'] = str(exc)
        else:
            smi['state'] = nvidia.classify_smi_failure(rc, out, err)
            smi['message'] = (err or out).strip() or None
            library_version = nvidia.nvml_library_version('%s\n%s' % (out, err))

    mismatch = bool(loaded and installed and loaded != installed) or smi['state'] == nvidia.SMI_MISMATCH
    gpus = parsed['gpus']
    if smi['state'] == nvidia.SMI_OK:
        reason = None
    elif smi['state'] == nvidia.SMI_NOT_INSTALLED and not loaded:
        reason = 'no NVIDIA driver installed (nvidia-smi not found, nvidia module not loaded)'
    elif smi['state'] == nvidia.SMI_NO_DEVICES:
        reason = 'the NVIDIA driver finds no GPU on this host'
    else:
        reason = smi['message'] or smi['state']
    if mismatch:
        reboot_reason = 'installed driver %s differs from the loaded kernel module %s' % (installed or library_version, loaded)
    else:
        reboot_reason = None
    if smi['state'] == nvidia.SMI_OK:
        processes = parsed['processes']
    elif smi['state'] in (nvidia.SMI_NOT_INSTALLED, nvidia.SMI_NO_DEVICES, nvidia.SMI_NO_DRIVER) and not loaded:
        processes = []  # no nvidia module loaded: nothing can run on a GPU
    else:
        processes = None  # nvidia-smi cannot tell: unknown, never "none"
    return {
        'gpus_present': bool(gpus),
        'gpu_count': len(gpus),
        'reason': reason,
        'gpus': gpus,
        'ecc_problems': nvidia.ecc_problems(gpus),
        'mig_enabled': [g['index'] for g in gpus if g['mig']['current'] == 'Enabled' or g['mig']['pending'] == 'Enabled'],
        'unknown': unknowns(smi['state'], gpus),
        'driver': {
            'installed_version': installed,
            'loaded_version': loaded,
            'smi_version': parsed['driver_version'],
            'branch': nvidia.branch_of(installed or loaded),
            'max_cuda_version': parsed['cuda_version'],
            'mismatch': mismatch,
            'reload_or_reboot_required': mismatch,
            'reload_or_reboot_reason': reboot_reason,
        },
        'nvidia_smi': smi,
        'packages': packages,
        'cuda_toolkits': nvidia.cuda_toolkits(cuda_root),
        'fabric_manager': _fabric_manager(runner, packages),
        'processes': processes,
    }
