# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A live probe during a maintenance run: a bounded background process that sends real OpenAI-API requests through
the gateway and records, each second, what a client saw; and the verdict a rolling update asks before each step.

Entry point: `apply(with_defaults(state=..., path=...), check_mode=False)` -> the result documented in
plugins/modules/live_probe.py's RETURN; `ProbeError` (error_kind options / start / stop / write) when it cannot.

The probe directory (`path`, 0700, files 0600) holds:
- `probe.json`     who runs: pid, the process's start time (/proc/<pid>/stat field 22, so a reused pid is never
                   taken for the probe), started, the gateway URL without user info, model, limits;
- `timeline.jsonl` one line per second (written when the second is over): `t` (Unix second), `sent` (requests
                   started), `ok`, `failed` (every failed one, truncated streams included), `truncated`, `lat_ms`
                   (latencies of the ok ones, ms), `errors` (up to 3 reasons with their counts, redacted);
- `marks.jsonl`    marks: every `status` (with its verdict) and every `state: mark`;
- `end.json`       why the probe ended (max_requests, max_seconds, stopped, directory_gone, error) and when.
The API key is never written: the probe is a fork of the module process and keeps the key in memory only.

The process is detached (double fork, setsid, stdio on /dev/null) and bounded twice: no request starts after
`max_seconds` or after `max_requests`, and a watchdog ends it `timeout + 10` s after its deadline whatever hangs.
Requests alternate between plain and streamed chat completions (`modes`), paced at `rate` per second with at most
`concurrency` in flight; a stream counts as ok only when it ends with `[DONE]` and a finish_reason (see
_inference.chat_stream), otherwise it is failed and truncated.

Verdict of `status` (unknown is never ok): `abort` with the reason when the probe data cannot be read, the process is
gone, it has ended, its last second is older than STALE_S, fewer than `min_requests` completed in the last `window`
seconds (after waiting up to `wait` s for a young probe), the error rate is above `max_error_rate` or the p99 latency
above `max_p99_ms` (0: not checked); otherwise `ok`.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import select
import signal
import threading
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._inference import (
    Endpoint, InferenceError, Redactor, RequestFailed, chat_plain, chat_stream, percentile, safe_url)
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._state import write_json

HARD_MAX_SECONDS = 12 * 3600    # a probe never outlives a long maintenance night
HARD_MAX_REQUESTS = 1000000
HARD_MAX_RATE = 50.0
HARD_MAX_CONCURRENCY = 32
STALE_S = 5                     # the last recorded second may be this old (lines are written when a second is over)
START_TIMEOUT_S = 10
MAX_ERRORS_PER_SECOND = 3
META, TIMELINE, MARKS, END = 'probe.json', 'timeline.jsonl', 'marks.jsonl', 'end.json'


class ProbeError(OnpremError):
    """The probe could not be started or stopped, or an option is wrong (error_kind options / start / stop / write)."""

    error_kind = 'probe'


class ProbeDataError(Exception):
    """The probe's files cannot be read for sure; the message says what."""


ARGUMENT_SPEC = dict(
    state=dict(type='str', choices=['started', 'status', 'stopped', 'mark'], default='status'),
    path=dict(type='path', required=True),
    url=dict(type='str'),
    api_key=dict(type='str', no_log=True),
    api_key_header=dict(type='str', default='Authorization', no_log=False),
    model=dict(type='str'),
    prompt=dict(type='str', default='Answer with one word: ready?'),
    max_tokens=dict(type='int', default=8, no_log=False),
    modes=dict(type='list', elements='str', choices=['plain', 'stream'], default=['plain', 'stream']),
    rate=dict(type='float', default=2.0),
    concurrency=dict(type='int', default=4),
    max_requests=dict(type='int', default=20000),
    max_seconds=dict(type='int', default=3600),
    timeout=dict(type='int', default=30),
    validate_certs=dict(type='bool', default=True),
    use_proxy=dict(type='bool', default=True),
    window=dict(type='int', default=30),
    max_error_rate=dict(type='float', default=0.05),
    max_p99_ms=dict(type='float', default=5000.0),
    min_requests=dict(type='int', default=5),
    wait=dict(type='int'),
    mark=dict(type='str'),
    during=dict(type='list', elements='str'),
    stop_timeout=dict(type='int', default=30),
    timeline=dict(type='bool', default=True),
)


