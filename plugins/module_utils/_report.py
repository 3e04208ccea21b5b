# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The change notice (Markdown, HTML, .ics) and the run report (Markdown, HTML with a timeline, JSON).

Pure functions of the data the playbooks collect (docs/maintenance-run.md describes it): `notice(data)`
and `report(data)` return {file name: text}; `history_entry()` / `write()` keep the report history.
The HTML timeline is an inline SVG drawn here: one row per node, coloured by what it did when
(serving, draining, out of service for its update, warming up, failed), from the per-node timestamps
the rolling sequence records ({drain, work, upgraded, warm, undrained}, epoch seconds).

Every file is written 0644: nothing here may hold a secret, so data with a key that names one
(password, token, secret, api_key, ...) and a value is refused before anything is written.

Standard library only. PRIVATE to the onprem_ai.maintenance collection: no compatibility promise.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _ical as ical
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state

UTC = _dt.timezone.utc
SECRET_KEY = re.compile(r'(passw|secret|token$|api_?key|private_?key|credential|authorization)', re.IGNORECASE)
STATUSES = ('updated', 'unchanged', 'rolled_back', 'failed', 'unreachable', 'postponed', 'not_reached', 'check_mode')
LEFT_STATUSES = ('postponed', 'not_reached')
PHASES = (  # (name, from key, to key, colour, label)
    ('draining', 'drain', 'work', '#f0ad4e', 'draining (out of routing, requests finishing)'),
    ('updating', 'work', 'warm', '#6c757d', 'out of service: update, reboot, verify'),
    ('warming', 'warm', 'undrained', '#5bc0de', 'warm-up and back into routing'),
)
SERVING = '#5cb85c'
FAILED = '#d9534f'
LEFT = '#c8e6c9'


class ReportError(OnpremError):
    """Report data that cannot be rendered or written; the message names the field."""

    error_kind = 'invalid'


# ----- small helpers -----------------------------------------------------------------------------------------------

def check_no_secrets(value, path='data'):
    """Refuse data that would put a secret into a 0644 file (a key naming one, with a non-empty value)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == 'invocation':  # Ansible's record of a module's arguments (no_log values masked): not rendered
                continue
            if SECRET_KEY.search(str(key)) and item not in (None, '', [], {}, False):
                raise ReportError('%s.%s: the notice and report files are 0644 and must not hold secrets; leave this '
                                  'key out of the data' % (path, key))
            check_no_secrets(item, '%s.%s' % (path, key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_no_secrets(item, '%s[%d]' % (path, i))


def secret_values(value, under_secret=False):
    """Every string under a secret-named key of `value`: what a failure message must mask."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in secret_values(item, under_secret or bool(SECRET_KEY.search(str(key))))]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in secret_values(item, under_secret)]
    if under_secret and value is not None and not isinstance(value, bool) and str(value).strip():
        return [str(value), str(value).strip()]
    return []


def _epoch(value):
    if value in (None, ''):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        text = str(value).strip()
        parsed = _dt.datetime.fromisoformat(text[:-1] + '+00:00' if text.endswith('Z') else text)
    except ValueError:
        raise ReportError('%r is not a time (epoch seconds or ISO 8601 with an offset)' % (value,)) from None
    if parsed.tzinfo is None:
        raise ReportError('%r has no UTC offset' % (value,))
    return parsed.timestamp()


