# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What gpu_info and the backup role know, as node-exporter textfile-collector metrics, so that alert rules have data
on nodes without the DCGM exporter.

Entry points:
- `families(gpu_info=..., gpus_expected=..., backup_last_success=..., drill=...)` -> (families, unknown): the metric
  families (`Family`) of what was given, and what could not be read for sure (each also exported as
  `onprem_ai_metrics_unknown{metric=...} 1`: unknown is never zero - its sample is left out, never written as 0);
- `render(families)` -> the text exposition format 0.0.4 (HELP, TYPE, samples; no timestamps: the textfile collector
  refuses them), checked by tests/unit/plugins/module_utils/test_metrics_textfile.py with prometheus_client's parser;
- `write_textfile(directory, name, text)` -> whether the file changed: written atomically (a temporary file in the same
  directory, fsync, mode 0644 - the metrics hold no secret - rename), so node_exporter never reads half a file.
MetricsError (error_kind options / unreadable / write).

The metrics (all gauges; names follow the Prometheus conventions - base units, `_seconds`, `_timestamp_seconds`):
  onprem_ai_nvidia_driver_info{installed, loaded} 1      versions ('' when not installed / not loaded)
  onprem_ai_nvidia_driver_mismatch 0|1                   installed != loaded: a reload or reboot is pending
  onprem_ai_nvidia_smi_up 0|1 / _state{state} 1          nvidia-smi answered (its state: ok, driver_library_mismatch ...)
  onprem_ai_gpus_seen / onprem_ai_gpus_expected          GPUs nvidia-smi lists / the inventory's count
  onprem_ai_gpu_ecc_uncorrected_errors{gpu, uuid, pci_bus_id, scope=volatile|aggregate}
  onprem_ai_backup_last_success_timestamp_seconds        end of the last successful backup (Unix time)
  onprem_ai_dr_drill_last_timestamp_seconds / _last_rto_seconds / _last_success
  onprem_ai_metrics_unknown{metric, gpu} 1               a value that could not be read for sure
node_exporter merges every `*.prom` file of its directory; one family must come from one file only, so each source
(the GPU facts on a node, the backup role) writes its own file.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import tempfile

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

PREFIX = 'onprem_ai_'
NAME_RE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
FILE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.prom$')


class MetricsError(OnpremError):
    """The metrics could not be made or written (error_kind options / unreadable / write)."""

    error_kind = 'metrics'


class Family(object):
    """One metric family: name, help, type (gauge) and its samples [(labels dict, value)]."""

    def __init__(self, name, help_text, samples=None, kind='gauge'):
        if not NAME_RE.match(name):
            raise MetricsError('not a metric name: %r' % name, error_kind='options')
        self.name, self.help, self.kind = name, help_text, kind
        self.samples = list(samples or [])

    def add(self, value, **labels):
        self.samples.append((labels, value))
        return self


def _escape_label(value):
    return str(value).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _escape_help(text):
    return str(text).replace('\\', '\\\\').replace('\n', '\\n')


def _value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(value)


def render(fams):
    """The text exposition format of the families that have samples, in the order given."""
    lines = []
    seen = set()
    for fam in fams:
        if not fam.samples:
            continue
        if fam.name in seen:
            raise MetricsError('metric family %s given twice' % fam.name, error_kind='options')
        seen.add(fam.name)
        lines.append('# HELP %s %s' % (fam.name, _escape_help(fam.help)))
        lines.append('# TYPE %s %s' % (fam.name, fam.kind))
        for labels, value in fam.samples:
            for label in labels:
                if not LABEL_RE.match(label) or label.startswith('__'):
                    raise MetricsError('not a label name: %r' % label, error_kind='options')
            text = ','.join('%s="%s"' % (k, _escape_label(v)) for k, v in sorted(labels.items()))
            lines.append('%s%s %s' % (fam.name, '{%s}' % text if text else '', _value(value)))
    return '\n'.join(lines) + '\n' if lines else ''


