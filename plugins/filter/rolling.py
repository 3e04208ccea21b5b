# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for rolling maintenance behind the gateway's HAProxy.

Documentation: litellm_haproxy_layout.yml, litellm_haproxy_targets.yml, haproxy_servers.yml,
haproxy_response_delta.yml and rollout_summary.yml beside this file.

LiteLLM's deployments of one model group point at one HAProxy backend on the gateway (loopback port), whose
servers are the GPU nodes: a node is drained and put back through HAProxy's runtime API, and LiteLLM never
restarts for it.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types
from ansible.module_utils.six.moves.urllib.parse import urlsplit

_NAME = re.compile(r'[^A-Za-z0-9_.-]')


def _slug(text):
    return _NAME.sub('_', to_text(text)) or '_'


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _routed(deployment):
    """(scheme, host, port, path) of a deployment HAProxy can route (plain http api_base), else None."""
    base = _mapping(deployment.get('litellm_params')).get('api_base')
    if not isinstance(base, string_types):
        return None
    parts = urlsplit(base)
    if parts.scheme != 'http' or not parts.hostname or parts.username or parts.password:
        return None
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise AnsibleFilterError('api_base %s has a bad port: %s' % (base, exc))
    host = parts.hostname if ':' not in parts.hostname else '[%s]' % parts.hostname
    return host, port, parts.path.rstrip('/')


def litellm_haproxy_layout(deployments, port_base=4100, weights=None, default_weight=100):
    """Group the plain-http deployments by model group into HAProxy backends on loopback ports.

    Returns {'backends': [...], 'deployments': [...]}: the backends to write into haproxy.cfg (name, port,
    model_name, servers with name/address/port/weight and the selectors that name them), and LiteLLM's
    deployments with each group replaced by one deployment whose api_base is its backend on 127.0.0.1.
    Deployments HAProxy does not route (https, no api_base, credentials in the URL) are kept as they are.
    """
    if not isinstance(deployments, list):
        raise AnsibleFilterError('deployments must be a list, got %s' % type(deployments).__name__)
    weights = _mapping(weights)
    groups = {}
    order = []
    out = []
    for index, deployment in enumerate(deployments):
        if not isinstance(deployment, dict):
            raise AnsibleFilterError('deployment %d is not a mapping' % index)
        routed = _routed(deployment)
        if routed is None:
            out.append(('keep', deployment))
            continue
        params = dict(_mapping(deployment.get('litellm_params')))
        api_base = params.pop('api_base')
        key = json.dumps([deployment.get('model_name'), routed[2], params], sort_keys=True, default=str)
        if key not in groups:
            groups[key] = {'model_name': deployment.get('model_name'), 'path': routed[2], 'first': deployment,
                           'servers': []}
            order.append(key)
            out.append(('group', key))
        info = _mapping(deployment.get('model_info'))
        name = _slug(info.get('id') or '%s_%s' % (routed[0], routed[1]))
        if name in [server['name'] for server in groups[key]['servers']]:
            raise AnsibleFilterError('two deployments of model group %s have the server name %s: give them distinct '
                                     'model_info.id values' % (deployment.get('model_name'), name))
        weight = weights.get(name, weights.get(info.get('id'), default_weight))
        try:
            weight = int(weight)
        except (TypeError, ValueError):
            raise AnsibleFilterError('the weight of %s must be an integer from 0 to 256, got %r' % (name, weight))
        if not 0 <= weight <= 256:
            raise AnsibleFilterError('the weight of %s must be an integer from 0 to 256, got %r' % (name, weight))
        selectors = [api_base, info.get('id'), '%s@%s' % (deployment.get('model_name'), api_base)]
        groups[key]['servers'].append({'name': name, 'address': routed[0], 'port': routed[1], 'weight': weight,
                                       'selectors': [s for s in selectors if s]})
    names = {}
    backends = {}
    for number, key in enumerate(sorted(order)):
        group = groups[key]
        base = 'model_' + _slug(group['model_name'])
        names[base] = names.get(base, 0) + 1
        backends[key] = {'name': base if names[base] == 1 else '%s_%d' % (base, names[base]),
                         'port': int(port_base) + number, 'model_name': group['model_name'],
                         'servers': group['servers']}
    result = []
    for kind, item in out:
        if kind == 'keep':
            result.append(item)
            continue
        backend = backends[item]
        deployment = copy.deepcopy(groups[item]['first'])
        deployment['litellm_params']['api_base'] = 'http://127.0.0.1:%d%s' % (backend['port'], groups[item]['path'])
        deployment['model_info'] = dict(_mapping(deployment.get('model_info')), id=backend['name'])
        result.append(deployment)
    return {'backends': [backends[key] for key in order], 'deployments': result}


