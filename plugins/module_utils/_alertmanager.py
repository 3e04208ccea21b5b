# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Silences in Alertmanager (API v2) for the hosts under maintenance, so that planned reboots page nobody.

Entry point: `apply(with_defaults(url=..., tag=..., hosts=[...]), check_mode=False)` -> the result documented in
plugins/modules/alertmanager_silence.py's RETURN (`changed`, `silences`, `created`, `extended`, `expired`,
`alertmanager`, `diff`); `AlertmanagerError` (error_kind options / unreachable / refused / unreadable) when it
cannot. ARGUMENT_SPEC is the module's argument spec, so a Python caller (a probe, a lab test) shares every default.

How a run's silences are found again: each carries `[onprem_ai.maintenance:<tag>]` in its comment (the tag: a run
id). `present` wants one silence per host (its host matcher plus the extra `matchers`), or one silence of the
`matchers` alone when no host is given; a tagged, not expired silence with the same matchers (as a set) is kept,
or extended when it ends more than EXTEND_SLACK seconds before the wanted end (never shortened), otherwise one is
created. `absent` expires the tagged silences (active and pending) - all of them, or those whose matchers are the
wanted ones when hosts or matchers are given.

Alertmanager 0.25 behaviour relied on (prometheus/alertmanager@v0.25.0 api/v2/openapi.yaml, silence/silence.go,
checked against Debian 12's prometheus-alertmanager 0.25.0 by tests/unit/plugins/modules/test_alertmanager_silence.py):
- `GET /api/v2/silences` lists every silence, expired ones too (kept 120 h), each with `id`, `status.state`
  (active / pending / expired), `matchers` (`name`, `value`, `isRegex`, `isEqual` - absent means true),
  `startsAt`, `endsAt`, `createdBy`, `comment`; its `filter` wants an identical matcher, so the tag is matched here.
- `POST /api/v2/silences` answers `{"silenceID": ...}`; with an `id`, an active silence whose matchers are
  unchanged is updated in place (same id), otherwise the old one is expired and a new id given; a past `startsAt`
  becomes now; an `endsAt` not after `startsAt` is a 400.
- `DELETE /api/v2/silence/{id}` expires it (an expired one: 200 again; an unknown id: 500 in 0.25, 404 from 0.26).
- `GET /api/v2/status` gives `versionInfo.version` and `cluster.status`; `/-/ready` is 200 when ready.
Unknown is never none: an answer that cannot be read (not JSON, not a list, a silence without its fields, a time
that does not parse, a redirect) fails with what could not be read. Credentials (basic auth, bearer token, user
info in the URL) never leave: every message passes the Redactor, redirects are not followed.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import Redactor, safe_url, url_secrets

TAG_PREFIX = 'onprem_ai.maintenance:'
TAG_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$')
LABEL_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
HOST_RE = re.compile(r'^[A-Za-z0-9._:\[\]-]{1,253}$')
OPS = {'=': (False, True), '!=': (False, False), '=~': (True, True), '!~': (True, False)}  # op -> isRegex, isEqual
STATES = ('active', 'pending', 'expired')
MIN_DURATION = 60               # seconds: a shorter silence is a typo, not a maintenance window
MAX_DURATION = 7 * 24 * 3600    # seconds: longer is a forgotten silence; give ends_at again on the next run
EXTEND_SLACK = 60               # seconds: a silence ending at most this before the wanted end is left as it is
MAX_BODY = 16 * 1024 * 1024
_DURATION_RE = re.compile(r'^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$')


class AlertmanagerError(OnpremError):
    """Silences could not be read or changed (error_kind options / unreachable / refused / unreadable)."""

    error_kind = 'alertmanager'


# ----- options ---------------------------------------------------------------------------------------------------
ARGUMENT_SPEC = dict(
    url=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    tag=dict(type='str', required=True),
    hosts=dict(type='list', elements='str', default=[]),
    host_label=dict(type='str', default='instance'),
    host_match=dict(type='str', choices=['exact', 'with_port', 'regex'], default='with_port'),
    matchers=dict(type='list', elements='dict', default=[], options=dict(
        name=dict(type='str', required=True),
        value=dict(type='str', required=True),
        op=dict(type='str', choices=list(OPS), default='='))),
    duration=dict(type='str', default='2h'),
    starts_at=dict(type='str'),
    ends_at=dict(type='str'),
    exclusive=dict(type='bool', default=False),
    comment=dict(type='str', default='planned maintenance'),
    created_by=dict(type='str', default='onprem_ai.maintenance'),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    bearer_token=dict(type='str', no_log=True),
    validate_certs=dict(type='bool', default=True),
    ca_path=dict(type='path'),
    use_proxy=dict(type='bool', default=True),
    timeout=dict(type='int', default=10),
)


def with_defaults(**given):
    """Every option of ARGUMENT_SPEC with its default (matchers' `op` filled), then `given`."""
    unknown = sorted(set(given) - set(ARGUMENT_SPEC))
    if unknown:
        raise AlertmanagerError('unknown option(s): %s' % ', '.join(unknown), error_kind='options')
    params = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    params.update(given)
    params['matchers'] = [dict({'op': '='}, **m) if isinstance(m, dict) else m for m in params.get('matchers') or []]
    params['hosts'] = list(params.get('hosts') or [])
    return params


def parse_duration(text):
    """`90m`, `2h`, `1h30m`, `1d`, `45s` or a number of seconds -> seconds (int). AlertmanagerError when not one."""
    text = str(text if text is not None else '').strip()
    if re.match(r'^\d+$', text):
        return int(text)
    match = _DURATION_RE.match(text)
    if not text or not match or not any(match.groups()):
        raise AlertmanagerError('duration must be like 90m, 2h, 1h30m, 1d or a number of seconds, got %r' % text[:40],
                                error_kind='options')
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_time(text, what):
    """An RFC 3339 time with a zone (`2026-12-02T11:00:00Z`, `...+01:00`, fractions of any length) -> aware UTC."""
    match = re.match(r'^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$', str(text).strip())
    if not match:
        raise ValueError('%s is not an RFC 3339 time with a zone: %r' % (what, str(text)[:60]))
    day, clock, fraction, zone = match.groups()
    zone = '+00:00' if zone in ('Z', 'z') else zone
    micro = (fraction or '0')[:6].ljust(6, '0')
    try:
        value = datetime.datetime.fromisoformat('%sT%s.%s%s' % (day, clock, micro, zone))
    except ValueError as exc:
        raise ValueError('%s is not a valid time: %r (%s)' % (what, str(text)[:60], exc)) from None
    return value.astimezone(datetime.timezone.utc)


def format_time(value):
    """Aware datetime -> `2026-12-02T11:00:00.000Z` (the form Alertmanager answers with)."""
    value = value.astimezone(datetime.timezone.utc)
    return value.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (value.microsecond // 1000)


def _regex_literal(text):
    """A host name as a literal in a Go RE2 pattern (host names hold only . - : [ ] besides letters and digits)."""
    return re.sub(r'([.\[\]])', r'\\\1', text)


def host_matcher(host, label, mode):
    """The API matcher of one host: `exact` label=host; `with_port` label=~host(:port)? (matches `gpu-1` and the
    node exporter's `gpu-1:9100`); `regex` label=~host as given."""
    if mode == 'exact':
        return {'name': label, 'value': host, 'isRegex': False, 'isEqual': True}
    if mode == 'with_port':
        return {'name': label, 'value': '%s(:[0-9]+)?' % _regex_literal(host), 'isRegex': True, 'isEqual': True}
    return {'name': label, 'value': host, 'isRegex': True, 'isEqual': True}


def matcher_text(matcher):
    """`instance=~"gpu-1(:[0-9]+)?"` - the PromQL-like form used in results and diffs."""
    op = {(False, True): '=', (False, False): '!=', (True, True): '=~', (True, False): '!~'}[
        (bool(matcher['isRegex']), bool(matcher.get('isEqual', True)))]
    return '%s%s%s' % (matcher['name'], op, json.dumps(matcher['value']))


def _key(matchers):
    return frozenset((m['name'], m['value'], bool(m['isRegex']), bool(m.get('isEqual', True))) for m in matchers)


def _options_error(msg):
    return AlertmanagerError(msg, error_kind='options')


def validate(params, now):
    """Check what the argument spec cannot; returns (wanted matcher lists, starts_at, ends_at)."""
    if not isinstance(params.get('tag'), str) or not TAG_RE.match(params['tag']):
        raise _options_error('tag must be 1 to 128 characters: letters, digits and . _ : @ / - (a run id), got %r'
                             % str(params.get('tag'))[:60])
    label = params.get('host_label')
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise _options_error('host_label must be a Prometheus label name, got %r' % str(label)[:60])
    timeout = params.get('timeout')
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 300:
        raise _options_error('timeout must be a whole number of seconds from 1 to 300, got %r' % (timeout,))
    if params.get('bearer_token') and (params.get('username') or params.get('password')):
        raise _options_error('give bearer_token or username/password, not both')
    if bool(params.get('username')) != bool(params.get('password')):
        raise _options_error('basic auth needs both username and password')
    for name in ('password', 'bearer_token', 'username'):
        value = params.get(name)
        if value is not None and (not isinstance(value, str) or re.search(r'[\x00-\x1f\x7f]', value)):
            raise _options_error('%s holds a control character (the value is not shown)' % name)
    for name in ('comment', 'created_by'):
        if not isinstance(params.get(name), str) or not params[name].strip() or len(params[name]) > 1000:
            raise _options_error('%s must be a non-empty text of at most 1000 characters' % name)
    extra = []
    for matcher in params.get('matchers') or []:
        if not isinstance(matcher, dict) or not LABEL_RE.match(str(matcher.get('name') or '')) \
                or not isinstance(matcher.get('value'), str) or matcher.get('op', '=') not in OPS:
            raise _options_error('each of matchers needs name (a label name), value (a text) and op (%s), got %r'
                                 % (' '.join(OPS), str(matcher)[:120]))
        is_regex, is_equal = OPS[matcher.get('op', '=')]
        extra.append({'name': matcher['name'], 'value': matcher['value'], 'isRegex': is_regex, 'isEqual': is_equal})
    wanted = []
    for host in params.get('hosts') or []:
        if not isinstance(host, str) or not (HOST_RE.match(host) or params['host_match'] == 'regex' and host.strip()):
            raise _options_error('not a host name: %r (host_match=regex takes a pattern)' % str(host)[:80])
        matchers = [host_matcher(host, label, params['host_match'])] + extra
        if _key(matchers) not in [_key(w) for w in wanted]:  # a host listed twice is one silence
            wanted.append(matchers)
    if not params.get('hosts') and extra:
        wanted.append(extra)
    if params['state'] == 'present' and not wanted:
        raise _options_error('state=present needs hosts or matchers (a silence without matchers would match nothing)')
    for matchers in wanted if params['state'] == 'present' else []:
        if all(not m['isEqual'] or (not m['isRegex'] and m['value'] == '') for m in matchers):
            raise _options_error('the silence %s would match every alert: give one matcher that requires a value'
                                 % ', '.join(matcher_text(m) for m in matchers))
    if params['state'] == 'absent':  # the times do not matter: an always: task must not fail on them
        return wanted, now, now
    try:
        starts = parse_time(params['starts_at'], 'starts_at') if params.get('starts_at') else now
        if params.get('ends_at'):
            ends = parse_time(params['ends_at'], 'ends_at')
        else:
            ends = starts + datetime.timedelta(seconds=parse_duration(params.get('duration')))
    except (ValueError, OverflowError) as exc:
        raise _options_error(str(exc)) from None
    starts = max(starts, now)
    length = (ends - starts).total_seconds()
    if not MIN_DURATION <= length <= MAX_DURATION:
        raise _options_error('the silence would last %d s (%s to %s): it must last %d s to %d s (7 days)'
                             % (length, format_time(starts), format_time(ends), MIN_DURATION, MAX_DURATION))
    return wanted, starts, ends


# ----- HTTP ------------------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Alertmanager does not redirect its API; following one would send the credentials elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise AlertmanagerError('%s %s answered a redirect (HTTP %s) to %s: not followed (it would carry the credentials);'
                                ' give the final URL' % (req.get_method(), safe_url(req.full_url), code, safe_url(newurl)),
                                error_kind='refused')


class Client(object):
    """The Alertmanager v2 API at `url` (a route prefix is kept: `https://mon:9093/alertmanager`)."""

    def __init__(self, url, username=None, password=None, bearer_token=None, validate_certs=True, ca_path=None,
                 use_proxy=True, timeout=10, redact=None):
        self.redact = redact or Redactor()
        self.redact.add(password, bearer_token, *url_secrets(url))
        try:
            parts = urllib.parse.urlsplit(str(url or '').strip())
            parts.port  # pylint: disable=pointless-statement  # ValueError for a bad port
        except ValueError:
            raise _options_error('url is not an http(s) URL: %s' % safe_url(url)) from None
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise _options_error('url is not an http(s) URL: %s' % safe_url(url))
        self.base = safe_url(url).rstrip('/')  # user info is never sent: give username / password
        self.timeout = timeout
        self.server_time = None  # the Date of the last answer: Alertmanager's clock
        self.headers = {'Accept': 'application/json', 'User-Agent': 'onprem_ai.maintenance alertmanager_silence'}
        if bearer_token:
            self.headers['Authorization'] = 'Bearer %s' % bearer_token.strip()
        elif username:
            token = base64.b64encode(('%s:%s' % (username, password)).encode('utf-8')).decode('ascii')
            self.redact.add(token)
            self.headers['Authorization'] = 'Basic %s' % token
        handlers = [_NoRedirect()]
        if not use_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        if self.base.startswith('https:'):
            try:
                context = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
            except (OSError, ssl.SSLError) as exc:
                raise _options_error('cannot read ca_path %s: %s' % (ca_path, exc)) from None
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def call(self, method, path, body=None):
        """One request; the answer parsed as JSON (None for an empty body). AlertmanagerError otherwise."""
        what = '%s %s' % (method, self.base + path)
        data = json.dumps(body).encode('utf-8') if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_BODY + 1)
                self.server_time = _http_date(response.headers.get('Date'))
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read(4096) if exc.fp else b''
            except (OSError, http.client.HTTPException):
                text = b''
            detail = self.redact.snippet(text) if text else self.redact(exc.reason)
            raise AlertmanagerError('%s answered HTTP %s: %s' % (what, exc.code, detail), error_kind='refused',
                                    status=exc.code) from None
        except AlertmanagerError:
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise AlertmanagerError('%s failed: %s' % (what, self.redact(reason)), error_kind='unreachable') from None
        if len(raw) > MAX_BODY:
            raise AlertmanagerError('%s: the answer is larger than %d bytes' % (what, MAX_BODY), error_kind='unreadable')
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            raise AlertmanagerError('%s: the answer is not JSON: %s' % (what, self.redact.snippet(raw)),
                                    error_kind='unreadable') from None

    # -- the calls this module makes --
    def status(self):
        """`GET /api/v2/status` -> {version, cluster_status}."""
        answer = self.call('GET', '/api/v2/status')
        try:
            version = answer['versionInfo']['version']
            cluster = answer['cluster']['status']
            if not isinstance(version, str) or not isinstance(cluster, str):
                raise TypeError(version)
        except (KeyError, TypeError, IndexError):
            raise AlertmanagerError('GET %s/api/v2/status: not an Alertmanager status (no versionInfo.version or'
                                    ' cluster.status): %s' % (self.base, self.redact.snippet(json.dumps(answer))),
                                    error_kind='unreadable') from None
        return {'version': version, 'cluster_status': cluster}

    def silences(self):
        """`GET /api/v2/silences` -> every silence, each checked (read_silence)."""
        answer = self.call('GET', '/api/v2/silences')
        if not isinstance(answer, list):
            raise AlertmanagerError('GET %s/api/v2/silences: the answer is not a list of silences but %s: %s'
                                    % (self.base, type(answer).__name__, self.redact.snippet(json.dumps(answer))),
                                    error_kind='unreadable')
        return [read_silence(s, self.redact) for s in answer]

    def post(self, silence):
        """`POST /api/v2/silences` -> the silence's id (new, or the same when updated in place)."""
        answer = self.call('POST', '/api/v2/silences', silence)
        if not isinstance(answer, dict) or not isinstance(answer.get('silenceID'), str) or not answer['silenceID']:
            raise AlertmanagerError('POST %s/api/v2/silences: the answer has no silenceID: %s'
                                    % (self.base, self.redact.snippet(json.dumps(answer))), error_kind='unreadable')
        return answer['silenceID']

    def expire(self, silence_id):
        """`DELETE /api/v2/silence/{id}`."""
        self.call('DELETE', '/api/v2/silence/%s' % urllib.parse.quote(silence_id, safe=''))