def _iso(epoch):
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(epoch, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _hms(epoch):
    return _dt.datetime.fromtimestamp(epoch, UTC).strftime('%H:%M:%S')


def _secs(value):
    if value is None:
        return 'unknown'
    value = int(round(value))
    if value >= 3600:
        return '%dh %02dm' % (value // 3600, value % 3600 // 60)
    if value >= 60:
        return '%dm %02ds' % (value // 60, value % 60)
    return '%ds' % value


def _md(text):
    return str('' if text is None else text).replace('|', '\\|').replace('\n', ' ')


def _h(text):
    return html.escape(str('' if text is None else text))


def _table_md(headers, rows):
    lines = ['| %s |' % ' | '.join(headers), '| %s |' % ' | '.join(['---'] * len(headers))]
    lines.extend('| %s |' % ' | '.join(_md(cell) for cell in row) for row in rows)
    return lines


def _table_html(headers, rows, classes=None):
    out = ['<table>', '<tr>%s</tr>' % ''.join('<th>%s</th>' % _h(h) for h in headers)]
    for i, row in enumerate(rows):
        cls = (classes or [None] * len(rows))[i]
        out.append('<tr%s>%s</tr>' % (' class="%s"' % cls if cls else '', ''.join('<td>%s</td>' % _h(c) for c in row)))
    out.append('</table>')
    return '\n'.join(out)


STYLE = ('body{font-family:sans-serif;max-width:72em;margin:1em auto;color:#222}table{border-collapse:collapse;margin:.5em 0}'
         'td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}'
         'tr.bad td{background:#fdecea}tr.warn td{background:#fff8e1}.risk-high{color:#b71c1c;font-weight:bold}')


def _page(title, body):
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>%s</title><style>%s</style></head>\n'
            '<body>\n%s\n</body></html>\n' % (_h(title), STYLE, body))


def _md_to_html(lines):
    """The small Markdown subset this module writes (headings, bullets, tables, paragraphs) as HTML."""
    out, table, bullets = [], [], False
    for line in lines + ['']:
        if line.startswith('|'):
            cells = [c.strip().replace('\\|', '|') for c in re.split(r'(?<!\\)\|', line.strip())[1:-1]]
            if not all(set(c) <= {'-'} and c for c in cells):
                table.append(cells)
            continue
        if table:
            out.append(_table_html(table[0], table[1:]))
            table = []
        if line.startswith('- '):
            if not bullets:
                out.append('<ul>')
                bullets = True
            out.append('<li>%s</li>' % _h(line[2:]))
            continue
        if bullets:
            out.append('</ul>')
            bullets = False
        match = re.match(r'^(#{1,4}) (.*)$', line)
        if match:
            out.append('<h%d>%s</h%d>' % (len(match.group(1)), _h(match.group(2)), len(match.group(1))))
        elif line.strip():
            out.append('<p>%s</p>' % _h(line))
    return '\n'.join(out)


# ----- the change notice -------------------------------------------------------------------------------------------

RISK_ORDER = ('none', 'low', 'medium', 'high')


def _notice_rows(hosts):
    rows = []
    for host in sorted(hosts):
        for change in (hosts[host] or {}).get('changes') or []:
            state_text = 'blocked' if change.get('blocked') else 'postponed' if change.get('postponed') else \
                'critical' if change.get('critical') else 'planned'
            rows.append([host, change.get('component'), change.get('name'),
                         '%s -> %s' % (change.get('from') or '(new)', change.get('to')), change.get('risk'),
                         'yes' if change.get('reboot') else 'no',
                         ', '.join(a.get('id', '') if isinstance(a, dict) else str(a)
                                   for a in change.get('advisories') or []) or ('security' if change.get('security') else ''),
                         state_text])
    return rows


def notice_summary(data):
    hosts = data.get('hosts') or {}
    plans = [p for p in hosts.values() if isinstance(p, dict)]
    risk = max((p.get('risk', 'none') for p in plans), key=lambda r: RISK_ORDER.index(r) if r in RISK_ORDER else 3,
               default='none')
    reboot = any(p.get('reboot') for p in plans)
    users = max((p.get('downtime', {}).get('users_seconds', 0) for p in plans), default=0)
    node = max((p.get('downtime', {}).get('node_seconds', 0) for p in plans), default=0)
    emergency = any(p.get('path') == 'emergency' for p in plans)
    pending = [h for h in sorted(hosts) if (hosts[h] or {}).get('pending')]
    return {'risk': risk, 'reboot': reboot, 'users_seconds': users, 'node_seconds': node, 'emergency': emergency,
            'hosts_pending': pending, 'hosts': len(hosts)}


def notice(data, dtstamp=None):
    """{'notice.md', 'notice.html', 'notice.ics'} from the plan: data = {title, run, window, hosts: {host: plan},
    contact, postpone, strategy_text, sequence}. The window is a window dict of window_status (next / upcoming)."""
    check_no_secrets(data)
    if not isinstance(data.get('hosts'), dict):
        raise ReportError('hosts: the plan of each host ({host: update_plan result}) is needed')
    window = data.get('window')
    title = data.get('title') or 'Planned maintenance: %s' % (data.get('run') or 'maintenance run')
    summary = notice_summary(data)
    users = 'none expected (nodes are updated one at a time behind the gateway)' if summary['users_seconds'] == 0 \
        else 'up to %s per node' % _secs(summary['users_seconds'])
    lines = ['# %s' % title, '']
    if window:
        lines.append('When: %s to %s (%s)' % (window.get('start_local') or window.get('start'),
                                              window.get('end_local') or window.get('end'), window.get('timezone') or 'UTC'))
    else:
        lines.append('When: no maintenance window is open in the calendar; the run waits for one.')
    lines += ['',
              '- Risk: %s' % summary['risk'],
              '- Reboot: %s' % ('yes, node by node' if summary['reboot'] else 'no'),
              '- Downtime for users: %s' % users,
              '- Downtime per node (out of routing): about %s' % _secs(summary['node_seconds']),
              '- Nodes with pending changes: %d of %d (%s)' % (
                  len(summary['hosts_pending']), summary['hosts'], ', '.join(summary['hosts_pending']) or 'none')]
    if summary['emergency']:
        lines.append('- CRITICAL security updates: they go ahead on the emergency path, not in this window')
    lines += ['', '## What changes', '']
    rows = _notice_rows(data['hosts'])
    lines += _table_md(['host', 'component', 'package', 'version', 'risk', 'reboot', 'security', 'state'], rows) \
        if rows else ['Nothing to change.']
    vulns = [(h, v) for h in sorted(data['hosts']) for v in (data['hosts'][h] or {}).get('vulnerabilities') or []]
    if vulns:
        lines += ['', '## Known vulnerabilities fixed', '']
        lines += _table_md(['host', 'package', 'installed', 'advisory', 'severity', 'fixed in'],
                           [[h, v['package'], v['version'], ' '.join([v['id']] + list(v.get('aliases') or [])),
                             v['severity'], v.get('fixed') or 'no fix yet'] for h, v in vulns])
    recs = [(h, r) for h in sorted(data['hosts']) for r in (data['hosts'][h] or {}).get('recommendations') or []]
    if recs:
        lines += ['', '## Proactive maintenance (drift, housekeeping, tuning)', '']
        lines += _table_md(['host', 'check', 'finding', 'recommendation'],
                           [[h, r.get('check'), r.get('finding'), r.get('recommendation') or 'find out: it cannot be read']
                            for h, r in recs])
    # maint (issue 17 housekeeping): what the window's run may remove; never the current or the previous version
    cleanup = [(h, c) for h in sorted(data['hosts']) for c in (data['hosts'][h] or {}).get('cleanup') or []]
    if cleanup:
        lines += ['', '## Cleaned up in the window', '']
        lines += _table_md(['host', 'what', 'why'], [[h, c.get('path') or c.get('image'), c.get('reason')] for h, c in cleanup])
    lines += ['', '## Postponing and contact', '',
              data.get('postpone') or 'Non-critical changes can be postponed to the next window: ask the team before '
                                      'the window opens. Critical security updates cannot be postponed.',
              '', 'Contact: %s' % (data.get('contact') or 'the maintenance team')]
    md = '\n'.join(lines) + '\n'
    files = {'notice.md': md, 'notice.html': _page(title, _md_to_html(lines))}
    if window:
        description = '\n'.join([l for l in lines[2:] if not l.startswith('|')][:12])
        files['notice.ics'] = ical.render([{
            'start': window.get('start'), 'end': window.get('end'), 'timezone': window.get('timezone'),
            'name': window.get('name'), 'summary': title, 'description': description,
            'sequence': data.get('sequence'), 'organizer': data.get('organizer'), 'url': data.get('url')}],
            dtstamp=dtstamp)
    return files


# ----- the run report ----------------------------------------------------------------------------------------------

def validation_of(result):
    """{passed, checks, performance: {before, after}} from an inference_check result (registered, maybe failed)."""
    if not isinstance(result, dict) or result.get('skipped'):
        return {}
    baseline = result.get('baseline') or {}
    return {'passed': bool(result.get('passed', not result.get('failed'))),
            'checks': [{'name': c.get('name'), 'passed': c.get('passed'), 'reason': c.get('reason')}
                       for c in result.get('checks') or [] if isinstance(c, dict)],
            'performance': {'before': baseline.get('figures') or {}, 'after': result.get('figures') or {}}}


def _components(raw):
    """The host's changes: `components`, or the `changes` of the rollout record with its `rolled_back` roles."""
    if raw.get('components') is not None:
        return list(raw['components'])
    rolled = set(str(c).rsplit('.', maxsplit=1)[-1] for c in raw.get('rolled_back') or [])
    out = []
    for change in raw.get('changes') or []:
        if isinstance(change, dict):
            item = dict(change)
            item['rolled_back'] = str(change.get('component', '')).rsplit('.', maxsplit=1)[-1] in rolled
            out.append(item)
    return out


def _host(raw, index, validation=None):
    if not isinstance(raw, dict) or not raw.get('host'):
        raise ReportError('hosts[%d]: {host, status, ...} is needed' % index)
    status = raw.get('status') or 'not_reached'
    if status not in STATUSES:
        raise ReportError('hosts[%d].status: %r is not one of %s' % (index, status, ', '.join(STATUSES)))
    times = {}
    for key, value in (raw.get('times') or {}).items():
        times[key] = _epoch(value)
    host = dict(raw)
    host.update({'status': status, 'times': times, 'components': _components(raw),
                 'validation': raw.get('validation') or validation_of((validation or {}).get(raw['host']))})
    if not host.get('error'):
        if status == 'postponed':
            host['error'] = raw.get('postponed_reason') or 'left for the next window'
        elif status == 'unreachable':
            host['error'] = 'stopped answering during %s' % (raw.get('phase') or 'the run')
    if times.get('drain') is not None and times.get('undrained') is not None:
        host['drained_seconds'] = round(times['undrained'] - times['drain'], 1)
    if times.get('work') is not None and times.get('warm') is not None:
        host['work_seconds'] = round(times['warm'] - times['work'], 1)
    return host


def normalise_report(data):
    """The report data with hosts checked, times as epoch seconds, the outcome and counts worked out."""
    run = dict(data.get('run') or {})
    hosts = [_host(h, i, data.get('validation')) for i, h in enumerate(data.get('hosts') or [])]
    if not hosts:
        raise ReportError('hosts: no host in the report')
    started = _epoch(run.get('started'))
    finished = _epoch(run.get('finished'))
    stamps = [t for h in hosts for t in h['times'].values() if t is not None]
    if started is None:
        started = min(stamps) if stamps else None
    if finished is None:
        finished = max(stamps) if stamps else started
    counts = dict((s, sum(1 for h in hosts if h['status'] == s)) for s in STATUSES)
    left = [h['host'] for h in hosts if h['status'] in LEFT_STATUSES]
    bad = counts['failed'] + counts['rolled_back'] + counts['unreachable']
    if bad:
        outcome = 'failed'
    elif left:
        outcome = 'stopped'
    elif run.get('check_mode'):
        outcome = 'check_mode'
    else:
        outcome = 'completed'
    if not run.get('stopped'):
        broken = [h for h in hosts if h['status'] in ('failed', 'rolled_back', 'unreachable')]
        if broken:
            run['stopped'] = '%s %s (%s): no further node was started' % (
                broken[0]['host'], broken[0]['status'].replace('_', ' '), broken[0].get('error') or 'no message')
        elif left:
            reasons = [h.get('error') for h in hosts if h['status'] == 'postponed' and h.get('error')]
            run['stopped'] = reasons[0] if reasons else 'nodes were not reached'
    run.update({'started': _iso(started), 'finished': _iso(finished), 'started_epoch': started,
                'finished_epoch': finished,
                'duration_seconds': round(finished - started, 1) if started is not None and finished is not None else None,
                'outcome': outcome})
    failed_requests = data.get('failed_requests')
    if isinstance(failed_requests, dict) and 'phases' in failed_requests:  # maint: a load client's raw counts
        failed_requests = failed_requests_from_client(failed_requests, failed_requests.get('source'))
    norm = {'run': run, 'hosts': hosts, 'counts': counts, 'left_for_next_window': left,
            'failed_requests': failed_requests, 'postponed': list(data.get('postponed') or []),
            # maint (issue 17 housekeeping): what the window's run removed
            'cleaned': [str(c) for c in data.get('cleaned') or []],
            'rolled_back': [{'host': h['host'], 'why': h.get('error') or 'validation failed'}
                            for h in hosts if h['status'] == 'rolled_back'],
            'summary': summary_lines({'run': run, 'hosts': hosts, 'left': left, 'failed_requests': failed_requests})}
    norm.update(monitoring_data(data))  # the live probe and Prometheus sections (monitoring, issue 18)
    check_no_secrets(norm)  # what is written: the raw validation results (their module arguments) are not
    return norm


def _versions(host):
    parts = []
    for comp in host['components']:
        text = '%s %s -> %s' % (comp.get('name') or comp.get('component'), comp.get('from'), comp.get('to'))
        if comp.get('rolled_back'):
            text += ' (rolled back to %s)' % comp.get('from')
        parts.append(text)
    return '; '.join(parts)


def _host_line(host):
    status = host['status']
    text = '%s: %s' % (host['host'], status.replace('_', ' '))
    versions = _versions(host)
    if versions:
        text += ' - ' + versions
    if host.get('drained_seconds') is not None:
        text += ', out of routing %s' % _secs(host['drained_seconds'])
    if status in LEFT_STATUSES:
        text += ' - left for the next window'
    if host.get('error') and status in ('failed', 'rolled_back', 'unreachable', 'postponed'):
        text += ' - %s' % host['error']
    return text


def failed_requests_from_client(counts, source=None):
    """maint (issue 17): a load client's counts ({phases: {phase: {requests, failed, truncated, ...}}}, as the lab's
    tests/lab/load_client/gateway_load.py --live writes them) -> {count, total, source, phases}: a failed or a
    truncated answer counts as failed. Counts that cannot be read are unknown (count null), never 0."""
    phases = counts.get('phases') if isinstance(counts, dict) else None
    if not isinstance(phases, dict):
        return {'count': None, 'source': source or 'client counts', 'error': 'no phases in the client counts'}
    try:
        per = dict((str(name), {'requests': int(v.get('requests', 0)),
                                'failed': int(v.get('failed', 0)) + int(v.get('truncated', 0))})
                   for name, v in phases.items())
    except (AttributeError, TypeError, ValueError):
        return {'count': None, 'source': source or 'client counts', 'error': 'the client counts are not numbers'}
    return {'count': sum(v['failed'] for v in per.values()), 'total': sum(v['requests'] for v in per.values()),
            'source': source or counts.get('source') or 'client-side', 'phases': per}


def _failed_requests_text(value):
    if value is None:
        return 'unknown (no client-side count was given)'
    if isinstance(value, dict):
        if value.get('count') is None:
            return 'unknown (%s)' % (value.get('source') or 'no count')
        return '%s of %s%s' % (value['count'], value.get('total', '?'),
                               ' (%s)' % value['source'] if value.get('source') else '')
    return str(value)


def summary_lines(norm):
    run, hosts = norm['run'], norm['hosts']
    outcome = run['outcome'].upper().replace('_', ' ')
    done = sum(1 for h in hosts if h['status'] in ('updated', 'unchanged'))
    head = 'Maintenance run %s (%s): %s - %d of %d nodes done' % (
        run.get('name') or '', run.get('kind') or 'run', outcome, done, len(hosts))
    if norm['left']:
        head += ', %d %s (%s)' % (len(norm['left']), 'not reached after the failure' if run['outcome'] == 'failed'
                                  else 'left for the next window', ', '.join(norm['left']))
    lines = [head]
    if run.get('stopped'):
        lines.append('stopped: %s' % run['stopped'])
    if run.get('emergency'):
        lines.append('emergency run: %s' % (run.get('emergency_reason') or 'no reason recorded'))
    lines.extend('  ' + _host_line(h) for h in hosts)
    lines.append('failed requests during the run: %s' % _failed_requests_text(norm['failed_requests']))
    return lines


def timeline_svg(norm, width=900):
    """An inline SVG: one row per node; serving, draining, out of service, warm-up, failed; time axis in UTC."""
    hosts = norm['hosts']
    t0, t1 = norm['run']['started_epoch'], norm['run']['finished_epoch']
    if t0 is None or t1 is None or t1 <= t0:
        stamps = [t for h in hosts for t in h['times'].values() if t is not None]
        if not stamps:
            return '<p>No timestamps were recorded: no timeline.</p>'
        t0, t1 = min(stamps + [t0 or min(stamps)]), max(stamps + [t1 or max(stamps)])
        if t1 <= t0:
            t1 = t0 + 1
    left, right, row, top = 140, 20, 26, 24
    plot = width - left - right
    height = top + row * len(hosts) + 70

    def x(t):
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * plot

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
           'aria-label="timeline of the run" font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<title>Which node served when</title>']
    for i in range(6):
        t = t0 + (t1 - t0) * i / 5
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x(t), top - 6, x(t), top + row * len(hosts)))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>' % (x(t), top - 10, _hms(t)))
    for n, host in enumerate(hosts):
        y = top + n * row
        times = host['times']
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 16, _h(host['host'])))
        cursor = t0
        segments = []
        first = times.get('drain')
        if host['status'] in LEFT_STATUSES or first is None:
            colour = LEFT if host['status'] in LEFT_STATUSES else SERVING
            label = 'serving; left for the next window' if host['status'] in LEFT_STATUSES else 'serving'
            if host['status'] in ('failed', 'unreachable') and first is None:
                colour, label = FAILED, host.get('error') or host['status']
            segments.append((t0, t1, colour, label))
        else:
            segments.append((t0, first, SERVING, 'serving'))
            cursor = first
            for _name, start_key, end_key, colour, label in PHASES:
                start, end = times.get(start_key), times.get(end_key)
                if start is None:
                    break
                if end is None:
                    segments.append((start, t1, FAILED, 'failed after %s: %s' % (label, host.get('error') or host['status'])))
                    cursor = None
                    break
                segments.append((start, end, colour, label))
                cursor = end
            if cursor is not None:
                after = FAILED if host['status'] in ('failed', 'unreachable') else SERVING
                segments.append((cursor, t1, after, 'serving' if after == SERVING else host.get('error') or host['status']))
        for start, end, colour, label in segments:
            if end <= start and colour != FAILED and not (start == t0 and end == t1):
                continue
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s, %s - %s</title></rect>'
                       % (x(start), y + 3, max(x(end) - x(start), 1.0), row - 6, colour, _h(host['host']), _h(label),
                          _hms(start), _hms(end)))
        if host['status'] in ('failed', 'rolled_back', 'unreachable'):
            at = times.get('upgraded') or times.get('work') or times.get('drain') or t1
            out.append('<text x="%.1f" y="%d" fill="%s" font-weight="bold" text-anchor="middle">&#x2716;<title>%s</title>'
                       '</text>' % (x(at), y + 17, FAILED if host['status'] != 'rolled_back' else '#000',
                                    _h(host.get('error') or host['status'])))
    legend = [(SERVING, 'serving'), (PHASES[0][3], 'draining'), (PHASES[1][3], 'out of service (update)'),
              (PHASES[2][3], 'warm-up'), (FAILED, 'failed'), (LEFT, 'left for the next window')]
    ly = top + row * len(hosts) + 24
    lx = left
    for colour, label in legend:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>'
                   % (lx, ly, colour, lx + 16, ly + 11, _h(label)))
        lx += 30 + 7 * len(label)
    out.append('<text x="%d" y="%d" fill="#555">UTC; %s to %s</text>' % (left, ly + 34, _iso(t0), _iso(t1)))
    out.append('</svg>')
    return '\n'.join(out)


