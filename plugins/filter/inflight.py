# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that tell whether an inference engine still has requests in flight.

Documentation: prometheus_sum.yml, prometheus_reading.yml and tcp_busy.yml beside this file.
The rule they share: what cannot be read for sure is never read as "idle".
"""

from __future__ import annotations

import math
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - depends on the controller's Python
    text_string_to_metric_families = None

MISSING_LIBRARY = ('the prometheus-client Python package is needed on the Ansible controller (filters run there): '
                   'pip install prometheus-client')


def _names(metric):
    if isinstance(metric, string_types):
        names = [metric]
    elif isinstance(metric, (list, tuple)):
        names = list(metric)
    else:
        raise AnsibleFilterError('metric must be a metric name or a list of names, got %r' % (metric,))
    names = [to_text(name).strip() for name in names]
    if not names or not all(names):
        raise AnsibleFilterError('metric must name at least one metric, got %r' % (metric,))
    return names


def _read(text, metric):
    """Return (sum, None) or (None, why it cannot be told); raise only for a misuse of the filter."""
    names = _names(metric)
    if text_string_to_metric_families is None:
        raise AnsibleFilterError(MISSING_LIBRARY)
    if text is None:
        return None, 'no metrics text (nothing was read)'
    if not isinstance(text, string_types):
        raise AnsibleFilterError('prometheus text must be a string, got %s' % type(text).__name__)
    text = to_text(text)
    if not text.strip():
        return None, 'the metrics text is empty'
    found = []
    seen = []
    try:
        for family in text_string_to_metric_families(text):
            seen.append(family.name)
            for sample in family.samples:
                if sample.name in names:
                    found.append(sample)
    except Exception as exc:  # pylint: disable=broad-except
        # prometheus_client raises ValueError, and occasionally others (IndexError, KeyError) on odd input.
        return None, 'not valid Prometheus text exposition (%s: %s)' % (type(exc).__name__, _short(to_text(exc)))
    if not found:
        return None, '%s absent from the metrics (%d metric families there%s)' % (
            ' and '.join(names), len(seen), (': ' + ', '.join(seen[:8]) + (', ...' if len(seen) > 8 else '')) if seen else '')
    values = [float(sample.value) for sample in found]
    if any(math.isnan(value) for value in values):
        return None, '%s is NaN' % ' + '.join(names)
    return sum(values), None


def _short(message, limit=160):
    message = ' '.join(message.split())
    return message if len(message) <= limit else message[:limit] + '...'


def prometheus_sum(text, metric):
    """Sum of the samples of one or more metrics in Prometheus text; raise when that cannot be told."""
    value, error = _read(text, metric)
    if error is not None:
        raise AnsibleFilterError('prometheus_sum: ' + error)
    return value


def prometheus_reading(text, metric):
    """Like prometheus_sum, but never raises for the text: {'value': sum or None, 'error': why not or None}."""
    value, error = _read(text, metric)
    return {'value': value, 'error': error}


_SOCKET_LINE = re.compile(r'^(?P<recv_q>\d+)\s+(?P<send_q>\d+)\s+(?P<local>\S+)\s+(?P<peer>\S+)(?:\s.*)?$')
_INFO_FIELD = re.compile(r'(?:^|\s)(?P<key>lastsnd|lastrcv|bytes_sent|bytes_acked|bytes_received):(?P<value>\d+)')


def _busy(entry, idle_after_ms):
    """Why one established connection may carry a request, or None when it is an idle keep-alive connection."""
    info = entry['info']
    if entry['recv_q'] > 0:
        return '%d bytes of a request not read yet' % entry['recv_q']
    if entry['send_q'] > 0:
        return '%d bytes of an answer not acknowledged yet' % entry['send_q']
    if info is None:
        return 'no TCP info (ss -i) for this connection'
    sent = max(info.get('bytes_sent', 0), info.get('bytes_acked', 0))  # bytes_sent needs Linux 4.19
    lastsnd = info.get('lastsnd', 0)  # ss leaves out a field that is 0: 0 ms ago
    lastrcv = info.get('lastrcv', 0)
    if sent == 0:
        return 'nothing answered yet on this connection'
    if lastrcv < lastsnd:
        return 'a request came in %d ms ago and has no answer yet' % lastrcv
    if lastsnd < idle_after_ms:
        return 'the engine sent data %d ms ago' % lastsnd
    return None


def tcp_busy(text, idle_after=10):
    """Connections in `ss -H -t -i -n state established` output that may still carry a request.

    A connection is idle (keep-alive, left out) only when the engine spoke last, nothing is queued either way,
    and the engine sent nothing for idle_after seconds. Anything that cannot be read counts as busy.
    """
    if text is None:
        return [{'local': '', 'peer': '', 'reason': 'no ss output (nothing was read)'}]
    if not isinstance(text, string_types):
        raise AnsibleFilterError('tcp_busy: ss output must be a string, got %s' % type(text).__name__)
    try:
        idle_after_ms = float(idle_after) * 1000.0
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError('tcp_busy: idle_after must be a number of seconds, got %r' % (idle_after,)) from exc
    if idle_after_ms < 0:
        raise AnsibleFilterError('tcp_busy: idle_after must not be negative, got %r' % (idle_after,))
    entries = []
    busy = []
    for line in to_text(text).splitlines():
        if not line.strip():
            continue
        if line[:1].isspace():  # the TCP info line (-i) of the socket above
            if not entries or entries[-1]['info'] is not None:
                busy.append({'local': '', 'peer': '', 'reason': 'unexpected line in ss output: %s' % _short(line)})
                continue
            entries[-1]['info'] = dict((m.group('key'), int(m.group('value'))) for m in _INFO_FIELD.finditer(line))
            continue
        match = _SOCKET_LINE.match(line.strip())
        if not match:
            busy.append({'local': '', 'peer': '', 'reason': 'unexpected line in ss output: %s' % _short(line)})
            continue
        entries.append({'local': match.group('local'), 'peer': match.group('peer'),
                        'recv_q': int(match.group('recv_q')), 'send_q': int(match.group('send_q')), 'info': None})
    for entry in entries:
        reason = _busy(entry, idle_after_ms)
        if reason is not None:
            busy.append({'local': entry['local'], 'peer': entry['peer'], 'reason': reason})
    return busy


class FilterModule(object):
    """In-flight request filters."""

    def filters(self):
        return {
            'prometheus_sum': prometheus_sum,
            'prometheus_reading': prometheus_reading,
            'tcp_busy': tcp_busy,
        }
