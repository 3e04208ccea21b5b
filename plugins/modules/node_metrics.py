#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: node_metrics
short_description: Export GPU, driver, backup and DR drill facts as node-exporter textfile metrics
version_added: 0.1.0
description:
  - Writes what M(onprem_ai.maintenance.gpu_info) and the backup role know as Prometheus metrics into the directory of
    node_exporter's textfile collector (C(--collector.textfile.directory)), so that alert rules have data on nodes without
    the DCGM exporter - driver installed vs loaded, uncorrectable ECC errors, GPUs lost, backup age, DR drill RTO.
  - 'Metrics (gauges) - C(onprem_ai_nvidia_driver_info{installed,loaded}), C(onprem_ai_nvidia_driver_mismatch),
    C(onprem_ai_nvidia_smi_up), C(onprem_ai_nvidia_smi_state{state}), C(onprem_ai_gpus_seen), C(onprem_ai_gpus_expected),
    C(onprem_ai_gpu_ecc_uncorrected_errors{gpu,uuid,pci_bus_id,scope}), C(onprem_ai_backup_last_success_timestamp_seconds),
    C(onprem_ai_dr_drill_last_timestamp_seconds), C(onprem_ai_dr_drill_last_rto_seconds), C(onprem_ai_dr_drill_last_success),
    C(onprem_ai_metrics_unknown{metric,...}).'
  - Only the families of what is given are written. node_exporter merges every C(*.prom) file and a family must come
    from one file only - so the GPU facts and the backup facts go to two files (O(file_name)).
  - Unknown is never zero - a value that could not be read for sure (an ECC count of a GPU with ECC enabled, the
    mismatch) is left out and named by C(onprem_ai_metrics_unknown) instead, so an alert can fire on it.
  - The file is written atomically (a temporary file in the same directory, then a rename), mode 0644 - it holds no
    secret - and only when its content changes.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The file's text before and after.
options:
  textfile_dir:
    description:
      - node_exporter's textfile directory (Debian's C(prometheus-node-exporter) reads C(/var/lib/prometheus/node-exporter)).
        It must exist.
    type: path
    default: /var/lib/prometheus/node-exporter
  file_name:
    description:
      - Name of the file in O(textfile_dir), ending in C(.prom).
    type: str
    default: onprem_ai.prom
  gpu_info:
    description:
      - The registered result of M(onprem_ai.maintenance.gpu_info) on this node.
    type: dict
  gpus_expected:
    description:
      - How many GPUs the node should have (from the inventory); with O(gpu_info).
    type: int
  backup_last_success:
    description:
      - When the last successful backup ended - Unix seconds or an RFC 3339 time with a zone.
    type: str
  drill:
    description:
      - The last DR drill, as the backup role records it (an entry of C(dr_drill.json)) - C(started) (a time with a zone or
        Unix seconds), C(ok), C(rto_seconds). Other keys are ignored.
    type: dict
notes:
  - Runs on the node whose node_exporter reads the directory.
seealso:
  - module: onprem_ai.maintenance.gpu_info
'''

EXAMPLES = r'''
- name: GPU facts
  onprem_ai.maintenance.gpu_info:
  register: node_gpu_info

- name: Export them for the alert rules
  onprem_ai.maintenance.node_metrics:
    file_name: onprem_ai_gpu.prom
    gpu_info: "{{ node_gpu_info }}"
    gpus_expected: "{{ gpu_count_expected | default(omit) }}"

- name: Export the last DR drill (on the drill host)
  onprem_ai.maintenance.node_metrics:
    file_name: onprem_ai_backup.prom
    drill: "{{ backup_drill_entry }}"
    backup_last_success: "{{ now(utc=true).timestamp() }}"
'''

RETURN = r'''
path:
  description: The file written.
  returned: success
  type: str
  sample: /var/lib/prometheus/node-exporter/onprem_ai_gpu.prom
metrics:
  description: Names of the metric families written.
  returned: success
  type: list
  elements: str
unknown:
  description: What could not be read for sure - C(metric) and, for a GPU, C(gpu) and C(scope).
  returned: success
  type: list
  elements: dict
error_kind:
  description: On failure - C(options), C(unreadable) (O(gpu_info) is not a gpu_info result), C(write).
  returned: failure
  type: str
'''

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._metrics_textfile import families, render, write_textfile
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule

ARGUMENT_SPEC = dict(
    textfile_dir=dict(type='path', default='/var/lib/prometheus/node-exporter'),
    file_name=dict(type='str', default='onprem_ai.prom'),
    gpu_info=dict(type='dict'),
    gpus_expected=dict(type='int'),
    backup_last_success=dict(type='str'),
    drill=dict(type='dict'),
)


def main():
    module = OnpremModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        fams, unknown = families(params['gpu_info'], params['gpus_expected'], params['backup_last_success'], params['drill'])
        text = render(fams)
        changed, previous = write_textfile(params['textfile_dir'], params['file_name'], text, module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_json(**failure(exc, None, 'node_metrics'))
    path = '%s/%s' % (params['textfile_dir'].rstrip('/'), params['file_name'])
    result = dict(changed=changed, path=path, metrics=[f.name for f in fams if f.samples], unknown=unknown)
    if module._diff:
        result['diff'] = {'before': previous or '', 'after': text, 'before_header': path, 'after_header': path}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