def _perf(validation, when):
    perf = (validation.get('performance') or {}).get(when) or {}
    keys = ('ttft_ms', 'ttft_p50_ms', 'p95_ms', 'latency_p95_ms', 'tokens_per_second', 'tokens_per_s', 'error_rate')
    return ', '.join('%s %s' % (k, perf[k]) for k in keys if perf.get(k) is not None) or 'not measured'


def report(data):
    """{'report.md', 'report.html', 'report.json'} and the normalised data."""
    norm = normalise_report(data)
    run = norm['run']
    title = 'Maintenance report: %s %s' % (run.get('kind') or 'run', run.get('name') or '')
    lines = ['# %s' % title, '']
    lines += ['- Outcome: %s' % run['outcome'],
              '- Started: %s, finished: %s, duration: %s' % (run['started'], run['finished'], _secs(run['duration_seconds'])),
              '- Strategy: %s' % (run.get('strategy') or 'rolling, one node at a time behind the gateway'),
              '- Failed requests during the run: %s' % _failed_requests_text(norm['failed_requests'])]
    if run.get('window'):
        lines.append('- Window: %s' % (run['window'].get('reason') if isinstance(run['window'], dict) else run['window']))
    if run.get('emergency'):
        lines.append('- Emergency: %s' % (run.get('emergency_reason') or 'no reason recorded'))
    if run.get('stopped'):
        lines.append('- Stopped: %s' % run['stopped'])
    if norm['left_for_next_window']:
        lines.append('- Left for the next window: %s' % ', '.join(norm['left_for_next_window']))
    lines += ['', '## Nodes', '']
    lines += _table_md(['host', 'status', 'versions before -> after', 'out of routing', 'own work', 'note'], [
        [h['host'], h['status'], _versions(h) or '-',
         _secs(h.get('drained_seconds')) if h.get('drained_seconds') is not None else '-',
         _secs(h.get('work_seconds')) if h.get('work_seconds') is not None else '-',
         h.get('error') or ('left for the next window' if h['status'] in LEFT_STATUSES else '')]
        for h in norm['hosts']])
    lines += ['', '## Validation', '']
    lines += _table_md(['host', 'passed', 'checks', 'performance before', 'performance after'], [
        [h['host'], {True: 'yes', False: 'NO', None: 'not run'}[h['validation'].get('passed')],
         ', '.join('%s: %s' % (c.get('name'), 'ok' if c.get('passed') else 'FAILED')
                   for c in h['validation'].get('checks') or []) or '-',
         _perf(h['validation'], 'before'), _perf(h['validation'], 'after')] for h in norm['hosts']])
    if norm['rolled_back']:
        lines += ['', '## Rolled back', '']
        lines += ['- %s: %s' % (r['host'], r['why']) for r in norm['rolled_back']]
    lines += monitoring_lines(norm)
    lines += ['', '## Postponed', '']
    lines += [('- %s %s %s -> %s' % (p.get('host', ''), p.get('component', ''), p.get('name', ''), p.get('to', ''))).replace('  ', ' ')
              if isinstance(p, dict) else '- %s' % p for p in norm['postponed']] or ['Nothing was postponed.']
    if norm['cleaned']:  # maint (issue 17 housekeeping)
        lines += ['', '## Cleaned up in the window', ''] + ['- %s' % c for c in norm['cleaned']]
    lines += ['', '## Summary', ''] + ['- %s' % l.strip() for l in norm['summary']]
    md = '\n'.join(lines) + '\n'
    body = _md_to_html(lines[:2]) + '\n<h2>Timeline</h2>\n' + timeline_svg(norm) + '\n' + _md_to_html(lines[2:])
    files = {'report.md': md, 'report.html': _page(title, body),
             'report.json': json.dumps(norm, indent=2, sort_keys=True, default=str) + '\n'}
    return files, norm