def with_defaults(**given):
    params = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    params.update(given)
    return params


def _in_range(params, name, low, high):
    value = params.get(name)
    if value is None or isinstance(value, bool) or not low <= value <= high:
        raise ProbeError('%s must be from %s to %s, got %r' % (name, low, high, value), error_kind='options')


def validate(params):
    if not params.get('path') or not os.path.isabs(params['path']):
        raise ProbeError('path must be an absolute directory path, got %r' % params.get('path'), error_kind='options')
    state = params['state']
    if state == 'started':
        for name in ('url', 'model'):
            if not params.get(name) or not str(params[name]).strip():
                raise ProbeError('state=started needs %s' % name, error_kind='options')
        if not params.get('modes'):
            raise ProbeError('modes must name plain, stream or both', error_kind='options')
        _in_range(params, 'rate', 0.01, HARD_MAX_RATE)
        _in_range(params, 'concurrency', 1, HARD_MAX_CONCURRENCY)
        _in_range(params, 'max_requests', 1, HARD_MAX_REQUESTS)
        _in_range(params, 'max_seconds', 1, HARD_MAX_SECONDS)
        _in_range(params, 'timeout', 1, 600)
        _in_range(params, 'max_tokens', 1, 4096)
    if state == 'status':
        _in_range(params, 'window', 1, 3600)
        _in_range(params, 'max_error_rate', 0.0, 1.0)
        _in_range(params, 'max_p99_ms', 0.0, 3600000.0)  # 0: latency not checked
        _in_range(params, 'min_requests', 1, 1000000)
        if params.get('wait') is not None:
            _in_range(params, 'wait', 0, 3600)
    if state == 'mark' and not (params.get('mark') or '').strip():
        raise ProbeError('state=mark needs mark (a name)', error_kind='options')
    if state == 'stopped':
        _in_range(params, 'stop_timeout', 1, 600)
        if params.get('during') is not None and len(params['during']) != 2:
            raise ProbeError('during must be two marks or times: [start, end]', error_kind='options')


# ----- the process -----------------------------------------------------------------------------------------------
def _proc_start(pid):
    """The start time of a process (clock ticks since boot, /proc/<pid>/stat field 22), None when it is gone."""
    try:
        with open('/proc/%d/stat' % int(pid)) as handle:
            stat = handle.read()
    except (OSError, ValueError):
        return None
    try:
        fields = stat[stat.rindex(')') + 2:].split()
        return int(fields[19])
    except (ValueError, IndexError):
        return None


def _alive(meta):
    """True when the process recorded in probe.json still runs (same pid and start time, not a zombie)."""
    try:
        pid, start = int(meta['pid']), int(meta['pid_start'])
    except (KeyError, TypeError, ValueError):
        return False
    if _proc_start(pid) != start:
        return False
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
        return stat[stat.rindex(')') + 2:].split()[0] != 'Z'
    except (OSError, ValueError, IndexError):
        return False