def litellm_haproxy_targets(layout, selectors):
    """The (backend, server) pairs a node's selectors name in a layout; [] when none does."""
    if isinstance(selectors, string_types):
        selectors = [selectors]
    wanted = set(to_text(s) for s in (selectors or []) if s)
    targets = []
    for backend in _mapping(layout).get('backends', []):
        for server in backend['servers']:
            if wanted & set(server['selectors']) or server['name'] in wanted:
                targets.append({'backend': backend['name'], 'server': server['name']})
    return targets


def haproxy_servers(text):
    """HAProxy's stats CSV (show stat, or the stats page's ;csv) as one dict per server, by column name."""
    text = to_text(text or '').lstrip('# ')
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or 'pxname' not in rows[0] or 'status' not in rows[0]:
        raise AnsibleFilterError('not HAProxy stats CSV (no pxname/status columns): %r' % text[:80])
    return [{'backend': row['pxname'], 'server': row['svname'], 'status': row['status'],
             'sessions': int(row['scur']) if (row.get('scur') or '').isdigit() else None,
             'weight': int(row['weight']) if (row.get('weight') or '').isdigit() else None}
            for row in rows if row.get('svname') not in ('FRONTEND', 'BACKEND')]


HRSP_COLUMNS = ('hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other')


def _stats_rows(text):
    """Rows of HAProxy's stats CSV by column name; [] for no text; an error for text that is not that CSV."""
    text = re.sub(r'^# ', '', to_text(text or ''))
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and ('pxname' not in rows[0] or 'svname' not in rows[0]):
        raise AnsibleFilterError('not HAProxy stats CSV (no pxname/svname columns): %r' % text[:80])
    return rows


def _counter(row, column):
    """A counter of a stats row as an integer; 0 when empty, missing or not a number."""
    value = row.get(column)
    if not value:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def haproxy_response_delta(now, before, servers, error_columns):
    """{'errors', 'responses'}: how much the error_columns and all the responses (hrsp_*) of the servers
    ('backend/server') grew from the stats CSV `before` to the stats CSV `now` (a server missing before counts
    from 0)."""
    old = dict(((row.get('pxname'), row.get('svname')), row) for row in reversed(_stats_rows(before)))
    wanted = set(to_text(server) for server in servers or [])
    out = {'errors': 0, 'responses': 0}
    for row in _stats_rows(now):
        if '%s/%s' % (row.get('pxname'), row.get('svname')) not in wanted:
            continue
        past = old.get((row.get('pxname'), row.get('svname')), {})
        out['errors'] += sum(_counter(row, c) for c in error_columns or []) - sum(_counter(past, c) for c in error_columns or [])
        out['responses'] += sum(_counter(row, c) for c in HRSP_COLUMNS) - sum(_counter(past, c) for c in HRSP_COLUMNS)
    return out


