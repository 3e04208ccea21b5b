# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP(S) downloads of model files, and the errors of the models domain (its lowest layer).

What a download verifies (HttpClient.download):
  * the sha256 is computed over the bytes READ BACK from the file through the file system (a thread that trails the
    writer with pread), never over the network buffers; a resumed `.partial` is read back from its first byte; the
    file is fsynced and its size on disk must equal the number of bytes hashed (and the pinned or announced size);
  * a `.partial` is resumed only with `Range` + `If-Range` carrying the strong ETag (or the Last-Modified date) of
    the response that started it, recorded next to it in `<file>.partial.meta` (0600, URL without credentials or
    query); a changed ETag, a 200 answer, a Content-Range that does not start where the file ends: restart from 0;
  * with a known size (pinned, or announced by the server), writing stops at that size and more bytes are an error;
  * ENOSPC / EDQUOT while writing: the `.partial` and its meta are removed (the disk is freed) and the run fails.

Credentials (the bearer token and the extra headers) are sent to the origin (scheme, host, port) of the URL given
only: a redirect to another origin drops them for the rest of the chain; a redirect from https to plain http is
refused (whatever the origin). A proxy (the http_proxy / https_proxy / no_proxy environment, or the same given to the
client) gets its own credentials only (Proxy-Authorization, on the CONNECT of an https tunnel); they are masked like
the others. An extra CA bundle (`ca_path`) is trusted besides the system's certificates.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import select
import ssl
import threading
import time
import urllib.error
import urllib.parse

from ansible.module_utils.urls import Request

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

BUFFER = 8 * 1024 * 1024
SPLICE = hasattr(os, 'splice')  # plain http bodies go socket -> pipe -> file in the kernel (Linux, Python 3.10+)
SPLICE_STEP = 1024 * 1024
F_SETPIPE_SZ = 1031
MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
META_SUFFIX = '.meta'
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL = re.compile(r'[\x00-\x1f\x7f]')
PROXY_VARIABLES = ('http_proxy', 'https_proxy', 'no_proxy')


# -- errors of the models domain ---------------------------------------------------------------------------

class ModelError(OnpremError):
    """Stop with this message; the current version was not changed. `error_kind` says why (subclasses)."""

    error_kind = 'error'


class ModelInvalid(ModelError):
    """An option has no usable value (nothing was changed)."""

    error_kind = 'invalid'


class ModelRefused(ModelError):
    """The request contradicts the store (an immutable version, the current version, a downgrade to plain http)."""

    error_kind = 'refused'


class ModelCorrupt(ModelError):
    """Bytes that do not match their pinned checksum or size, or a damaged version."""

    error_kind = 'corrupt'


class ModelNetworkError(ModelError):
    """The source cannot be reached or answers with an error."""

    error_kind = 'network'


class ModelNoSpace(ModelError):
    """Not enough disk space (before the download, or ENOSPC while writing)."""

    error_kind = 'no_space'


class ModelBusy(ModelError):
    """Another run holds the model's lock."""

    error_kind = 'busy'


def human_bytes(num):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(num) < 1024 or unit == 'TiB':
            return '%.1f %s' % (num, unit) if unit != 'B' else '%d B' % num
        num /= 1024.0
    return '%d B' % num  # pragma: no cover