def _append_line(path, obj):
    """One JSON line, written by one write() of the whole line (a reader ignores a last line without newline)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(obj, sort_keys=True) + '\n').encode('utf-8'))
    finally:
        os.close(fd)


class _Recorder(object):
    """Per-second buckets of the probe, written as timeline lines once each second is over."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.buckets = {}
        self.totals = dict(sent=0, ok=0, failed=0, truncated=0)
        self.written = None

    def _bucket(self, second):
        return self.buckets.setdefault(second, dict(t=second, sent=0, ok=0, failed=0, truncated=0, lat_ms=[], errors={}))

    def _second(self, now):
        """The second a record goes to: a late one (its second already written) goes to the next."""
        second = int(now)
        return second if self.written is None or second > self.written else self.written + 1

    def sent(self, now):
        with self.lock:
            self._bucket(self._second(now))['sent'] += 1
            self.totals['sent'] += 1

    def done(self, now, latency_s, reason=None, truncated=False):
        with self.lock:
            bucket = self._bucket(self._second(now))
            if reason is None:
                bucket['ok'] += 1
                bucket['lat_ms'].append(round(latency_s * 1000.0, 1))
                self.totals['ok'] += 1
                return
            bucket['failed'] += 1
            self.totals['failed'] += 1
            if truncated:
                bucket['truncated'] += 1
                self.totals['truncated'] += 1
            errors = bucket['errors']
            if reason in errors or len(errors) < MAX_ERRORS_PER_SECOND:
                errors[reason[:300]] = errors.get(reason[:300], 0) + 1

    def flush(self, now, final=False):
        """Write every second that is over (every one when final), and an empty line for a second without activity."""
        current = int(now)
        with self.lock:
            last = current if final else current - 1
            start = self.written + 1 if self.written is not None else min(self.buckets or [last])
            lines = [self.buckets.pop(s, dict(t=s, sent=0, ok=0, failed=0, truncated=0, lat_ms=[], errors={}))
                     for s in range(start, last + 1)]
            if lines:
                self.written = last
        for line in lines:
            _append_line(self.path, line)


def _worker_loop(params, endpoint, recorder, stop, schedule):
    """One worker: takes the next request number, waits for its due time, sends it, records what it saw."""
    modes = params['modes']
    while not stop.is_set():
        number = schedule()
        if number is None:
            return
        due = schedule.start + number / float(params['rate'])
        delay = due - time.time()
        if delay > 0 and stop.wait(delay):
            return
        if time.time() >= schedule.deadline:
            return
        mode = modes[number % len(modes)]
        began = time.time()
        recorder.sent(began)
        clock = time.monotonic()
        try:
            if mode == 'stream':
                chat_stream(endpoint, params['model'], params['prompt'], params['max_tokens'])
            else:
                chat_plain(endpoint, params['model'], params['prompt'], params['max_tokens'])
        except RequestFailed as exc:
            recorder.done(time.time(), time.monotonic() - clock, '%s: %s' % (mode, exc.reason), exc.truncated)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            recorder.done(time.time(), time.monotonic() - clock, '%s: %s' % (mode, endpoint.redact(type(exc).__name__)))
        else:
            recorder.done(time.time(), time.monotonic() - clock)


class _Schedule(object):
    """Request numbers 0 .. max_requests-1, handed out once each; None when the count or the time is up."""

    def __init__(self, max_requests, max_seconds):
        self.lock = threading.Lock()
        self.next = 0
        self.max = max_requests
        self.start = time.time()
        self.deadline = self.start + max_seconds

    def __call__(self):
        with self.lock:
            if self.next >= self.max or time.time() >= self.deadline:
                return None
            self.next += 1
            return self.next - 1