class _Facts(object):
    """Read access to one host's variables (a dict in tests, HostVarsVars in a play)."""

    def __init__(self, facts):
        self._facts = facts

    def get(self, key, default=None):
        try:
            return self._facts[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return self.get(key, _Facts) is not _Facts


def haproxy_out_of_routing(text, targets):
    """True when any target (backend/server) is in maintenance or drain on this gateway, or cannot be read."""
    try:
        servers = haproxy_servers(text)
    except AnsibleFilterError:
        return True  # cannot tell: the rollout takes the careful path (warm-up, then undrain)
    states = dict(((s['backend'], s['server']), s['status']) for s in servers)
    for target in targets or []:
        status = states.get((target.get('backend'), target.get('server')))
        if status is None or status.startswith(('MAINT', 'DRAIN')):
            return True
    return False


def _timing(times):
    """', drained X s for Y s of its own work' from the timestamps the sequence records, '' when incomplete."""
    try:
        times = dict((key, float(value)) for key, value in _mapping(times).items())
        drained = times['undrained'] - times['drain']
        work = times['warm'] - times['work']
    except (KeyError, TypeError, ValueError):
        return ''
    return ', drained %.1f s for %.1f s of its own work (x%.2f)' % (drained, work, drained / work if work > 0 else 0)


def _short(component):
    return to_text(component).split('.')[-1]


def _changes_text(changes):
    """'3 changes (1 security): a 1 -> 2, b, ...' from the components' plan entries."""
    changes = [change for change in changes or [] if isinstance(change, dict)]
    if not changes:
        return ''
    security = len([change for change in changes if change.get('security')])
    names = ['%s %s -> %s' % (change.get('name'), change.get('from'), change.get('to'))
             if change.get('from') or change.get('to') else to_text(change.get('name')) for change in changes[:3]]
    more = ', ...' if len(changes) > 3 else ''
    return '%d change%s%s: %s%s' % (len(changes), '' if len(changes) == 1 else 's',
                                    ' (%d security)' % security if security else '', ', '.join(names), more)


def _error(hv):
    error = to_text(hv.get('rollout_error', 'failed'))
    return error if len(error) <= 200 else error[:197] + '...'


def _line(node, hv, check_mode):
    driver = _mapping(hv.get('gpu_stack_driver'))
    version = _mapping(driver.get('version'))
    where = hv.get('rollout_drained_on') or []
    drained = ' (left drained on %s)' % ', '.join(where) if where else ''
    times = hv.get('rollout_times')
    if hv.get('rollout_unreachable'):
        return '%s: UNREACHABLE during %s%s' % (node, hv.get('rollout_phase', 'the rollout'), drained)
    if hv.get('rollout_postponed'):
        return '%s: POSTPONED - %s' % (node, to_text(hv.get('rollout_postponed_reason', 'left for later')))
    if 'gpu_stack_rolled_back' in hv:
        return '%s: FAILED - %s did not verify, rolled back to %s%s' % (
            node, version.get('after'), driver.get('previous_version'), drained)
    if hv.get('rollout_failed'):
        rolled = hv.get('rollout_rolled_back') or []
        back = ' (rolled back: %s)' % ', '.join(_short(c) for c in rolled) if rolled else ''
        return '%s: FAILED - %s%s%s' % (node, _error(hv), back, drained)
    updated = [_short(c) for c in hv.get('rollout_updated') or []]
    others = [c for c in updated if c != 'gpu_stack']
    if version and driver.get('changed'):
        line = '%s: %s -> %s (%s), %s%s' % (node, version.get('before'), version.get('after'),
                                            'reboot' if driver.get('reboot_required') else 'module reload',
                                            'check mode: nothing changed' if check_mode else 'verified',
                                            _timing(times))
        if others:
            line += '; also updated %s' % ', '.join(others)
        return line
    if updated or (check_mode and hv.get('rollout_todo')):
        text = _changes_text(hv.get('rollout_changes'))
        return '%s: %s%s, %s%s' % (node, ', '.join(updated) or 'would update', ' (%s)' % text if text else '',
                                   'check mode: nothing changed' if check_mode else 'verified', _timing(times))
    undrained = hv.get('rollout_undrained_only')
    extra = ', put back into routing' if undrained else ', not drained'
    if version:
        return '%s: already on %s%s' % (node, version.get('after'), extra)
    if 'rollout_todo' in hv:
        return '%s: nothing to do%s' % (node, extra)
    return '%s: not reached, the rollout stopped' % node


def rollout_summary(hosts, hostvars, check_mode=False):
    """One line per node of a rolling run, from the facts the shared sequence and its components leave."""
    if isinstance(hosts, string_types) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('hosts must be a list of host names')
    lines = []
    for node in hosts:
        try:
            facts = hostvars[node]
        except KeyError:
            facts = {}
        lines.append(_line(node, _Facts(facts), check_mode))
    return lines


def _status(hv):
    if hv.get('rollout_unreachable'):
        return 'unreachable'
    if hv.get('rollout_postponed'):
        return 'postponed'
    if hv.get('rollout_failed'):
        return 'rolled_back' if hv.get('rollout_rolled_back') or 'gpu_stack_rolled_back' in hv else 'failed'
    if hv.get('rollout_updated'):
        return 'updated'
    if 'rollout_todo' in hv:
        return 'unchanged'
    return 'not_reached'


def rollout_record(hosts, hostvars):
    """The run's record per node (status, changes, updated components, times, error) for reports and AWX."""
    if isinstance(hosts, string_types) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('hosts must be a list of host names')
    record = []
    for node in hosts:
        try:
            hv = _Facts(hostvars[node])
        except KeyError:
            hv = _Facts({})
        times = {}
        for key, value in _mapping(hv.get('rollout_times')).items():
            try:
                times[key] = float(value)
            except (TypeError, ValueError):
                continue
        status = _status(hv)
        record.append({
            'host': node,
            'status': status,
            'changes': [change for change in hv.get('rollout_changes') or [] if isinstance(change, dict)],
            'updated': [_short(c) for c in hv.get('rollout_updated') or []],
            'rolled_back': [_short(c) for c in hv.get('rollout_rolled_back') or []],
            'drained_on': list(hv.get('rollout_drained_on') or []),
            'times': times,
            'error': _error(hv) if status in ('failed', 'rolled_back') else None,
            'phase': hv.get('rollout_phase') if status == 'unreachable' else None,
            'postponed_reason': to_text(hv.get('rollout_postponed_reason')) if status == 'postponed' else None,
        })
    return record


class FilterModule(object):
    """Rolling maintenance filters."""

    def filters(self):
        return {
            'litellm_haproxy_layout': litellm_haproxy_layout,
            'litellm_haproxy_targets': litellm_haproxy_targets,
            'haproxy_servers': haproxy_servers,
            'haproxy_out_of_routing': haproxy_out_of_routing,
            'haproxy_response_delta': haproxy_response_delta,
            'rollout_summary': rollout_summary,
            'rollout_record': rollout_record,
        }