def _http_date(value):
    try:
        moment = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment and moment.tzinfo else None


def read_silence(item, redact):
    """One silence of the API, checked: every field this module relies on present and of its type, the times
    parsed (`starts`, `ends`). AlertmanagerError unreadable with what is missing otherwise."""
    def bad(what):
        return AlertmanagerError('a silence in GET /api/v2/silences cannot be read (%s): %s'
                                 % (what, redact.snippet(json.dumps(item, default=str))), error_kind='unreadable')

    if not isinstance(item, dict):
        raise bad('not an object')
    for name in ('id', 'comment', 'createdBy', 'startsAt', 'endsAt'):
        if not isinstance(item.get(name), str):
            raise bad('no %s' % name)
    state = item.get('status', {}).get('state') if isinstance(item.get('status'), dict) else None
    if state not in STATES:
        raise bad('status.state is %r, not one of %s' % (state, ', '.join(STATES)))
    matchers = item.get('matchers')
    if not isinstance(matchers, list) or not matchers:
        raise bad('no matchers')
    for m in matchers:
        if not isinstance(m, dict) or not isinstance(m.get('name'), str) or not isinstance(m.get('value'), str) \
                or not isinstance(m.get('isRegex'), bool) or not isinstance(m.get('isEqual', True), bool):
            raise bad('a matcher without name, value, isRegex')
    try:
        starts, ends = parse_time(item['startsAt'], 'startsAt'), parse_time(item['endsAt'], 'endsAt')
    except ValueError as exc:
        raise bad(str(exc)) from None
    silence = dict(item)
    silence['matchers'] = [dict(m, isEqual=m.get('isEqual', True)) for m in matchers]
    silence['state'], silence['starts'], silence['ends'] = state, starts, ends
    return silence