def _probe_main(params, endpoint, directory, started):
    """The detached probe: runs the workers, writes the timeline, ends with end.json. Never returns an error."""
    stop = threading.Event()
    reason = []
    signal.signal(signal.SIGTERM, lambda *_: (reason.append('stopped'), stop.set()))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    recorder = _Recorder(os.path.join(directory, TIMELINE))
    schedule = _Schedule(params['max_requests'], params['max_seconds'])
    hard_end = schedule.deadline + params['timeout'] + 10

    def watchdog():
        while time.time() < hard_end:
            time.sleep(1)
        _end(directory, 'killed by its watchdog %d s after max_seconds' % (params['timeout'] + 10), recorder, started)
        os._exit(3)  # pylint: disable=protected-access

    threading.Thread(target=watchdog, daemon=True).start()
    workers = [threading.Thread(target=_worker_loop, args=(params, endpoint, recorder, stop, schedule), daemon=True)
               for dummy in range(params['concurrency'])]
    for worker in workers:
        worker.start()
    while any(w.is_alive() for w in workers) and not stop.is_set():
        stop.wait(1.0 - (time.time() % 1.0) + 0.01)
        if not os.path.isdir(directory):
            reason.append('directory_gone')
            stop.set()
            break
        recorder.flush(time.time())
    if not reason:
        reason.append('max_requests' if schedule.next >= schedule.max else 'max_seconds')
    stop.set()
    for worker in workers:  # requests in flight end within their timeout
        worker.join(max(0.0, hard_end - time.time()))
    if os.path.isdir(directory):
        recorder.flush(time.time(), final=True)
        _end(directory, reason[0], recorder, started)


def _end(directory, reason, recorder, started):
    try:
        write_json(os.path.join(directory, END), dict(reason=reason, ended=time.time(), started=started,
                                                      totals=dict(recorder.totals)))
    except OSError:
        pass


def _detach(params, directory, redact):
    """Double fork; the grandchild runs the probe and reports its pid through a pipe. Returns the pid."""
    endpoint = Endpoint(params['url'], params.get('api_key'), params['api_key_header'], params['timeout'],
                        params['validate_certs'], params['use_proxy'], redact, name='gateway')
    import encodings.idna  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel  # before the module's files go
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # first child
        code = 0
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)  # pylint: disable=protected-access
            # the probe: no terminal, no stdout of the module (Ansible waits for it), no other inherited file
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            for fd in range(3, 4096):
                if fd not in (write_fd, devnull):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            os.chdir('/')
            started = time.time()
            me = os.getpid()
            write_json(os.path.join(directory, META), dict(
                pid=me, pid_start=_proc_start(me), started=started, url=safe_url(params['url']), model=params['model'],
                modes=params['modes'], rate=params['rate'], concurrency=params['concurrency'],
                max_requests=params['max_requests'], max_seconds=params['max_seconds'], timeout=params['timeout']))
            os.write(write_fd, str(me).encode('ascii'))
            os.close(write_fd)
            _probe_main(params, endpoint, directory, started)
        except BaseException:  # pylint: disable=broad-exception-caught
            code = 1
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.close(write_fd)
    try:
        os.waitpid(pid, 0)
        ready = select.select([read_fd], [], [], START_TIMEOUT_S)[0]
        data = os.read(read_fd, 32) if ready else b''
    finally:
        os.close(read_fd)
    try:
        return int(data.decode('ascii'))
    except ValueError:
        raise ProbeError('the probe process did not start (no pid within %d s)' % START_TIMEOUT_S, error_kind='start') from None


# ----- reading the probe's files ---------------------------------------------------------------------------------
def _read_json(path, what):
    try:
        with open(path) as handle:
            obj = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ProbeDataError('%s (%s) cannot be read: %s' % (what, path, exc)) from None
    if not isinstance(obj, dict):
        raise ProbeDataError('%s (%s) is not a JSON object' % (what, path))
    return obj


def _count(line, key, where):
    value = line.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProbeDataError('%s: %s is not a count: %r' % (where, key, value))
    return value


