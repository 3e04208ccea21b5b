# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The maintenance plan of one host: risk per change and for the run, reboot, downtime, emergency path.

Input: the components' plan facts (the shared contract: lists of {component, name, from, to, reboot,
security, risk, reason}), optional advisories (OS security notices naming packages), known-bad
versions, and the Python packages installed in the gateway's and engine's virtualenvs, matched against a
local advisory database in OSV JSON format (https://ossf.github.io/osv-schema/) - never the network.

Rules (docs/maintenance-run.md):
- risk of a change is the highest of the component's own risk and: reboot -> medium; a kernel package ->
  high; a driver branch change (the NVIDIA driver's major number) -> high; a major version change -> high;
  a minor version change -> medium; a target version listed as known-bad -> high and blocked;
  a version that cannot be read ("unknown") -> high (unknown is never low);
- a change is critical when it fixes a known vulnerability of an installed Python package, or an advisory
  for it has severity critical (or one of `critical_severities`); any critical change sends the run down the
  emergency path; the other changes are postponable (and postponed when named in `postpone`);
- downtime: per node, a reboot (`reboot_seconds`) when any change needs one, else a service restart
  (`restart_seconds`) per changed component; for users none behind the gateway with rolling nodes
  (`strategy: rolling_gateway`), the node's downtime otherwise.

Only the standard library: the module runs it on the host whose virtualenvs it reads.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as housekeeping

RISKS = ('low', 'medium', 'high')
STRATEGIES = ('rolling_gateway', 'rolling', 'all_at_once')
CONTRACT_KEYS = ('component', 'name', 'from', 'to', 'reboot', 'security', 'risk', 'reason')
DEFAULT_CRITICAL = ('critical',)
_KERNEL = re.compile(r'^(linux-image|linux-headers|linux-modules|kernel|kernel-core|kernel-modules)(-|$)')
_DRIVER = re.compile(r'(nvidia.*driver|driver.*nvidia|^nvidia-driver|^driver$|cuda-drivers)')


class PlanError(OnpremError):
    """A plan input that cannot be used, or an advisory database that cannot be read."""

    error_kind = 'invalid'


# ----- versions ------------------------------------------------------------------------------------------------------

_PEP440 = re.compile(
    r'^\s*v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)'
    r'(?:[-_.]?(?P<pre_l>a|alpha|b|beta|c|rc|pre|preview)[-_.]?(?P<pre_n>\d*))?'
    r'(?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d*))?'
    r'(?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d*))?'
    r'(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$', re.IGNORECASE)
_BIG = 1 << 62
_PRE = {'a': 0, 'alpha': 0, 'b': 1, 'beta': 1, 'c': 2, 'rc': 2, 'pre': 2, 'preview': 2}


def pep440_key(version):
    """A sort key of a PEP 440 version (as `packaging` orders them); None when it is not one."""
    match = _PEP440.match(str(version)) if version is not None else None
    if not match:
        return None
    release = [int(part) for part in match.group('release').split('.')]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = (_PRE[match.group('pre_l').lower()], int(match.group('pre_n') or 0)) if match.group('pre_l') else None
    post_n = match.group('post_n1') or match.group('post_n2')
    post = int(post_n or 0) if (match.group('post_n1') or match.group('post_l')) else None
    dev = int(match.group('dev_n') or 0) if match.group('dev_l') else None
    if pre is None and post is None and dev is not None:
        pre_key = (-1, 0)
    elif pre is None:
        pre_key = (_BIG, 0)
    else:
        pre_key = pre
    return (int(match.group('epoch') or 0), tuple(release), pre_key, -1 if post is None else post,
            _BIG if dev is None else dev)


def version_parts(version):
    """The leading numbers of any version string (Debian epochs and revisions, PEP 440, NVIDIA's 570.133.20)."""
    text = str(version or '').strip()
    text = re.sub(r'^\d+:', '', text)          # a Debian epoch
    match = re.match(r'^v?(\d+(?:\.\d+)*)', text)
    return [int(part) for part in match.group(1).split('.')] if match else []


def normalise_name(name):
    """A Python package name as PEP 503 compares them."""
    return re.sub(r'[-_.]+', '-', str(name)).lower()


# ----- the advisory database (OSV) ---------------------------------------------------------------------------------

def load_osv_dir(path):
    """Every OSV record (*.json) under `path`; PlanError naming the file that cannot be read."""
    if not os.path.isdir(path):
        raise PlanError('advisory_db: %s is not a directory of OSV JSON records (the site\'s local copy of the '
                        'advisory database is needed: nothing was matched, which is not "no vulnerability")' % path,
                        error_kind='unreadable')
    records = []
    for root, _dirs, files in os.walk(path):
        for name in sorted(files):
            if not name.endswith('.json'):
                continue
            full = os.path.join(root, name)
            try:
                with open(full, encoding='utf-8') as handle:
                    data = json.load(handle)
            except (OSError, ValueError) as exc:
                raise PlanError('advisory_db: %s cannot be read as JSON: %s' % (full, exc), error_kind='unreadable') from None
            records.extend(data if isinstance(data, list) else [data])
    return records


def _check_record(record, index):
    if not isinstance(record, dict) or not isinstance(record.get('id'), str) or not isinstance(record.get('affected'), list):
        raise PlanError('advisory %s: not an OSV record (an object with id and affected)' % index)


def _in_ranges(version, affected):
    """Whether `version` is affected per an OSV `affected` entry (versions list, ECOSYSTEM ranges)."""
    key = pep440_key(version)
    if str(version) in [str(v) for v in affected.get('versions') or []]:
        return True
    if key is None:
        return None
    for rng in affected.get('ranges') or []:
        if rng.get('type') not in ('ECOSYSTEM', 'SEMVER'):
            continue
        events = []
        for event in rng.get('events') or []:
            for kind in ('introduced', 'fixed', 'last_affected', 'limit'):
                if kind in event:
                    value = str(event[kind])
                    events.append((kind, (0,) if value == '0' else pep440_key(value)))
        inside = False
        # events in version order; 'introduced: 0' first
        for kind, bound in sorted(events, key=lambda e: (e[1] is None, e[1] or ())):
            if bound is None:
                continue
            if kind == 'introduced':
                if bound == (0,) or key >= bound:
                    inside = True
            elif kind == 'fixed' and key >= bound:
                inside = False
            elif kind == 'last_affected' and key > bound:
                inside = False
            elif kind == 'limit' and key >= bound:
                inside = False
        if inside:
            return True
    return False


def _fixed_versions(affected):
    return [str(e['fixed']) for rng in affected.get('ranges') or [] for e in rng.get('events') or [] if 'fixed' in e]


def _severity(record):
    """The advisory's severity word: GHSA's database_specific.severity, else 'unknown'."""
    for place in (record.get('database_specific'), *[a.get('database_specific') for a in record.get('affected') or []
                                                     if isinstance(a, dict)]):
        if isinstance(place, dict) and isinstance(place.get('severity'), str):
            word = place['severity'].lower()
            return 'medium' if word == 'moderate' else word
    return 'unknown'


def match_packages(packages, records):
    """Known vulnerabilities of installed packages: [{package, version, id, aliases, severity, fixed, summary}]."""
    found = []
    for index, record in enumerate(records):
        _check_record(record, index)
    for pkg in packages:
        name, version = normalise_name(pkg['name']), str(pkg['version'])
        for record in records:
            for affected in record['affected']:
                package = affected.get('package') or {}
                if package.get('ecosystem') != 'PyPI' or normalise_name(package.get('name', '')) != name:
                    continue
                hit = _in_ranges(version, affected)
                if hit is None:
                    raise PlanError('%s %s: the installed version cannot be compared with advisory %s (not a PEP 440 '
                                    'version)' % (pkg['name'], version, record['id']), error_kind='unreadable')
                if not hit:
                    continue
                key = pep440_key(version)
                fixes = sorted((f for f in _fixed_versions(affected) if pep440_key(f) and pep440_key(f) > key),
                               key=pep440_key)
                found.append({'package': pkg['name'], 'version': version, 'venv': pkg.get('venv'), 'id': record['id'],
                              'aliases': list(record.get('aliases') or []), 'severity': _severity(record),
                              'fixed': fixes[0] if fixes else None, 'summary': record.get('summary', '')})
                break
    return found


# ----- virtualenvs ---------------------------------------------------------------------------------------------------

def _metadata(path):
    name = version = None
    with open(path, encoding='utf-8', errors='replace') as handle:
        for line in handle:
            if not line.strip():
                break
            if line.startswith('Name:') and name is None:
                name = line.split(':', 1)[1].strip()
            elif line.startswith('Version:') and version is None:
                version = line.split(':', 1)[1].strip()
    return name, version


def read_venv(venv):
    """[{name, version, venv}] of the distributions installed in a virtualenv (its *.dist-info METADATA)."""
    lib = os.path.join(venv, 'lib')
    if not os.path.isdir(lib):
        raise PlanError('venvs: %s is not a virtualenv (no lib/ directory): its packages cannot be checked' % venv,
                        error_kind='unreadable')
    packages = []
    for pyver in sorted(os.listdir(lib)):
        site = os.path.join(lib, pyver, 'site-packages')
        if not pyver.startswith('python') or not os.path.isdir(site):
            continue
        for entry in sorted(os.listdir(site)):
            meta = os.path.join(site, entry, 'METADATA')
            if entry.endswith('.dist-info') and os.path.isfile(meta):
                try:
                    name, version = _metadata(meta)
                except OSError as exc:
                    raise PlanError('venvs: %s cannot be read: %s' % (meta, exc), error_kind='unreadable') from None
                if name and version:
                    packages.append({'name': name, 'version': version, 'venv': venv})
    if not packages:
        raise PlanError('venvs: no installed distribution found in %s (lib/python*/site-packages/*.dist-info)' % venv,
                        error_kind='unreadable')
    return packages


def pip_list(venv, data):
    """`pip list --format json` output (text or parsed) of a virtualenv as [{name, version, venv}]."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PlanError('venv_packages[%s]: not pip list --format json output: %s' % (venv, exc)) from None
    if not isinstance(data, list) or not all(isinstance(p, dict) and p.get('name') and p.get('version') for p in data):
        raise PlanError('venv_packages[%s]: a list of {name, version} (pip list --format json) is needed' % venv)
    return [{'name': str(p['name']), 'version': str(p['version']), 'venv': venv} for p in data]


# ----- the plan ------------------------------------------------------------------------------------------------------

def _max_risk(*risks):
    return max((r for r in risks if r in RISKS), key=RISKS.index, default='low')


def _bool(value, field):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ('true', 'yes', 'false', 'no'):
        return value.strip().lower() in ('true', 'yes')
    raise PlanError('%s: %r is not a boolean' % (field, value))


def _change(raw, index):
    field = 'plans[%d]' % index
    if not isinstance(raw, dict):
        raise PlanError('%s: a change {component, name, from, to, reboot, security, risk, reason} is needed, got %s'
                        % (field, type(raw).__name__))
    missing = [key for key in ('component', 'name', 'to') if raw.get(key) in (None, '')]
    if missing:
        raise PlanError('%s: %s missing (the shared plan contract: component, name, from, to, reboot, security, '
                        'risk, reason)' % (field, ', '.join(missing)))
    risk = raw.get('risk', 'low')
    if risk not in RISKS:
        raise PlanError('%s.risk: %r is not one of %s' % (field, risk, ', '.join(RISKS)))
    change = dict(raw)
    change.update({
        'component': str(raw['component']), 'name': str(raw['name']),
        'from': None if raw.get('from') in (None, '') else str(raw['from']), 'to': str(raw['to']),
        'reboot': _bool(raw.get('reboot', False), field + '.reboot'),
        'security': _bool(raw.get('security', False), field + '.security'),
        'risk': risk, 'reason': str(raw.get('reason') or ''),
        # os_update names its advisories by id (dnf updateinfo), with one severity for the package
        'advisories': [a if isinstance(a, dict) else {'id': str(a), 'severity': str(raw.get('severity') or 'unknown').lower()}
                       for a in raw.get('advisories') or []],
    })
    return change


def _rules(change, known_bad):
    """(risk, reasons, blocked) of one change by the rules."""
    reasons = []
    risk = change['risk']
    if change['risk'] != 'low':
        reasons.append('%s says %s' % (change['component'], change['risk']))
    if change['reboot']:
        risk = _max_risk(risk, 'medium')
        reasons.append('needs a reboot')
    name = change['name'].lower()
    if _KERNEL.match(name):
        risk = _max_risk(risk, 'high')
        reasons.append('kernel')
    before, after = version_parts(change['from']), version_parts(change['to'])
    if change['from'] is None or not before:
        if change['from'] is None:
            reasons.append('new install')
        else:
            risk = _max_risk(risk, 'high')
            reasons.append('installed version %r unknown' % change['from'])
    elif after and before[0] != after[0]:
        risk = _max_risk(risk, 'high')
        reasons.append('driver branch %d -> %d' % (before[0], after[0]) if _DRIVER.search(name)
                       else 'major version %d -> %d' % (before[0], after[0]))
    elif after and before[:2] != after[:2] and len(after) > 1:
        risk = _max_risk(risk, 'medium')
        reasons.append('minor version')
    blocked = change.get('no_fix')
    if blocked:
        risk = 'high'
        reasons.append(blocked)
    for bad in known_bad:
        if normalise_name(bad.get('name', '')) == normalise_name(change['name']) and \
                change['to'] in [str(v) for v in bad.get('versions') or []]:
            risk = 'high'
            blocked = 'known-bad version %s: %s' % (change['to'], bad.get('reason') or 'listed in known_bad')
            reasons.append(blocked)
    return risk, reasons, blocked


def plan(changes, advisories=None, known_bad=None, packages=None, osv=None, strategy='rolling_gateway',
         reboot_seconds=300, restart_seconds=60, postpone=None, critical_severities=DEFAULT_CRITICAL, checks=None):
    """The plan of one host (see the module's RETURN); raises PlanError naming what cannot be used."""
    if strategy not in STRATEGIES:
        raise PlanError('strategy: %r is not one of %s' % (strategy, ', '.join(STRATEGIES)))
    if not isinstance(changes, list):
        raise PlanError('plans: a list of changes is needed, got %s' % type(changes).__name__)
    known_bad = list(known_bad or [])
    postpone = [str(p) for p in postpone or []]
    severities = [str(s).lower() for s in critical_severities]
    items = [_change(raw, i) for i, raw in enumerate(changes)]

    # OS and other advisories naming a package: its change is a security update, critical by severity.
    for i, advisory in enumerate(advisories or []):
        if not isinstance(advisory, dict) or not advisory.get('id') or not advisory.get('name'):
            raise PlanError('advisories[%d]: {id, name, severity} is needed' % i)
        for change in items:
            same_component = not advisory.get('component') or advisory['component'] == change['component']
            if change['name'] == advisory['name'] and same_component:
                change['security'] = True
                change['advisories'].append({'id': str(advisory['id']),
                                             'severity': str(advisory.get('severity', 'unknown')).lower()})

    # Known vulnerabilities of installed Python packages: the fixing update is critical.
    vulnerabilities = match_packages(packages or [], osv or []) if packages else []
    for vuln in vulnerabilities:
        fixing = [c for c in items if normalise_name(c['name']) == normalise_name(vuln['package'])]
        if not fixing:
            fixing = [{'component': 'python:%s' % (vuln['venv'] or 'venv'), 'name': vuln['package'],
                       'from': vuln['version'], 'to': vuln['fixed'] or 'no fixed version yet', 'reboot': False,
                       'security': True, 'risk': 'low', 'advisories': [],
                       'reason': 'known vulnerability %s in %s' % (vuln['id'], vuln['venv'])}]
            items.append(fixing[0])
        for change in fixing:
            change['security'] = True
            change['advisories'].append({'id': vuln['id'], 'severity': vuln['severity'], 'vulnerability': True})
            target = pep440_key(change['to'])
            if vuln['fixed'] and target is not None and target < pep440_key(vuln['fixed']):
                change.setdefault('warnings', []).append('the target %s is still affected by %s (fixed in %s)'
                                                         % (change['to'], vuln['id'], vuln['fixed']))
            if not vuln['fixed']:
                change['no_fix'] = '%s has no fixed version of %s yet: mitigate by hand' % (vuln['id'], vuln['package'])

    result_changes = []
    for change in items:
        risk, reasons, blocked = _rules(change, known_bad)
        vuln = any(a.get('vulnerability') for a in change['advisories'])
        critical = vuln or any(a.get('severity') in severities for a in change['advisories'])
        if vuln:
            reasons.append('fixes a known vulnerability')
        change.update({'risk': risk, 'risk_reasons': reasons, 'blocked': blocked, 'critical': critical,
                       'postponable': not critical,
                       'postponed': (not critical) and (change['name'] in postpone or change['component'] in postpone)})
        if critical and (change['name'] in postpone or change['component'] in postpone):
            change.setdefault('warnings', []).append('critical: not postponed although listed in postpone')
        result_changes.append(change)

    active = [c for c in result_changes if not c['postponed'] and not c['blocked']]
    reboot = any(c['reboot'] for c in active)
    components = sorted({c['component'] for c in active})
    node_seconds = int(reboot_seconds) if reboot else int(restart_seconds) * len(components)
    users_seconds = 0 if strategy == 'rolling_gateway' else node_seconds
    critical = [c for c in active if c['critical']]
    run_risk = _max_risk(*[c['risk'] for c in active])
    path = 'emergency' if critical else ('scheduled' if active else 'none')
    summary = '%d change%s (%d postponed, %d blocked), risk %s, %s, downtime per node ~%ds, for users %s%s' % (
        len(active), '' if len(active) == 1 else 's', sum(1 for c in result_changes if c['postponed']),
        sum(1 for c in result_changes if c['blocked']), run_risk if active else 'none',
        'reboot' if reboot else 'no reboot', node_seconds,
        'none (rolling behind the gateway)' if users_seconds == 0 else '~%ds' % users_seconds,
        '; CRITICAL security: emergency path (%s)' % ', '.join('%s %s' % (c['component'], c['name']) for c in critical)
        if critical else '')
    return {
        'changes': result_changes,
        'pending': bool(active),
        'risk': run_risk if active else 'none',
        'reboot': reboot,
        'components': components,
        'downtime': {'node_seconds': node_seconds, 'users_seconds': users_seconds, 'strategy': strategy},
        'path': path,
        'critical': [{'component': c['component'], 'name': c['name'], 'to': c['to'],
                      'advisories': [a['id'] for a in c['advisories']]} for c in critical],
        'postponed': [{'component': c['component'], 'name': c['name'], 'to': c['to']}
                      for c in result_changes if c['postponed']],
        'blocked': [{'component': c['component'], 'name': c['name'], 'to': c['to'], 'reason': c['blocked']}
                    for c in result_changes if c['blocked']],
        'vulnerabilities': vulnerabilities,
        'packages_checked': len(packages or []),
        'recommendations': recommendations(checks) if checks else [],
        'cleanup': cleanup(checks) if checks else [],
        'summary': summary,
    }


# ----- proactive maintenance: housekeeping and tuning, one recommendation each --------------------------------------

_HOUSEKEEPING_CHECKS = ('CUDA toolkits', 'free disk', 'old model versions', 'journal size')


def _finding(check, status, finding, recommendation=None):
    return housekeeping.finding(check, 'housekeeping' if check in _HOUSEKEEPING_CHECKS else 'tuning', status,
                                finding, recommendation)


def _gpu_checks(gpu_info):
    out = []
    driver = gpu_info.get('driver') or {}
    if driver.get('mismatch') or driver.get('reload_or_reboot_required'):
        out.append(_finding('driver loaded', 'recommend', driver.get('reload_or_reboot_reason')
                            or 'the loaded driver differs from the installed one',
                            'reboot (or reload the modules) in the next window'))
    for gpu in gpu_info.get('gpus') or []:
        name = 'GPU %s (%s)' % (gpu.get('index'), gpu.get('pci_bus_id'))
        mode = gpu.get('persistence_mode')
        if mode is None:
            out.append(_finding('persistence mode', 'unknown', '%s: persistence mode cannot be read' % name))
        elif mode != 'Enabled':
            out.append(_finding('persistence mode', 'recommend', '%s: persistence mode is %s' % (name, mode),
                                'enable it (nvidia-persistenced), so that the driver stays loaded between jobs'))
        ecc, pending = gpu.get('ecc_mode'), gpu.get('ecc_pending_mode')
        if ecc is None:
            out.append(_finding('ECC mode', 'unknown', '%s: ECC mode cannot be read (or the GPU has none)' % name))
        elif ecc != 'Enabled':
            out.append(_finding('ECC mode', 'recommend', '%s: ECC is %s' % (name, ecc),
                                'enable ECC (nvidia-smi -e 1, then a reboot in the window) on a datacenter GPU'))
        if ecc is not None and pending is not None and pending != ecc:
            out.append(_finding('ECC mode', 'recommend', '%s: ECC %s is pending' % (name, pending),
                                'reboot in the next window to apply it'))
    toolkits = [t for t in gpu_info.get('cuda_toolkits') or [] if isinstance(t, dict)]
    default = [t.get('version') for t in toolkits if t.get('default')]
    unused = [t.get('version') for t in toolkits if not t.get('default')]
    if unused:
        out.append(_finding('CUDA toolkits', 'recommend', 'installed besides the default %s: %s' % (
            default[0] if default else '(none)', ', '.join(str(v) for v in unused)),
            'remove the toolkits no engine uses (cuda_toolkit, remove_others)'))
    return out


def recommendations(checks):
    """Housekeeping and tuning findings from what the plan gathered; each with one recommendation.

    checks: {gpu_info, engine_gpu_memory_utilization, disk: {path, free_bytes, needed_bytes}, journal_bytes,
    journal_max_bytes, model_versions: {model: count}, keep, gateway: {timeout_s, num_retries}, engine_p99_ms}.
    A value that is not given is not checked; one given as null is 'unknown'.
    """
    if not isinstance(checks, dict):
        raise PlanError('checks: a mapping is needed, got %s' % type(checks).__name__)
    out = []
    if isinstance(checks.get('gpu_info'), dict):
        out.extend(_gpu_checks(checks['gpu_info']))
    if 'engine_gpu_memory_utilization' in checks:
        share = checks['engine_gpu_memory_utilization']
        if share is None:
            out.append(_finding('engine GPU memory share', 'unknown', 'the engine\'s GPU memory share cannot be read'))
        elif float(share) > 0.95:
            out.append(_finding('engine GPU memory share', 'recommend', 'the engine claims %.0f %% of GPU memory' % (float(share) * 100),
                                'lower it to 0.90-0.92: the CUDA context and a second process need headroom'))
    disk = checks.get('disk')
    if isinstance(disk, dict):
        free, needed = disk.get('free_bytes'), disk.get('needed_bytes')
        if free is None:
            out.append(_finding('free disk', 'unknown', 'free space on %s cannot be read' % disk.get('path')))
        elif needed is not None and int(free) < int(needed) * 1.1:
            out.append(_finding('free disk', 'recommend', '%s has %d GiB free, the next model pull needs %d GiB' % (
                disk.get('path'), int(free) >> 30, int(needed) >> 30), 'remove old model versions beyond keep-N before the pull'))
    keep = checks.get('keep')
    for model, count in sorted((checks.get('model_versions') or {}).items()):
        if keep is not None and int(count) > int(keep):
            out.append(_finding('old model versions', 'recommend', '%s: %d versions kept, keep is %d' % (model, int(count), int(keep)),
                                'prune with model_pull (keep=%d)' % int(keep)))
    if 'journal_bytes' in checks and checks['journal_bytes'] is None:
        out.append(_finding('journal size', 'unknown', 'the journal\'s size cannot be read'))
    if checks.get('journal_bytes') is not None and checks.get('journal_max_bytes') is not None \
            and int(checks['journal_bytes']) > int(checks['journal_max_bytes']):
        out.append(_finding('journal size', 'recommend', 'the journal holds %d MiB' % (int(checks['journal_bytes']) >> 20),
                            'set SystemMaxUse= in journald.conf (or journalctl --vacuum-size)'))
    gateway, p99 = checks.get('gateway'), checks.get('engine_p99_ms')
    if isinstance(gateway, dict):
        timeout, retries = gateway.get('timeout_s'), gateway.get('num_retries')
        if p99 is not None and timeout is not None and float(timeout) * 1000 < 3 * float(p99):
            out.append(_finding('gateway timeout', 'recommend', 'timeout %ss against an engine p99 of %d ms' % (timeout, int(p99)),
                                'raise the gateway timeout to at least 3 x the engines\' p99 latency'))
        if retries is not None and int(retries) == 0:
            out.append(_finding('gateway retries', 'recommend', 'the gateway does not retry',
                                'allow 1-2 retries, so that a request to a node going out of routing is retried'))
        elif retries is not None and int(retries) > 3:
            out.append(_finding('gateway retries', 'recommend', '%d retries multiply the load on a failing engine' % int(retries),
                                'lower the retries to 1-2'))
    # issue 17, proactive maintenance (module_utils/_housekeeping): drift, container images, power and clocks
    if 'drift' in checks:
        out.extend(housekeeping.drift(checks['drift']))
    if 'images' in checks:
        images = checks['images'] if isinstance(checks['images'], dict) else {}
        out.extend(housekeeping.images(images.get('images'), images.get('used'))[0])
    gpus = [g for g in ((checks.get('gpu_info') or {}).get('gpus') or []) if isinstance(g, dict)] \
        if isinstance(checks.get('gpu_info'), dict) else []
    out.extend(housekeeping.gpu_tuning(gpus + list(checks.get('gpu_power') or [])))
    return out


def cleanup(checks):
    """What the window's run may remove safely, from the checks (container images beyond the previous version)."""
    images = (checks or {}).get('images')
    if not isinstance(images, dict):
        return []
    return housekeeping.images(images.get('images'), images.get('used'))[1]