def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def timestamp(value, what):
    """Unix seconds (a number, or a numeric text) or an RFC 3339 / ISO 8601 time with a zone -> float seconds."""
    if _number(value):
        return float(value)
    text = str(value if value is not None else '').strip()
    if re.match(r'^\d+(\.\d+)?$', text):
        return float(text)
    match = re.match(r'^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})$', text)
    if not match:
        raise MetricsError('%s is neither Unix seconds nor a time with a zone: %r' % (what, text[:60]), error_kind='options')
    day, clock, fraction, zone = match.groups()
    zone = '+00:00' if zone in ('Z', 'z') else (zone if ':' in zone else zone[:3] + ':' + zone[3:])
    try:
        moment = datetime.datetime.fromisoformat('%sT%s.%s%s' % (day, clock, (fraction or '0')[:6].ljust(6, '0'), zone))
    except ValueError as exc:
        raise MetricsError('%s is not a valid time: %r (%s)' % (what, text[:60], exc), error_kind='options') from None
    return moment.timestamp()


def _gpu_families(gpu_info, gpus_expected, unknown):
    if not isinstance(gpu_info, dict) or not isinstance(gpu_info.get('driver'), dict) \
            or not isinstance(gpu_info.get('gpus'), list):
        raise MetricsError('gpu_info is not a gpu_info result (it needs driver and gpus): give the registered result of'
                           ' onprem_ai.maintenance.gpu_info', error_kind='unreadable')
    driver = gpu_info['driver']
    info = Family(PREFIX + 'nvidia_driver_info', 'NVIDIA driver versions: installed packages and loaded kernel module'
                  ' (empty when not installed / not loaded).')
    info.add(1, installed=driver.get('installed_version') or '', loaded=driver.get('loaded_version') or '')
    mismatch = Family(PREFIX + 'nvidia_driver_mismatch', 'Installed and loaded NVIDIA driver differ (1): a reload or'
                      ' reboot is pending.')
    if isinstance(driver.get('mismatch'), bool):
        mismatch.add(driver['mismatch'])
    else:
        unknown.append({'metric': mismatch.name})
    smi = gpu_info.get('nvidia_smi') if isinstance(gpu_info.get('nvidia_smi'), dict) else {}
    state = smi.get('state')
    smi_up = Family(PREFIX + 'nvidia_smi_up', 'nvidia-smi answered with the GPU list (1).')
    smi_state = Family(PREFIX + 'nvidia_smi_state', 'State of the last nvidia-smi call (ok, not_installed,'
                       ' driver_not_loaded, driver_library_mismatch, no_devices, error).')
    if isinstance(state, str) and state:
        smi_up.add(state == 'ok')
        smi_state.add(1, state=state)
    else:
        unknown.append({'metric': smi_up.name})
    seen = Family(PREFIX + 'gpus_seen', 'GPUs listed by nvidia-smi.')
    if _number(gpu_info.get('gpu_count')):
        seen.add(int(gpu_info['gpu_count']))
    else:
        unknown.append({'metric': seen.name})
    expected = Family(PREFIX + 'gpus_expected', 'GPUs the inventory says this node has.')
    if gpus_expected is not None:
        if not _number(gpus_expected) or gpus_expected < 0 or int(gpus_expected) != gpus_expected:
            raise MetricsError('gpus_expected must be a whole number >= 0, got %r' % (gpus_expected,), error_kind='options')
        expected.add(int(gpus_expected))
    ecc = Family(PREFIX + 'gpu_ecc_uncorrected_errors', 'Uncorrectable ECC errors per GPU, volatile (since the driver'
                 ' was loaded) and aggregate (lifetime); absent where ECC is disabled or unsupported.')
    for position, gpu in enumerate(gpu_info['gpus']):
        if not isinstance(gpu, dict):
            raise MetricsError('gpu_info.gpus[%d] is not a GPU entry' % position, error_kind='unreadable')
        index = gpu.get('index')
        labels = {'gpu': str(index) if index is not None else '', 'uuid': gpu.get('uuid') or '',
                  'pci_bus_id': gpu.get('pci_bus_id') or ''}
        errors = gpu.get('ecc_errors') if isinstance(gpu.get('ecc_errors'), dict) else None
        enabled = gpu.get('ecc_mode') == 'Enabled'
        for scope in ('volatile', 'aggregate'):
            counts = errors.get(scope) if errors and isinstance(errors.get(scope), dict) else None
            count = counts.get('uncorrected') if counts else None
            if _number(count):
                ecc.add(int(count), scope=scope, **labels)
            elif enabled:  # ECC on but the count unreadable: unknown, never 0
                unknown.append({'metric': ecc.name, 'gpu': labels['gpu'] or labels['uuid'] or str(position),
                                'scope': scope})
    return [info, mismatch, smi_up, smi_state, seen, expected, ecc]