def _read_lines(path, what, check):
    """The complete lines of a JSON-lines file (a last line without newline is being written: left out)."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise ProbeDataError('%s (%s) cannot be read: %s' % (what, path, exc)) from None
    lines = []
    for number, text in enumerate(raw.split(b'\n')[:-1], 1):
        where = '%s line %d' % (what, number)
        try:
            obj = json.loads(text.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            raise ProbeDataError('%s is not JSON' % where) from None
        if not isinstance(obj, dict):
            raise ProbeDataError('%s is not a JSON object' % where)
        lines.append(check(obj, where))
    return lines


def _timeline_line(obj, where):
    for key in ('t', 'sent', 'ok', 'failed', 'truncated'):
        _count(obj, key, where)
    lat = obj.get('lat_ms')
    if not isinstance(lat, list) or len(lat) != obj['ok'] or \
            any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in lat):
        raise ProbeDataError('%s: lat_ms is not a list of %d latencies' % (where, obj['ok']))
    if obj['truncated'] > obj['failed']:
        raise ProbeDataError('%s: more truncated than failed requests' % where)
    if not isinstance(obj.get('errors', {}), dict):
        raise ProbeDataError('%s: errors is not an object' % where)
    return obj


def _mark_line(obj, where):
    if not isinstance(obj.get('mark'), str) or isinstance(obj.get('t'), bool) or not isinstance(obj.get('t'), (int, float)):
        raise ProbeDataError('%s: not a mark (name and time)' % where)
    return obj


def read(directory):
    """(meta, timeline lines, marks, end or None); ProbeDataError when any of it cannot be read for sure."""
    meta = _read_json(os.path.join(directory, META), 'the probe record')
    for key in ('pid', 'pid_start', 'started'):
        if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), (int, float)):
            raise ProbeDataError('the probe record has no %s' % key)
    lines = _read_lines(os.path.join(directory, TIMELINE), 'the timeline', _timeline_line)
    for before, after in zip(lines, lines[1:]):
        if after['t'] <= before['t']:
            raise ProbeDataError('the timeline goes back in time at second %d' % after['t'])
    marks = _read_lines(os.path.join(directory, MARKS), 'the marks', _mark_line)
    end = None
    if os.path.exists(os.path.join(directory, END)):
        end = _read_json(os.path.join(directory, END), 'the end record')
        if not isinstance(end.get('reason'), str):
            raise ProbeDataError('the end record has no reason')
    return meta, lines, marks, end


def figures(lines):
    """Sums and latency percentiles of timeline lines (error_rate over completed requests; None when none)."""
    out = dict(seconds=len(lines), sent=0, ok=0, failed=0, truncated=0)
    latencies = []
    errors = {}
    for line in lines:
        for key in ('sent', 'ok', 'failed', 'truncated'):
            out[key] += line[key]
        latencies.extend(line['lat_ms'])
        for reason, count in (line.get('errors') or {}).items():
            errors[reason] = errors.get(reason, 0) + (count if isinstance(count, int) else 1)
    done = out['ok'] + out['failed']
    out['completed'] = done
    out['error_rate'] = round(out['failed'] / float(done), 4) if done else None
    out['p50_ms'] = percentile(latencies, 0.50)
    out['p99_ms'] = percentile(latencies, 0.99)
    out['errors'] = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5])
    return out


# ----- states ----------------------------------------------------------------------------------------------------
def _ensure_dir(directory, check_mode):
    if os.path.isdir(directory):
        mode = os.stat(directory).st_mode & 0o777
        if mode & 0o077 and not check_mode:
            os.chmod(directory, 0o700)
        return
    if check_mode:
        return
    try:
        os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise ProbeError('cannot create the probe directory %s: %s' % (directory, exc), error_kind='write') from None


def _meta_or_none(directory):
    try:
        return _read_json(os.path.join(directory, META), 'the probe record')
    except ProbeDataError:
        return None


def start(params, check_mode, redact):
    directory = params['path']
    meta = _meta_or_none(directory)
    if meta and _alive(meta) and not os.path.exists(os.path.join(directory, END)):
        return dict(changed=False, running=True, pid=meta['pid'], msg='a probe already runs in %s (pid %s)' % (
            directory, meta['pid']))
    if check_mode:
        return dict(changed=True, running=False, msg='a probe would be started')
    _ensure_dir(directory, False)
    for name in (META, TIMELINE, MARKS, END):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise ProbeError('cannot clear the old probe data %s: %s' % (name, exc), error_kind='write') from None
    try:
        pid = _detach(params, directory, redact)
    except InferenceError as exc:
        raise ProbeError(exc.msg, error_kind='options') from None
    return dict(changed=True, running=True, pid=pid, msg='probe started (pid %d): %s requests/s, at most %d requests '
                'or %d s' % (pid, params['rate'], params['max_requests'], params['max_seconds']))


def _verdict(params, now):
    """(verdict, reason, window figures, totals, running) from the files; abort whenever something is unknown."""
    directory = params['path']
    try:
        meta, lines, _marks, end = read(directory)
    except ProbeDataError as exc:
        return 'abort', 'probe data unreadable: %s' % exc, None, None, False, False
    running = _alive(meta)
    totals = figures(lines)
    window = [line for line in lines if line['t'] > now - 1 - params['window']]
    win = figures(window)
    if end is not None:
        return 'abort', 'the probe has ended (%s): nothing measures the gateway now' % end['reason'], win, totals, running, False
    if not running:
        return 'abort', 'the probe process %s is gone without an end record' % meta['pid'], win, totals, False, False
    young = now - meta['started'] < params['window']
    if not lines:
        return 'abort', 'the probe has recorded no second yet', win, totals, running, young
    age = now - (lines[-1]['t'] + 1)
    if age > STALE_S:
        return 'abort', 'the probe data is stale: its last second was %.0f s ago' % age, win, totals, running, False
    if win['completed'] < params['min_requests']:
        return 'abort', 'only %d requests completed in the last %d s (min_requests %d)' % (
            win['completed'], params['window'], params['min_requests']), win, totals, running, young
    if win['error_rate'] > params['max_error_rate']:
        return 'abort', 'error rate %.1f%% in the last %d s (%d of %d failed, %d truncated) is above %.1f%%' % (
            100 * win['error_rate'], params['window'], win['failed'], win['completed'], win['truncated'],
            100 * params['max_error_rate']), win, totals, running, False
    if win['p99_ms'] is None:
        return 'abort', 'no successful request in the last %d s' % params['window'], win, totals, running, False
    if params['max_p99_ms'] and win['p99_ms'] > params['max_p99_ms']:
        return 'abort', 'p99 latency %.0f ms in the last %d s is above %.0f ms' % (
            win['p99_ms'], params['window'], params['max_p99_ms']), win, totals, running, False
    return 'ok', 'error rate %.1f%% (%d of %d), p99 %.0f ms in the last %d s' % (
        100 * win['error_rate'], win['failed'], win['completed'], win['p99_ms'], params['window']), win, totals, running, False


def status(params, check_mode):
    wait = params['window'] if params.get('wait') is None else params['wait']
    until = time.time() + wait
    while True:
        now = time.time()
        verdict, reason, window, totals, running, young = _verdict(params, now)
        if verdict == 'ok' or not young or now >= until:
            break
        time.sleep(min(1.0, max(0.0, until - now)))  # a young probe: its window is still filling
    if not check_mode and os.path.isfile(os.path.join(params['path'], META)):
        try:
            _append_line(os.path.join(params['path'], MARKS), dict(mark='status', t=time.time(), verdict=verdict,
                                                                   reason=reason))
        except OSError:
            pass  # the verdict stands; the mark is only for the report
    return dict(changed=False, verdict=verdict, reason=reason, window=window, totals=totals, running=running,
                thresholds=dict(window=params['window'], max_error_rate=params['max_error_rate'],
                                max_p99_ms=params['max_p99_ms'], min_requests=params['min_requests']))


def mark(params, check_mode):
    if not os.path.isfile(os.path.join(params['path'], META)):
        raise ProbeError('no probe in %s to mark' % params['path'], error_kind='missing')
    stamp = time.time()
    if not check_mode:
        try:
            _append_line(os.path.join(params['path'], MARKS), dict(mark=params['mark'].strip(), t=stamp))
        except OSError as exc:
            raise ProbeError('cannot write the mark: %s' % exc, error_kind='write') from None
    return dict(changed=True, mark=params['mark'].strip(), t=stamp)


def _mark_time(value, marks):
    """A mark's name (its last occurrence), Unix seconds or an RFC 3339 time with a zone."""
    named = [m['t'] for m in marks if m['mark'] == value]
    if named:
        return named[-1]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))
    except ValueError:
        raise ProbeError('during: %r is neither a mark nor a time' % value, error_kind='options') from None
    if parsed.tzinfo is None:
        raise ProbeError('during: %r has no time zone' % value, error_kind='options')
    return parsed.timestamp()