# ----- monitoring: the live probe's timeline and Prometheus before / after (issue 18) ------------------------------

def _num(value, unit='', digits=1):
    if value is None:
        return '-'
    if isinstance(value, float):
        value = int(round(value)) if digits == 0 else round(value, digits)
    return '%s%s' % (value, unit)


def _sig(value):
    return '-' if value is None else '%.4g' % value


def _rate(value):
    return '-' if value is None else '%.1f%%' % (100 * value)


def probe_runs(timeline):
    """The per-second timeline folded into runs of consecutive seconds that were all good or all failing."""
    runs = []
    for sec in timeline or []:
        done = (sec.get('ok') or 0) + (sec.get('failed') or 0)
        state = 'errors' if sec.get('failed') or sec.get('truncated') else ('ok' if done else 'idle')
        if runs and runs[-1]['state'] == state and sec['t'] == runs[-1]['to'] + 1:
            run = runs[-1]
        else:
            run = dict(state=state, start=sec['t'], to=sec['t'], sent=0, ok=0, failed=0, truncated=0, p99_ms=None)
            runs.append(run)
        run['to'] = sec['t']
        for key in ('sent', 'ok', 'failed', 'truncated'):
            run[key] += sec.get(key) or 0
        if sec.get('p99_ms') is not None:
            run['p99_ms'] = max(run['p99_ms'] or 0, sec['p99_ms'])
    return runs