# ----- the change ------------------------------------------------------------------------------------------------
def tag_text(tag):
    return '[%s%s]' % (TAG_PREFIX, tag)


def summary(silence):
    """What results and diffs show of a silence."""
    return {'id': silence.get('id'), 'state': silence['state'], 'matchers': [matcher_text(m) for m in silence['matchers']],
            'starts_at': format_time(silence['starts']), 'ends_at': format_time(silence['ends']),
            'comment': silence['comment'], 'created_by': silence['createdBy']}


def _body(matchers, starts, ends, params, silence_id=None):
    body = {'matchers': matchers, 'startsAt': format_time(starts), 'endsAt': format_time(ends),
            'createdBy': params['created_by'], 'comment': '%s %s' % (params['comment'].strip(), tag_text(params['tag']))}
    if silence_id:
        body['id'] = silence_id
    return body


def plan(silences, params, wanted, starts, ends):
    """What to do: (create [(matchers)], extend [(silence)], expire [(silence)], keep [(silence)])."""
    mine = [s for s in silences if tag_text(params['tag']) in s['comment'] and s['state'] != 'expired']
    by_key = {}
    for silence in sorted(mine, key=lambda s: s['ends'], reverse=True):
        by_key.setdefault(_key(silence['matchers']), []).append(silence)
    create, extend, expire, keep = [], [], [], []
    wanted_keys = [_key(m) for m in wanted]
    if params['state'] == 'absent':
        expire = [s for s in mine if not wanted or _key(s['matchers']) in wanted_keys]
        return create, extend, expire, keep
    for matchers, key in zip(wanted, wanted_keys):
        found = by_key.get(key, [])
        if not found:
            create.append(matchers)
            continue
        best, duplicates = found[0], found[1:]   # the one ending last is kept, copies (of an older bug) expired
        expire.extend(duplicates)
        if (ends - best['ends']).total_seconds() > EXTEND_SLACK:
            extend.append(best)
        else:
            keep.append(best)
    if params['exclusive']:
        expire.extend(s for s in mine if _key(s['matchers']) not in wanted_keys)
    return create, extend, expire, keep