def summary(params, meta, lines, marks, end):
    """Totals, the phases before / during / after, the marks and (optionally) the per-second timeline."""
    if params.get('during'):
        bounds = [_mark_time(v, marks) for v in params['during']]
    elif marks:
        bounds = [marks[0]['t'], marks[-1]['t']] if len(marks) > 1 else [marks[0]['t'], float('inf')]
    else:
        bounds = None
    result = dict(started=meta.get('started'), url=meta.get('url'), model=meta.get('model'),
                  end_reason=end.get('reason') if end else None, ended=end.get('ended') if end else None,
                  totals=figures(lines), marks=marks)
    if bounds:
        low, high = min(bounds), max(bounds)
        result['during'] = dict(start=low, end=high if high != float('inf') else None)
        result['phases'] = dict(before=figures([x for x in lines if x['t'] + 1 <= low]),
                                during=figures([x for x in lines if x['t'] + 1 > low and x['t'] < high]),
                                after=figures([x for x in lines if x['t'] >= high]))
    if params['timeline']:
        result['timeline'] = [dict(t=x['t'], sent=x['sent'], ok=x['ok'], failed=x['failed'], truncated=x['truncated'],
                                   p50_ms=percentile(x['lat_ms'], 0.5), p99_ms=percentile(x['lat_ms'], 0.99))
                              for x in lines]
    return result