def epoch_seconds(value):
    """Epoch seconds of a time in report data (epoch seconds or ISO 8601 with an offset); None when unset."""
    return _epoch(value)


def monitoring_data(data):
    """The optional `probe` (live_probe's stopped summary) and `prometheus` (_prometheus.compare) parts, checked."""
    out = {}
    probe = data.get('probe')
    if probe not in (None, {}, ''):
        if not isinstance(probe, dict):
            raise ReportError('probe: the live_probe summary must be a dictionary')
        out['probe'] = dict(probe, runs=probe_runs(probe.get('timeline')))
    prom = data.get('prometheus')
    if prom not in (None, {}, ''):
        if not isinstance(prom, dict) or not isinstance(prom.get('rows', []), list):
            raise ReportError('prometheus: a dictionary with rows (a list) is expected')
        out['prometheus'] = prom
    return out


def monitoring_lines(norm):
    """Markdown of the live probe (phases, timeline, verdicts) and of Prometheus before / after."""
    lines = []
    probe = norm.get('probe')
    if probe:
        lines += ['', '## Live probe', '']
        lines.append('- %s requests to %s (model %s), ended: %s' % (
            (probe.get('totals') or {}).get('sent', 0), probe.get('url') or '?', probe.get('model') or '?',
            probe.get('end_reason') or 'running'))
        phases = probe.get('phases') or {}
        lines += [''] + (_table_md(['phase', 'sent', 'ok', 'failed', 'truncated', 'error rate', 'p50', 'p99'], [
            [name, f.get('sent', 0), f.get('ok', 0), f.get('failed', 0), f.get('truncated', 0), _rate(f.get('error_rate')),
             _num(f.get('p50_ms'), ' ms', 0), _num(f.get('p99_ms'), ' ms', 0)]
            for name in ('before', 'during', 'after') for f in [phases.get(name)] if f is not None])
            if phases else ['No marks: no phases before / during / after.'])
        lines += ['', '### Probe timeline', '']
        lines += _table_md(['from', 'to', 'answers', 'sent', 'ok', 'failed', 'truncated', 'p99 (worst second)'], [
            [_hms(r['start']), _hms(r['to']), r['state'], r['sent'], r['ok'], r['failed'], r['truncated'],
             _num(r['p99_ms'], ' ms', 0)] for r in probe['runs']]) if probe['runs'] else ['No second was recorded.']
        verdicts = [m for m in probe.get('marks') or [] if m.get('verdict')]
        if verdicts:
            lines += ['', '### Probe verdicts', '']
            lines += ['- %s %s: %s' % (_hms(m['t']), m['verdict'], m.get('reason') or '') for m in verdicts]
    prom = norm.get('prometheus')
    if prom:
        lines += ['', '## Prometheus before and after', '']
        lines.append('- %s; before %s - %s, after %s - %s' % (
            prom.get('url') or 'Prometheus', _iso(_epoch((prom.get('before') or [None])[0])),
            _iso(_epoch((prom.get('before') or [None, None])[1])), _iso(_epoch((prom.get('after') or [None])[0])),
            _iso(_epoch((prom.get('after') or [None, None])[1]))))
        if prom.get('error'):
            lines.append('- Not compared: %s' % prom['error'])
        lines += [''] + _table_md(['metric', 'series', 'before (mean)', 'after (mean)', 'change', 'note'], [
            [r.get('name'), r.get('series') or '-', _sig(r.get('before')), _sig(r.get('after')),
             '-' if r.get('change') is None else '%+.1f%%' % (100 * r['change']), r.get('note') or '']
            for r in prom.get('rows') or []])
    return lines


