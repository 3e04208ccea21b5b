# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP transfers, input checks and the per-model lock of model_pull.

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
refused (whatever the origin).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import select
import threading
import time
import urllib.error
import urllib.parse

from ansible.module_utils.urls import open_url

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state

BUFFER = 8 * 1024 * 1024
SPLICE = hasattr(os, 'splice')  # plain http bodies go socket -> pipe -> file in the kernel (Linux, Python 3.10+)
SPLICE_STEP = 1024 * 1024
F_SETPIPE_SZ = 1031
MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
META_SUFFIX = '.meta'
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$')
RESERVED_SUFFIXES = ('.json', '.partial', '.meta', '.tmp', '.lock')
RESERVED_NAMES = ('current', 'state')
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL = re.compile(r'[\x00-\x1f\x7f]')


class ModelError(Exception):
    """Stop with this message; the current version was not changed."""


class ShortRead(Exception):
    """The server closed the connection before the announced end of the body."""


# -- input checks ------------------------------------------------------------------------------------------

def check_version_name(value, what='version'):
    """Names of models and versions become directory names next to `current`, `state.json` and `.staging`: a whitelist."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value) or value.lower() in RESERVED_NAMES \
            or value.lower().endswith(RESERVED_SUFFIXES):
        raise ModelError('%s %r is not usable as a directory name: use 1 to 128 letters, digits, ".", "_", "+" or "-", starting '
                         'with a letter or digit, not "current" or "state", not ending in %s'
                         % (what, value if isinstance(value, str) and len(value) < 200 else '...', ', '.join(RESERVED_SUFFIXES)))


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
        raise ModelError('%s %s is not a usable URL: give an http:// or https:// URL without spaces, control or non-ASCII '
                         'characters (percent-encode them)' % (what, safe if text and ' ' not in text else repr(redact_url(text))))
    try:
        parts = urllib.parse.urlsplit(text)
        dummy = parts.port
    except ValueError as exc:
        raise ModelError('%s %s is not a usable URL (%s)' % (what, safe, str(exc).split(':', maxsplit=1)[0])) from None
    if parts.scheme.lower() not in ('http', 'https'):
        raise ModelError('%s %s: only http:// and https:// URLs are supported (not %s)'
                         % (what, safe, (parts.scheme + '://') if parts.scheme else 'a URL without scheme'))
    if not parts.hostname:
        raise ModelError('%s %s has no host name' % (what, safe))
    return text


def clean_token(token):
    """Leading and trailing white space (a newline from a file lookup) is removed; other control characters are refused."""
    if token is None:
        return None
    token = str(token).strip()
    if CONTROL.search(token) or any(ord(c) > 126 for c in token):
        raise ModelError('token contains a control or non-ASCII character inside it (not only at its ends): it was not sent; '
                         'check how it is read (vault, lookup) and remove the character')
    return token or None


def clean_headers(headers):
    """{name: value}, with names checked and values as strings without control characters (never quoted in messages)."""
    out = {}
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not HEADER_NAME.match(key):
            raise ModelError('headers: %r is not a valid HTTP header name' % (key if isinstance(key, str) and len(key) < 80 else '...'))
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            raise ModelError('headers: the value of %s must be a string (not %s)' % (key, type(value).__name__))
        value = str(value).strip()
        if CONTROL.search(value) or any(ord(c) > 255 for c in value):
            raise ModelError('headers: the value of %s contains a control character (a newline?) or a character outside '
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
                raise ModelError('headers: the string is neither a JSON object nor key=value pairs') from None
            if not isinstance(data, dict):
                raise ModelError('headers: the JSON string is not an object')
            return data
        from ansible.module_utils.common.validation import check_type_dict  # pylint: disable=import-outside-toplevel
        try:
            return check_type_dict(text)
        except (TypeError, ValueError):
            raise ModelError('headers: the string is neither a JSON object nor key=value pairs') from None
    raise ModelError('headers must be a dict of header names to values (not %s)' % type(raw).__name__)


def check_range(params, key, low, high=None, what=None):
    value = params.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = 'from %d to %d' % (low, high) if high is not None else '>= %d' % low
        raise ModelError('%s must be an integer %s (got %r)' % (what or key, bounds, value))


def validate_params(params):
    """Every option with a range or a shape, before any change."""
    check_range(params, 'keep', 0, 1000)
    check_range(params, 'free_space_margin', 0, 1 << 30, 'free_space_margin (MiB)')
    check_range(params, 'timeout', 1, 86400, 'timeout (seconds)')
    check_range(params, 'retries', 0, 100)
    check_range(params, 'max_workers', 1, 64)
    check_range(params, 'size', 0)
    check_range(params, 'lock_timeout', 0, 7 * 86400, 'lock_timeout (seconds)')
    for index, entry in enumerate(params.get('files') or []):
        if not isinstance(entry, dict):
            raise ModelError('files[%d] must be a dict with url and sha256' % index)
        check_range(entry, 'size', 0, what='files[%d].size' % index)
    if params.get('url') is not None:
        check_url(params['url'])
    for index, entry in enumerate(params.get('files') or []):
        if entry.get('url') is not None:
            check_url(entry['url'], 'files[%d].url' % index)
    if params.get('source') == 'ollama' and params.get('ollama_url') is not None:
        check_url(params['ollama_url'], 'ollama_url')
    if params.get('endpoint') is not None:
        check_url(params['endpoint'], 'endpoint')
    for key in ('serving_tag',):
        if params.get('source') == 'ollama' and params.get(key) is not None:
            check_version_name(params[key], key)


# -- lock ---------------------------------------------------------------------------------------------------

class StoreLock(object):
    """One lock per model for a whole run: flock on <dest_root>/.<name>.lock (outside the model directory, so that
    state=absent can remove the directory while holding it). Check mode takes it shared and creates nothing."""

    def __init__(self, root, name, timeout=3600, check_mode=False, poll=0.2):
        self.path = os.path.join(root, '.%s.lock' % name)
        self.root = root
        self.timeout = timeout
        self.check_mode = check_mode
        self.poll = poll
        self.fd = None

    def __enter__(self):
        if self.check_mode:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return self
            mode = fcntl.LOCK_SH
        else:
            os.makedirs(self.root, mode=0o755, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            mode = fcntl.LOCK_EX
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(self.fd)
                    self.fd = None
                    raise ModelError('another model_pull run of this model holds %s%s since more than %d s (lock_timeout): '
                                     'nothing was changed; run again when it is done' % (self.path, holder, self.timeout)) from None
                time.sleep(self.poll)
        if not self.check_mode:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, b'%d\n' % os.getpid())
        return self

    def holder(self):
        try:
            pid = os.pread(self.fd, 32, 0).decode('ascii', 'replace').strip()
        except OSError:
            pid = ''
        return ' (pid %s)' % pid if pid.isdigit() else ''

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
        return False


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
                    if SYNC_FILE_RANGE is not None and self.offset - self.synced >= WRITEBACK_STEP:
                        SYNC_FILE_RANGE(self.fd, self.synced, self.offset - self.synced, SYNC_FILE_RANGE_WRITE)
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


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_json(path, data):
    """A small JSON file, 0600 from its creation, written atomically."""
    state.write_json(path, data, mode=0o600)


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


class HttpClient(object):
    """Downloads with If-Range resume over ansible.module_utils.urls.open_url, following redirects itself."""

    def __init__(self, headers=None, validate_certs=True, timeout=60, retries=3, backoff=1.0, secrets=()):
        self.headers = dict(headers or {})
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.secrets = sorted(set(str(s) for s in secrets if s), key=len, reverse=True)

    def redact(self, text):
        text = str(text)
        for secret in self.secrets:
            text = text.replace(secret, '********')
        return text

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
                return open_url(current, method=method, data=data, headers=merged, validate_certs=self.validate_certs,
                                timeout=self.timeout, follow_redirects='none')
            except urllib.error.HTTPError as exc:
                if exc.code not in REDIRECT_CODES:
                    raise
                location = exc.headers.get('Location') if exc.headers is not None else None
                exc.close()
                if not location:
                    raise ModelError('%s answered HTTP %d without a Location' % (self.safe(current), exc.code)) from None
                target = urllib.parse.urljoin(current, location.strip())
                try:
                    check_url(target, 'the redirect target')
                except ModelError as err:
                    raise ModelError('%s redirects to a URL that is refused: %s' % (self.safe(url), self.redact(err))) from None
                if origin(current)[0] == 'https' and origin(target)[0] == 'http':
                    raise ModelError('%s redirects from https to plain http (%s): refused, credentials and data are never sent '
                                     'or fetched over plain http after https' % (self.safe(url), self.safe(target))) from None
                if origin(target) != origin(current):
                    credentials = {}
                if exc.code == 303 or (exc.code in (301, 302) and method not in ('GET', 'HEAD')):
                    method = 'GET' if method != 'HEAD' else method
                    data = None
                current = target
        raise ModelError('%s: more than %d redirects' % (self.safe(url), MAX_REDIRECTS))

    def open_json(self, url, method='GET', body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Content-Type': 'application/json'} if body is not None else {}
        return self.open(url, method=method, headers=headers, data=data)

    def http_error(self, url, exc):
        code = getattr(exc, 'code', None)
        hint = {401: ' (authentication refused: check the token or headers)',
                403: ' (access forbidden: check the token and its permissions)',
                404: ' (not found: check the URL, repository, revision or file name)'}.get(code, '')
        return ModelError(self.redact('%s failed: HTTP %s %s%s' % (redact_url(url), code, getattr(exc, 'reason', ''), hint)))

    def head(self, url):
        """(size or None, etag or None) as the server announces them."""
        try:
            resp = self.open(url, method='HEAD')
        except urllib.error.HTTPError as exc:
            raise self.http_error(url, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ModelError(self.redact('cannot reach %s: %s' % (redact_url(url), exc))) from None
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
                    raise ModelError('%s: the server changed the file during the transfer %d times' % (self.safe(url), attempts))
            except ModelError:
                raise
            except (OSError, http.client.HTTPException, ShortRead) as exc:
                transferred += getattr(exc, 'transferred', 0)
                attempts += 1
                if attempts > self.retries:
                    kept = os.path.getsize(partial) if os.path.exists(partial) else 0
                    raise ModelError(self.redact(
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
                    raise ModelError('%s: the server has %d bytes, the expected size is %d' % (self.safe(url), span[2], size))
                if length is None:
                    length = span[1] - span[0] + 1
            elif status == 206:  # a range of something else: drop the partial, ask again without Range
                self.discard(partial, meta)
                return 0, None
        elif status != 200:
            raise ModelError('%s answered HTTP %d to a plain GET' % (self.safe(url), status))
        if start == 0 and length is not None and size is not None and length != size:
            raise ModelError('%s: the server announces %d bytes, the expected size is %d' % (self.safe(url), length, size))
        end = start + length if length is not None else size
        strong = etag if etag and not etag.startswith('W/') else None
        write_private_json(meta, {'url': redact_url(url), 'etag': strong, 'last_modified': resp.headers.get('Last-Modified'),
                                  'size': size, 'sha256': sha256})
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        hasher = None
        pos = start
        count = 0
        try:
            os.ftruncate(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            hasher = DiskHasher(partial)
            hasher.advance(start)
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
                    raise ModelError('%s sent more than the expected size of %d bytes: the download was discarded'
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
        finally:
            os.close(pipe_r)
            os.close(pipe_w)
        resp.length = max(end - pos, 0) if resp.length is not None else None
        return pos

    def write_failed(self, exc, url, partial, meta, pos):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self.discard(partial, meta)
            return ModelError('no space left on the device of %s after %d bytes of %s (%s): the partial download was removed to '
                              'free the space; free space or lower keep, then run again'
                              % (os.path.dirname(partial), pos, self.safe(url), os.strerror(exc.errno)))
        return ModelError('cannot write %s: %s' % (partial, exc))

    def checked(self, partial, digest, hashed, size):
        """The digest, once the file on disk has exactly the bytes that were hashed (and the expected size)."""
        on_disk = os.path.getsize(partial)
        if on_disk != hashed or (size is not None and on_disk != size):
            raise ModelError('%s has %d bytes on disk, %d were hashed%s: discarded' % (
                partial, on_disk, hashed, '' if size is None else ', %d expected' % size))
        return digest