def stop(params, check_mode):
    directory = params['path']
    meta = _meta_or_none(directory)
    if meta is None and not os.path.exists(os.path.join(directory, META)):
        return dict(changed=False, running=False, summary=None, msg='no probe in %s' % directory)
    running = bool(meta) and _alive(meta) and not os.path.exists(os.path.join(directory, END))
    killed = False
    if running and not check_mode:
        pid = int(meta['pid'])
        os.kill(pid, signal.SIGTERM)
        until = time.time() + params['stop_timeout']
        while _alive(meta) and time.time() < until:
            time.sleep(0.1)
        if _alive(meta):
            os.kill(pid, signal.SIGKILL)
            killed = True
            time.sleep(0.2)
        if _alive(meta):
            raise ProbeError('the probe process %d did not end' % pid, error_kind='stop', changed=True)
    try:
        meta, lines, marks, end = read(directory)
    except ProbeDataError as exc:
        return dict(changed=running, running=False, summary=None, verdict='abort', reason='probe data unreadable: %s' % exc,
                    msg='probe data unreadable: %s' % exc)
    result = summary(params, meta, lines, marks, end)
    if killed:
        result['end_reason'] = 'killed after stop_timeout'
    return dict(changed=running, running=running and check_mode, summary=result,
                msg='probe stopped' if running else 'the probe was not running')


def apply(params, check_mode=False, redact=None):
    validate(params)
    redact = redact or Redactor()
    redact.add(params.get('api_key'))
    state = params['state']
    if state == 'started':
        return start(params, check_mode, redact)
    if state == 'status':
        return status(params, check_mode)
    if state == 'mark':
        return mark(params, check_mode)
    return stop(params, check_mode)