def _backup_families(backup_last_success, drill, unknown):
    fams = []
    if backup_last_success is not None:
        fams.append(Family(PREFIX + 'backup_last_success_timestamp_seconds', 'End of the last successful backup'
                           ' (Unix time).').add(timestamp(backup_last_success, 'backup_last_success')))
    if drill is not None:
        if not isinstance(drill, dict):
            raise MetricsError('drill must be a drill entry (started, ok, rto_seconds), got %s' % type(drill).__name__,
                               error_kind='options')
        when = Family(PREFIX + 'dr_drill_last_timestamp_seconds', 'Start of the last DR drill (Unix time).')
        rto = Family(PREFIX + 'dr_drill_last_rto_seconds', 'Recovery time of the last DR drill: from its start until'
                     ' the data was restored and verified.')
        success = Family(PREFIX + 'dr_drill_last_success', 'The last DR drill restored and verified its data (1).')
        if drill.get('started') is None:
            raise MetricsError('drill has no started time', error_kind='options')
        when.add(timestamp(drill['started'], 'drill.started'))
        ok = drill.get('ok')
        if isinstance(ok, str) and ok.lower() in ('true', 'false'):  # a set_fact of a template gives text
            ok = ok.lower() == 'true'
        if isinstance(ok, bool):
            success.add(ok)
        else:
            unknown.append({'metric': success.name})
        seconds = drill.get('rto_seconds')
        try:
            seconds = float(seconds) if seconds is not None and not isinstance(seconds, bool) else None
        except ValueError:
            seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            rto.add(seconds)
        elif ok is not False:  # a failed drill has no recovery time; otherwise it should
            unknown.append({'metric': rto.name})
        fams.extend([when, rto, success])
    return fams


def families(gpu_info=None, gpus_expected=None, backup_last_success=None, drill=None):
    """The families of what was given (nothing given: no family) and the unknown list ({metric, ...} dicts)."""
    if gpu_info is None and backup_last_success is None and drill is None:
        raise MetricsError('nothing to export: give gpu_info, backup_last_success or drill', error_kind='options')
    unknown = []
    fams = []
    if gpu_info is not None:
        fams.extend(_gpu_families(gpu_info, gpus_expected, unknown))
    elif gpus_expected is not None:
        raise MetricsError('gpus_expected needs gpu_info (the count seen)', error_kind='options')
    fams.extend(_backup_families(backup_last_success, drill, unknown))
    if unknown:
        fam = Family(PREFIX + 'metrics_unknown', 'A value this exporter could not read for sure (its sample is left out,'
                     ' never written as 0).')
        for item in unknown:
            fam.add(1, **item)
        fams.append(fam)
    return fams, unknown


def write_textfile(directory, name, text, check_mode=False):
    """Write `text` to directory/name atomically with mode 0644; (changed, previous text or None)."""
    if not isinstance(name, str) or not FILE_RE.match(name):
        raise MetricsError('file_name must be a file name ending in .prom (letters, digits, . _ -), got %r'
                           % str(name)[:60], error_kind='options')
    if not isinstance(directory, str) or not os.path.isabs(directory):
        raise MetricsError('textfile_dir must be an absolute path, got %r' % str(directory)[:200], error_kind='options')
    path = os.path.join(directory, name)
    try:
        with open(path, encoding='utf-8') as handle:
            previous = handle.read()
    except FileNotFoundError:
        previous = None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsError('cannot read %s: %s' % (path, exc), error_kind='unreadable') from None
    mode_ok = previous is None or (os.stat(path).st_mode & 0o7777) == 0o644
    if previous == text and mode_ok:
        return False, previous
    if check_mode:
        return True, previous
    if not os.path.isdir(directory):
        raise MetricsError('textfile_dir %s is not a directory (node_exporter --collector.textfile.directory)'
                           % directory, error_kind='write')
    tmp = None
    try:
        # node_exporter reads only *.prom: the temporary name ends otherwise
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise MetricsError('cannot write %s: %s' % (path, exc.strerror or exc), error_kind='write') from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return True, previous