def human_seconds(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return '%d h %02d min' % (seconds // 3600, seconds % 3600 // 60)
    return '%d min %02d s' % (seconds // 60, seconds % 60) if seconds >= 60 else '%d s' % seconds


class Progress(object):
    """The progress of a long pull in a small JSON file (0600, written atomically every `interval` seconds by a thread,
    and at each phase): state (running, done, failed), phase, bytes done and total, rate, ETA and a `line` for people.
    It holds the model's name and version and file paths inside the version, never a URL or a credential.

    The transfer loops only set `pos` (bytes of the current file on disk); `file_done(size)` moves to the next file.
    With path None nothing is written (and nothing is started)."""

    def __init__(self, path, interval=5.0, name=None, version=None, now=time.monotonic):
        self.path = path if isinstance(path, str) and os.path.isabs(path) else None
        self.interval = min(max(interval or 5, 1), 3600)
        self.now = now
        self.fixed = {'name': name, 'version': version, 'pid': os.getpid()}
        self.total = None
        self.base = 0
        self.pos = 0
        self.phase = 'starting'
        self.state = 'running'
        self.started = now()
        self.samples = []
        self.stopping = threading.Event()
        self.thread = None

    @property
    def done(self):
        return self.base + self.pos

    def start(self):
        if self.path and self.thread is None:
            self.write()
            self.thread = threading.Thread(target=self.tick, name='model_pull-progress', daemon=True)
            self.thread.start()
        return self

    def tick(self):
        while not self.stopping.wait(self.interval):
            self.write()

    def set(self, phase, total=None):
        """A new phase (e.g. `waiting for the lock`, `downloading`, `verifying`), written at once."""
        self.phase = phase
        if total is not None:
            self.total = total
        self.write()

    def file_done(self, size):
        self.base += size
        self.pos = 0

    def finish(self, ok):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        self.state = 'done' if ok else 'failed'
        self.phase = 'done' if ok else 'failed'
        self.write()

    def snapshot(self):
        now = self.now()
        done = self.done
        self.samples = [s for s in self.samples if now - s[0] <= 4 * self.interval] + [(now, done)]
        first = self.samples[0]
        rate = (done - first[1]) / (now - first[0]) if now - first[0] >= 0.5 else None
        eta = (self.total - done) / rate if rate and self.total is not None and self.total >= done else None
        line = '%s %s: %s' % (self.fixed['name'], self.fixed['version'] or '', self.phase)
        if self.total:
            line += ', %s of %s (%d%%)' % (human_bytes(done), human_bytes(self.total), 100 * done // self.total)
        elif done:
            line += ', %s' % human_bytes(done)
        if rate and self.state == 'running':
            line += ', %s/s' % human_bytes(rate)
        if eta is not None and self.state == 'running':
            line += ', ETA %s' % human_seconds(eta)
        line += ', %s elapsed' % human_seconds(now - self.started)
        data = dict(self.fixed, state=self.state, phase=self.phase, bytes_done=done, bytes_total=self.total,
                    rate=int(rate) if rate else None, eta=int(eta) if eta is not None else None,
                    elapsed=round(now - self.started, 1), updated=time.time(), line=line.replace('"', "'"))
        return data

    def write(self):
        if not self.path:
            return
        try:
            state.write_json(self.path, self.snapshot(), mode=0o600)
        except OSError:
            pass  # progress is for people: a full disk or a removed directory must not fail the pull


class ShortRead(Exception):
    """The server closed the connection before the announced end of the body."""


class Redactor(object):
    """Masks the known secrets (token, header values, URL credentials, proxy credentials) in a text."""

    def __init__(self, secrets=()):
        self.values = set()
        self.add(*secrets)

    def add(self, *secrets):
        self.values.update(str(s) for s in secrets if s is not None and str(s).strip())

    def __call__(self, text):
        text = str(text)
        for secret in sorted(self.values, key=len, reverse=True):
            text = text.replace(secret, '********')
        return text


# -- input checks ------------------------------------------------------------------------------------------

def redact_url(url):
    """The URL without user:password and without query or fragment (presigned URLs carry their credentials there)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname or ''
        port = parts.port
    except ValueError:
        return '(an invalid URL)'
    netloc = ('[%s]' % host if ':' in host else host) + (':%d' % port if port else '')
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, 'redacted' if parts.query else '', ''))


def url_secrets(url):
    """Parts of a URL that are credentials: the password (and user) of its user info, its query string."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        out = [parts.password, parts.query, parts.fragment]
        if parts.password:
            out.append(parts.username)
    except ValueError:
        return [str(url)]
    return [s for s in out if s and len(s) >= 3]


def check_url(url, what='url'):
    """Only http and https with a host; no white space, no control or non-ASCII characters (percent-encode them)."""
    text = url if isinstance(url, str) else ''
    safe = redact_url(text) if text else repr(url)
    if not text or CONTROL.search(text) or ' ' in text or any(ord(c) > 126 for c in text):
        raise ModelInvalid('%s %s is not a usable URL: give an http:// or https:// URL without spaces, control or non-ASCII '
                           'characters (percent-encode them)' % (what, safe if text and ' ' not in text else repr(redact_url(text))))
    try:
        parts = urllib.parse.urlsplit(text)
        dummy = parts.port
    except ValueError as exc:
        raise ModelInvalid('%s %s is not a usable URL (%s)' % (what, safe, str(exc).split(':', maxsplit=1)[0])) from None
    if parts.scheme.lower() not in ('http', 'https'):
        raise ModelInvalid('%s %s: only http:// and https:// URLs are supported (not %s)'
                           % (what, safe, (parts.scheme + '://') if parts.scheme else 'a URL without scheme'))
    if not parts.hostname:
        raise ModelInvalid('%s %s has no host name' % (what, safe))
    return text


def clean_token(token):
    """Leading and trailing white space (a newline from a file lookup) is removed; other control characters are refused."""
    if token is None:
        return None
    token = str(token).strip()
    if CONTROL.search(token) or any(ord(c) > 126 for c in token):
        raise ModelInvalid('token contains a control or non-ASCII character inside it (not only at its ends): it was not sent; '
                           'check how it is read (vault, lookup) and remove the character')
    return token or None


def clean_headers(headers):
    """{name: value}, with names checked and values as strings without control characters (never quoted in messages)."""
    out = {}
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not HEADER_NAME.match(key):
            raise ModelInvalid('headers: %r is not a valid HTTP header name' % (key if isinstance(key, str) and len(key) < 80 else '...'))
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            raise ModelInvalid('headers: the value of %s must be a string (not %s)' % (key, type(value).__name__))
        value = str(value).strip()
        if CONTROL.search(value) or any(ord(c) > 255 for c in value):
            raise ModelInvalid('headers: the value of %s contains a control character (a newline?) or a character outside '
                               'Latin-1: it was not sent' % key)
        out[key] = value
    return out


def parse_headers(raw):
    """`headers` as a dict, a JSON object string or a `k=v k2=v2` string (the forms Ansible's dict type accepts)."""
    if raw is None or raw == '':
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith('{'):
            try:
                data = json.loads(text)
            except ValueError:
                raise ModelInvalid('headers: the string is neither a JSON object nor key=value pairs') from None
            if not isinstance(data, dict):
                raise ModelInvalid('headers: the JSON string is not an object')
            return data
        from ansible.module_utils.common.validation import check_type_dict  # pylint: disable=import-outside-toplevel
        try:
            return check_type_dict(text)
        except (TypeError, ValueError):
            raise ModelInvalid('headers: the string is neither a JSON object nor key=value pairs') from None
    raise ModelInvalid('headers must be a dict of header names to values (not %s)' % type(raw).__name__)


# -- on-disk hashing ------------------------------------------------------------------------------------------

SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_STEP = 64 * 1024 * 1024


def _sync_file_range():
    """Linux sync_file_range(2) through libc (no Python binding): starts the write-back of a range without waiting, so
    that the final fsync does not find the whole file dirty. None where it is not available (then only fsync)."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError, TypeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


SYNC_FILE_RANGE = _sync_file_range()


WRITEBACK_THREAD = True


class WriteBack(object):
    """Starts the write-back of the verified part of the file (sync_file_range) in a thread of its own: the call may
    block while the device's queue is full, and must not hold up the hashing or the transfer."""

    def __init__(self, fd):
        self.fd = fd
        self.started = 0
        self.target = 0
        self.done = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, name='model_pull-writeback', daemon=True)
        self.thread.start()

    def request(self, upto):
        with self.cond:
            self.target = upto
            self.cond.notify()

    def run(self):
        while True:
            with self.cond:
                while self.target <= self.started and not self.done:
                    self.cond.wait()
                if self.done:
                    return
                start, upto = self.started, self.target
            SYNC_FILE_RANGE(self.fd, start, upto - start, SYNC_FILE_RANGE_WRITE)
            self.started = upto

    def stop(self):
        with self.cond:
            self.done = True
            self.cond.notify()
        self.thread.join()


class DiskHasher(object):
    """sha256 of a file read back through the file system, in a thread that trails the writer (advance(n): the
    first n bytes are written). finish(size) waits until `size` bytes were read back and returns the hex digest."""

    def __init__(self, path, chunk=BUFFER):
        self.fd = os.open(path, os.O_RDONLY)
        self.chunk = chunk
        self.digest = hashlib.sha256()
        self.offset = 0
        self.synced = 0
        self.limit = 0
        self.done = False
        self.aborted = False
        self.error = None
        self.cond = threading.Condition()
        self.writeback = WriteBack(self.fd) if SYNC_FILE_RANGE is not None and WRITEBACK_THREAD else None
        self.thread = threading.Thread(target=self.run, name='model_pull-sha256', daemon=True)
        self.thread.start()

    def advance(self, upto):
        with self.cond:
            self.limit = upto
            if upto - self.offset >= self.chunk:  # wake the thread for whole chunks only (fewer GIL hand-overs)
                self.cond.notify()

    def run(self):
        buf = bytearray(self.chunk)
        view = memoryview(buf)
        try:
            while True:
                with self.cond:
                    while self.limit - self.offset < self.chunk and not self.done:
                        self.cond.wait()
                    if self.offset >= self.limit:
                        return
                    upto = self.limit
                while self.offset < upto and not self.aborted:
                    count = os.preadv(self.fd, [view[:min(self.chunk, upto - self.offset)]], self.offset)
                    if count <= 0:
                        raise OSError(errno.EIO, 'the file ends at %d bytes, %d were written' % (self.offset, upto))
                    self.digest.update(view[:count])
                    self.offset += count
                    if self.writeback is not None and self.offset - self.synced >= WRITEBACK_STEP:
                        self.writeback.request(self.offset)
                        self.synced = self.offset
        except OSError as exc:
            self.error = exc
        finally:
            view.release()

    def stop(self, abort=True):
        """End the thread; abort: without reading the rest (the transfer failed)."""
        with self.cond:
            self.done = True
            self.aborted = self.aborted or abort
            if abort:
                self.limit = self.offset
            self.cond.notify()
        self.thread.join()
        if self.writeback is not None:
            self.writeback.stop()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def finish(self, size):
        """(hex digest, bytes hashed) once `size` bytes were read back."""
        self.advance(size)
        self.stop(abort=False)
        if self.error is not None:
            raise self.error
        return self.digest.hexdigest(), self.offset


def write_all(fd, view):
    while len(view):
        count = os.write(fd, view)
        view = view[count:]


def splice_out(pipe, fd, count):
    """Move `count` bytes from a pipe into the file (raises OSError of the file side: ENOSPC, EIO)."""
    while count:
        moved = os.splice(pipe, fd, count)
        if not moved:
            raise OSError(errno.EIO, 'the pipe ran dry')
        count -= moved


def can_splice(resp, end):
    """Only a plain-http, identity-encoded, non-chunked body of known length: never TLS (the socket carries cipher text)."""
    return (SPLICE and end is not None and isinstance(resp, http.client.HTTPResponse)
            and str(getattr(resp, 'url', '') or '').lower().startswith('http://')
            and not getattr(resp, 'chunked', True) and getattr(resp, 'length', None) is not None
            and (resp.headers.get('Content-Encoding') or 'identity').strip().lower() == 'identity'
            and type(getattr(resp.fp, 'raw', None)).__name__ == 'SocketIO')


# -- HTTP ---------------------------------------------------------------------------------------------------

def origin(url):
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or '').lower(), parts.port or {'http': 80, 'https': 443}.get(scheme)


def parse_content_range(value):
    match = re.match(r'^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$', value or '')
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), None if match.group(3) == '*' else int(match.group(3))


@contextlib.contextmanager
def environment(values, clear=()):
    """This process's environment with `values` set (empty ones left out) and the names in `clear` removed, restored
    afterwards (urllib and huggingface_hub read proxies and CA bundles from it when they open a connection)."""
    names = set(values) | set(clear)
    saved = dict((n, os.environ.get(n)) for n in names)
    for name in names:
        os.environ.pop(name, None)
    os.environ.update((k, v) for k, v in values.items() if v)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def proxy_environment(proxies):
    """The proxy variables of this process set to `proxies` ({'http_proxy': ..., 'https_proxy': ..., 'no_proxy': ...},
    upper-case names removed) while a request is opened: urllib reads them then. None: the environment as it is."""
    if proxies is None:
        yield
        return
    with environment(proxies, clear=[n for p in PROXY_VARIABLES for n in (p, p.upper())]):
        yield


def proxy_secrets(proxies=None):
    """Credentials of the proxies (given, or in this process's environment): masked in every message."""
    values = proxies.values() if proxies is not None else [os.environ.get(n) for p in PROXY_VARIABLES[:2] for n in (p, p.upper())]
    return [s for v in values if v for s in url_secrets(v)]


def tls_context(validate_certs=True, ca_path=None):
    """The system's trusted certificates, plus the extra CA bundle `ca_path` (a site or proxy CA), or no checks at all."""
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_path:
        try:
            context.load_verify_locations(cafile=ca_path)
        except (OSError, ssl.SSLError) as exc:
            raise ModelInvalid('ca_path %s is not a readable PEM CA bundle: %s' % (ca_path, exc)) from None
    return context


class HttpClient(object):
    """Downloads with If-Range resume over ansible.module_utils.urls.Request, following redirects itself.

    `proxies`: the proxy variables to use instead of this process's environment (None: the environment).
    `redact`: a Redactor (the secrets are masked in every message); `secrets` are added to it.
    `progress`: a Progress that counts the bytes written."""

    def __init__(self, headers=None, validate_certs=True, timeout=60, retries=3, backoff=1.0, secrets=(), redact=None,
                 ca_path=None, proxies=None, progress=None):
        self.headers = dict(headers or {})
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.redact = redact if redact is not None else Redactor()
        self.redact.add(*secrets)
        self.proxies = dict(proxies) if proxies is not None else None
        self.redact.add(*proxy_secrets(self.proxies))
        self.ca_path = ca_path
        # loading the system's certificates takes ~20 ms: only for a run that opens a connection (checked at once with
        # ca_path, so that an unreadable bundle fails before anything is done); one context for all its requests
        self._context = tls_context(validate_certs, ca_path) if ca_path and validate_certs else None
        self.progress = progress if progress is not None else Progress(None)

    @property
    def context(self):
        if self._context is None:
            self._context = tls_context(self.validate_certs, self.ca_path)
        return self._context

    def safe(self, url):
        return self.redact(redact_url(url))

    def open(self, url, method='GET', headers=None, data=None):
        """The response of `url` after redirects. Credentials (this client's headers) go to the first origin only;
        a redirect from https to http is refused. Raises urllib.error.HTTPError for an HTTP error status."""
        credentials = dict(self.headers)
        extra = dict(headers or {})
        current = url
        for dummy in range(MAX_REDIRECTS + 1):
            merged = dict(credentials)
            merged.update(extra)
            try:
                with proxy_environment(self.proxies):
                    return Request().open(method, current, data=data, headers=merged, timeout=self.timeout,
                                          follow_redirects='none', context=self.context)
            except urllib.error.HTTPError as exc:
                if exc.code not in REDIRECT_CODES:
                    raise
                location = exc.headers.get('Location') if exc.headers is not None else None
                exc.close()
                if not location:
                    raise ModelNetworkError('%s answered HTTP %d without a Location' % (self.safe(current), exc.code)) from None
                target = urllib.parse.urljoin(current, location.strip())
                try:
                    check_url(target, 'the redirect target')
                except ModelError as err:
                    raise ModelRefused('%s redirects to a URL that is refused: %s' % (self.safe(url), self.redact(err))) from None
                if origin(current)[0] == 'https' and origin(target)[0] == 'http':
                    raise ModelRefused('%s redirects from https to plain http (%s): refused, credentials and data are never '
                                       'sent or fetched over plain http after https' % (self.safe(url), self.safe(target))) from None
                if origin(target) != origin(current):
                    credentials = {}
                if exc.code == 303 or (exc.code in (301, 302) and method not in ('GET', 'HEAD')):
                    method = 'GET' if method != 'HEAD' else method
                    data = None
                current = target
        raise ModelNetworkError('%s: more than %d redirects' % (self.safe(url), MAX_REDIRECTS))

    def open_json(self, url, method='GET', body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Content-Type': 'application/json'} if body is not None else {}
        return self.open(url, method=method, headers=headers, data=data)

    def http_error(self, url, exc):
        code = getattr(exc, 'code', None)
        hint = {401: ' (authentication refused: check the token or headers)',
                403: ' (access forbidden: check the token and its permissions)',
                404: ' (not found: check the URL, repository, revision or file name)'}.get(code, '')
        return ModelNetworkError(self.redact('%s failed: HTTP %s %s%s' % (redact_url(url), code, getattr(exc, 'reason', ''), hint)))

    def head(self, url):
        """(size or None, etag or None) as the server announces them."""
        try:
            resp = self.open(url, method='HEAD')
        except urllib.error.HTTPError as exc:
            raise self.http_error(url, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ModelNetworkError(self.redact('cannot reach %s: %s' % (redact_url(url), exc))) from None
        try:
            length = resp.headers.get('Content-Length')
            return (int(length) if length is not None and length.strip().isdigit() else None), resp.headers.get('ETag')
        finally:
            resp.close()

    # -- download -------------------------------------------------------------------------------------------

    @staticmethod
    def read_meta(meta):
        try:
            with open(meta) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def discard(*paths):
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def resume_point(self, url, partial, meta, size, sha256):
        """(bytes kept, If-Range validator) of an existing .partial; anything not provably from the same content: 0."""
        if not os.path.exists(partial):
            self.discard(meta)
            return 0, None
        have = os.path.getsize(partial)
        info = self.read_meta(meta)
        validator = (info or {}).get('etag') or (info or {}).get('last_modified')
        same = info is not None and info.get('url') == redact_url(url) and info.get('sha256') == sha256
        if not have or not validator or not same or (size is not None and have > size):
            self.discard(partial, meta)
            return 0, None
        return have, validator

    def download(self, url, partial, size=None, sha256=None):
        """Write `url` into `partial` until complete, resuming a verified earlier part; returns (bytes transferred,
        sha256 of the file as read back from disk). Raises ModelError (ENOSPC, more bytes than the size, retries spent)."""
        meta = partial + META_SUFFIX
        transferred = 0
        attempts = 0
        while True:
            have, validator = self.resume_point(url, partial, meta, size, sha256)
            if size is not None and have == size:
                if not have:  # an empty file: nothing to fetch, but a file to hash
                    open(partial, 'wb').close()
                hasher = DiskHasher(partial)
                try:
                    digest, hashed = hasher.finish(size)
                finally:
                    hasher.stop()
                return transferred, self.checked(partial, digest, hashed, size)
            headers = {}
            if have:
                headers = {'Range': 'bytes=%d-' % have, 'If-Range': validator}
            try:
                try:
                    resp = self.open(url, headers=headers)
                except urllib.error.HTTPError as exc:
                    if exc.code == 416 and have:  # the server has something shorter now: start again
                        exc.close()
                        self.discard(partial, meta)
                        attempts += 1
                        if attempts > self.retries:
                            raise self.http_error(url, exc) from None
                        continue
                    raise self.http_error(url, exc) from None
                try:
                    count, done = self.receive(url, resp, partial, meta, have, validator, size, sha256)
                finally:
                    resp.close()
                transferred += count
                if done is not None:
                    return transferred, done
                attempts += 1  # the partial did not match what the server has now: restarted from 0
                if attempts > self.retries + 1:
                    raise ModelNetworkError('%s: the server changed the file during the transfer %d times' % (self.safe(url), attempts))
            except ModelError:
                raise
            except (OSError, http.client.HTTPException, ShortRead) as exc:
                transferred += getattr(exc, 'transferred', 0)
                attempts += 1
                if attempts > self.retries:
                    kept = os.path.getsize(partial) if os.path.exists(partial) else 0
                    raise ModelNetworkError(self.redact(
                        'download of %s interrupted %d times (last: %s); %s bytes kept in %s, the next run resumes from there'
                        % (redact_url(url), attempts, exc, kept, partial))) from None
                time.sleep(min(self.backoff * (2 ** (attempts - 1)), 10))

    def receive(self, url, resp, partial, meta, have, validator, size, sha256):
        """Write one response into `partial`. Returns (bytes, hex digest) when complete, (0, None) when the partial had to
        be dropped (restart). Raises ShortRead (retry), ModelError (final)."""
        status = resp.status if hasattr(resp, 'status') else resp.getcode()
        etag = resp.headers.get('ETag')
        length = resp.headers.get('Content-Length')
        length = int(length) if length is not None and length.strip().isdigit() else None
        start = 0
        if have:
            span = parse_content_range(resp.headers.get('Content-Range'))
            recorded = (self.read_meta(meta) or {}).get('etag')
            if status == 206 and span and span[0] == have and not (recorded and etag and etag != recorded):
                start = have
                if span[2] is not None and size is not None and span[2] != size:
                    raise ModelCorrupt('%s: the server has %d bytes, the expected size is %d' % (self.safe(url), span[2], size))
                if length is None:
                    length = span[1] - span[0] + 1
            elif status == 206:  # a range of something else: drop the partial, ask again without Range
                self.discard(partial, meta)
                return 0, None
        elif status != 200:
            raise ModelNetworkError('%s answered HTTP %d to a plain GET' % (self.safe(url), status))
        if start == 0 and length is not None and size is not None and length != size:
            raise ModelCorrupt('%s: the server announces %d bytes, the expected size is %d' % (self.safe(url), length, size))
        end = start + length if length is not None else size
        strong = etag if etag and not etag.startswith('W/') else None
        state.write_json(meta, {'url': redact_url(url), 'etag': strong, 'last_modified': resp.headers.get('Last-Modified'),
                                'size': size, 'sha256': sha256}, mode=0o600)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        hasher = None
        pos = start
        count = 0
        try:
            os.ftruncate(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            hasher = DiskHasher(partial)
            hasher.advance(start)
            self.progress.pos = start
            try:
                if can_splice(resp, end):
                    pos = self.splice_body(resp, fd, hasher, pos, end, (url, partial, meta))
                else:
                    pos = self.copy_body(resp, fd, hasher, pos, end, (url, partial, meta))
                count = pos - start
                if end is not None and pos < end:
                    raise ShortRead('%d of %d bytes' % (pos, end))
                if size is not None and length is None and resp.read(1):
                    self.discard(partial, meta)
                    raise ModelCorrupt('%s sent more than the expected size of %d bytes: the download was discarded'
                                       % (self.safe(url), size))
            except (OSError, http.client.HTTPException, ShortRead) as exc:
                exc.transferred = getattr(exc, 'transferred', 0) or max(os.fstat(fd).st_size - start, 0)
                raise
            try:
                os.fsync(fd)
            except OSError as exc:
                raise self.write_failed(exc, url, partial, meta, pos) from None
            digest, hashed = hasher.finish(pos)
        finally:
            if hasher is not None:
                hasher.stop()
            os.close(fd)
        return count, self.checked(partial, digest, hashed, size)

    def copy_body(self, resp, fd, hasher, pos, end, where):
        """The body through a reusable buffer (readinto, os.write); stops at `end` when it is known."""
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        try:
            while end is None or pos < end:
                want = BUFFER if end is None else min(BUFFER, end - pos)
                got = resp.readinto(view[:want])
                if not got:
                    break
                try:
                    write_all(fd, view[:got])
                except OSError as exc:
                    raise self.write_failed(exc, where[0], where[1], where[2], pos) from None
                pos += got
                hasher.advance(pos)
                self.progress.pos = pos
        finally:
            view.release()
        return pos

    def splice_body(self, resp, fd, hasher, pos, end, where):
        """A plain-http body moved socket -> pipe -> file by the kernel (os.splice): the bytes never pass through Python;
        the hasher reads them back from the file like any other. Stops at `end`; EOF before it is a ShortRead."""
        ahead = resp.fp.peek(1) if pos < end else b''  # what http.client read ahead with the headers
        if ahead:
            data = resp.read(min(len(ahead), end - pos))
            try:
                write_all(fd, memoryview(data))
            except OSError as exc:
                raise self.write_failed(exc, where[0], where[1], where[2], pos) from None
            pos += len(data)
            hasher.advance(pos)
            self.progress.pos = pos
        if pos >= end or resp.fp is None:  # all of it came with the headers (http.client closed the socket)
            return pos
        sock = resp.fileno()
        pipe_r, pipe_w = os.pipe()
        try:
            try:
                fcntl.fcntl(pipe_w, F_SETPIPE_SZ, SPLICE_STEP)
            except OSError:
                pass
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            wait_ms = int((self.timeout or 60) * 1000)
            while pos < end:
                try:
                    moved = os.splice(sock, pipe_w, min(SPLICE_STEP, end - pos))
                except BlockingIOError:
                    if not poller.poll(wait_ms):
                        raise OSError(errno.ETIMEDOUT, 'no data for %s s' % self.timeout) from None
                    continue
                if not moved:
                    break  # EOF: the caller raises ShortRead
                try:
                    splice_out(pipe_r, fd, moved)
                except OSError as exc:
                    raise self.write_failed(exc, where[0], where[1], where[2], pos) from None
                pos += moved
                hasher.advance(pos)
                self.progress.pos = pos
        finally:
            os.close(pipe_r)
            os.close(pipe_w)
        resp.length = max(end - pos, 0) if resp.length is not None else None
        return pos

    def write_failed(self, exc, url, partial, meta, pos):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self.discard(partial, meta)
            return ModelNoSpace('no space left on the device of %s after %d bytes of %s (%s): the partial download was removed to '
                                'free the space; free space or lower keep, then run again'
                                % (os.path.dirname(partial), pos, self.safe(url), os.strerror(exc.errno)))
        return ModelError('cannot write %s: %s' % (partial, exc))

    def checked(self, partial, digest, hashed, size):
        """The digest, once the file on disk has exactly the bytes that were hashed (and the expected size)."""
        on_disk = os.path.getsize(partial)
        if on_disk != hashed or (size is not None and on_disk != size):
            raise ModelCorrupt('%s has %d bytes on disk, %d were hashed%s: discarded' % (
                partial, on_disk, hashed, '' if size is None else ', %d expected' % size))
        return digest