def apply(params, check_mode=False, redact=None, now=None):
    """Make the tagged silences what `params` asks for; the module's result without `msg`."""
    redact = redact or Redactor()
    redact.add(params.get('password'), params.get('bearer_token'), *url_secrets(params.get('url')))
    given_now = now
    now = now or datetime.datetime.now(datetime.timezone.utc)
    wanted, starts, ends = validate(params, now)
    client = Client(params['url'], params.get('username'), params.get('password'), params.get('bearer_token'),
                    params['validate_certs'], params.get('ca_path'), params['use_proxy'], params['timeout'], redact)
    status = client.status()
    if not given_now and client.server_time:
        # "now" is Alertmanager's clock (its Date header, whole seconds, so never ahead of it): a controller whose clock
        # is ahead would otherwise make pending silences, and a duration counts from when the silence really starts
        now = client.server_time.astimezone(datetime.timezone.utc)
        wanted, starts, ends = validate(params, now)
    silences = client.silences()
    create, extend, expire, keep = plan(silences, params, wanted, starts, ends)
    before = sorted((summary(s) for s in silences if tag_text(params['tag']) in s['comment'] and s['state'] != 'expired'),
                    key=lambda s: (s['matchers'], s['id']))
    done = {'created': [], 'extended': [], 'expired': []}

    def progress():
        return dict(done, changed=any(done.values()))

    try:
        for silence in expire:
            if not check_mode:
                client.expire(silence['id'])
            done['expired'].append(silence['id'])
        for silence in extend:
            if not check_mode:
                new_id = client.post(_body(silence['matchers'], silence['starts'], ends, params, silence['id']))
            else:
                new_id = silence['id']
            done['extended'].append(new_id)
        for matchers in create:
            done['created'].append(client.post(_body(matchers, starts, ends, params)) if not check_mode else None)
    except AlertmanagerError as exc:
        exc.changed = any(done.values()) and not check_mode
        exc.details.update(progress())
        raise
    if check_mode or not any(done.values()):
        after = [s for s in before if s['id'] not in done['expired'] and s['id'] not in done['extended']]
        after += [dict(s, ends_at=format_time(ends)) for s in before if s['id'] in done['extended']]
        after += [summary({'id': None, 'state': 'active' if starts <= now else 'pending', 'matchers': m,
                           'starts': starts, 'ends': ends, 'comment': _body(m, starts, ends, params)['comment'],
                           'createdBy': params['created_by']}) for m in create]
    else:
        try:
            after = [summary(s) for s in client.silences()
                     if tag_text(params['tag']) in s['comment'] and s['state'] != 'expired']
        except AlertmanagerError as exc:  # the change is done: say so, with what was done
            exc.changed = True
            exc.details.update(progress())
            exc.msg = 'the silences were changed, but reading them back failed: %s' % exc.msg
            raise
    after = sorted(after, key=lambda s: (s['matchers'], s['id'] or ''))
    result = progress()
    result['changed'] = any(done.values())
    result.update(silences=after, kept=[s['id'] for s in keep], alertmanager=dict(status, url=client.base),
                  tag=tag_text(params['tag']), diff={'before': {'silences': before}, 'after': {'silences': after}})
    return result