# ----- the history -------------------------------------------------------------------------------------------------

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$')


def write(dest, name, files, entry=None, keep=24, check_mode=False):
    """Write files into dest/name/ (0644, directories 0755) and, for a report, dest/history.json (the last
    `keep` runs), dest/latest-report.md and dest/latest-summary.txt. Returns (changed, paths)."""
    if not _NAME.match(str(name)):
        raise ReportError('name: %r is not a file name (letters, digits, . _ -)' % (name,))
    directory = os.path.join(dest, name)
    planned = dict((os.path.join(directory, fname), text) for fname, text in files.items())
    if entry is not None:
        history_path = os.path.join(dest, 'history.json')
        history = []
        if os.path.exists(history_path):
            try:
                with open(history_path, encoding='utf-8') as handle:
                    history = json.load(handle).get('runs', [])
            except (OSError, ValueError, AttributeError) as exc:
                raise ReportError('%s cannot be read (%s): move it away to start a new history' % (history_path, exc),
                                  error_kind='unreadable') from None
        history = [h for h in history if h.get('name') != name] + [entry]
        history = history[-keep:] if keep > 0 else history
        planned[history_path] = json.dumps({'runs': history}, indent=2, sort_keys=True) + '\n'
        planned[os.path.join(dest, 'latest-report.md')] = files.get('report.md', '')
        planned[os.path.join(dest, 'latest-summary.txt')] = '\n'.join(entry.get('summary') or []) + '\n'
    changed = []
    for path, text in sorted(planned.items()):
        try:
            with open(path, encoding='utf-8', newline='') as handle:  # the .ics keeps its CRLF
                same = handle.read() == text
            mode_ok = (os.stat(path).st_mode & 0o777) == 0o644
        except OSError:
            same = mode_ok = False
        if same and mode_ok:
            continue
        changed.append(path)
        if check_mode:
            continue
        try:
            for folder in (dest, directory):
                if not os.path.isdir(folder):
                    os.makedirs(folder, mode=0o755)
            state.write_text(path, text, mode=0o644)
        except OSError as exc:
            raise ReportError('%s cannot be written: %s' % (path, exc), error_kind='unwritable') from None
    return changed, sorted(planned)


def history_entry(name, norm):
    run = norm['run']
    return {'name': name, 'kind': run.get('kind'), 'started': run['started'], 'finished': run['finished'],
            'outcome': run['outcome'], 'counts': norm['counts'], 'left_for_next_window': norm['left_for_next_window'],
            'summary': norm['summary']}
