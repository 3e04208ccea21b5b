# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""restic through the collection's command runner (_runner.py): argument lists, --json parsing, error classification.

The repository password travels in the environment (RESTIC_PASSWORD) or as --password-file, never on the
command line, and every text that leaves this module (results, error messages) is scrubbed of it and of the
values of the extra environment (S3 / REST credentials).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import stat
import time
import urllib.parse

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

MASK = '********'

# Error kinds, most specific first: (kind, pattern over restic's stderr + stdout, hint).
MISSING = 'missing'
LOCKED = 'locked'
WRONG_PASSWORD = 'wrong_password'
PASSWORD_FILE = 'password_file'
UNREACHABLE = 'unreachable'
CORRUPT = 'corrupt'
NO_SPACE = 'no_space'
NO_SNAPSHOT = 'no_snapshot'
ERROR = 'error'

_CLASSIFIERS = [
    (PASSWORD_FILE, re.compile(r'Resolving password failed|reading password from file', re.I),
     'the repository password file is missing or unreadable (restic reads it as the user running the module)'),
    (WRONG_PASSWORD, re.compile(r'wrong password or no key found|no key found', re.I),
     'wrong repository password (or no key of this repository matches it)'),
    (LOCKED, re.compile(r'repository is already locked|unable to create lock', re.I),
     'the repository is locked by another restic process; when none runs, remove the stale lock with `restic unlock`'),
    (UNREACHABLE, re.compile(r'dial tcp|connection refused|no such host|i/o timeout|network is unreachable|'
                             r'no route to host|TLS handshake|x509: |subprocess ssh|unable to start the sftp session|'
                             r'Connection closed by|Permission denied \(publickey|server response unexpected: 5\d\d|'
                             r'context deadline exceeded|connection reset by peer', re.I),
     'the repository cannot be reached (network, TLS, SSH or server): restic did not get to see whether it is intact'),
    (MISSING, re.compile(r'unable to open config file|Is there a repository at the following location|'
                         r'repository does not exist|does not exist.*config|unable to open repository', re.I),
     'no restic repository at this location: create it with action=init'),
    (NO_SPACE, re.compile(r'no space left on device|disk quota exceeded', re.I),
     'the target file system is full'),
    (NO_SNAPSHOT, re.compile(r'no snapshot found|no matching ID found|invalid id|snapshot .* not found', re.I),
     'no such snapshot in the repository'),
    (CORRUPT, re.compile(r'repository contains errors|pack .* does not exist|Pack ID does not match|'
                         r'ciphertext verification failed|unexpected EOF|checksum mismatch|invalid data returned|'
                         r'error for tree|blob .* not found|load index .* failed|decrypting blob .* failed|'
                         r'Load\(<data/[0-9a-f]+>.*(no such file|returned error)|StreamPack: ', re.I),
     'the repository is damaged: run action=check with read_data_subset, then `restic repair` or restore from another copy'),
]
# restic's backend retries a failed Load/Save/Stat up to ten times and prints each try.
_RETRY = re.compile(r'^(\w+)\((<[^>]*>)?[^)]*\) (?:returned error|failed), retrying after [^:]+: (.*)$')


class ResticError(OnpremError):
    """restic failed; `error_kind` (also `kind`) is one of the error kinds above, the message is already scrubbed."""

    def __init__(self, msg, kind=ERROR, rc=None, output=None):
        details = dict((k, v) for k, v in (('rc', rc), ('output', output)) if v is not None)
        super(ResticError, self).__init__(msg, error_kind=kind, **details)
        self.rc = rc
        self.output = output

    @property
    def kind(self):
        return self.error_kind


def classify(text):
    """(kind, hint) for restic's error output."""
    for kind, pattern, hint in _CLASSIFIERS:
        if pattern.search(text or ''):
            return kind, hint
    return ERROR, None


_URL_AUTHORITY = re.compile(r'(\w+://)([^/\s]*)')


def _split_authority(authority):
    """(user, password or None, host) of a URL authority, as Go's net/url (restic) reads it: userinfo up to the
    LAST '@', the password after the first ':' of the userinfo."""
    if '@' not in authority:
        return None, None, authority
    userinfo, host = authority.rsplit('@', 1)
    if ':' not in userinfo:
        return userinfo, None, host
    user, password = userinfo.split(':', 1)
    return user, password, host


def redact_url(url):
    """rest:https://user:se@cr/et@host/ -> rest:https://user:********@host/ (every URL in the text)."""
    def mask(match):
        user, password, host = _split_authority(match.group(2))
        if password is None:
            return match.group(0)
        return '%s%s:%s@%s' % (match.group(1), user, MASK, host)
    return _URL_AUTHORITY.sub(mask, url or '')


def url_secret(url):
    """The password inside a repository URL (rest:https://user:secret@host/), or None."""
    match = _URL_AUTHORITY.search(url or '')
    if not match:
        return None
    dummy, password, dummy2 = _split_authority(match.group(2))
    return password or None


def condense(text, limit=1500, keep=3):
    """restic's error output for a message: the cause first and counted, not restic's chatter.

    The retry chatter (one line per try of each failed Load) becomes one line per failed read with the number of
    tries, and the first `keep` of them; the per-file "ignoring error for ..." lines become the first `keep` and a
    count; progress lines go; repeated lines appear once; the last line (restic's Fatal) always stays."""
    retries = {}
    order = []
    ignored = []
    other = []
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('[') or line.startswith('using temporary cache'):
            continue
        match = _RETRY.match(line)
        if match:
            key = '%s %s: %s' % (match.group(1), match.group(2) or '', match.group(3))
            if key not in retries:
                retries[key] = 0
                order.append(key)
            retries[key] += 1
        elif line.startswith('ignoring error for '):
            ignored.append(line)
        elif line not in other:
            other.append(line)
    out = ['%s (retried %d times)' % (key, retries[key]) for key in order[:keep]]
    if len(order) > keep:
        out.append('(%d more reads failed the same way after retries)' % (len(order) - keep))
    out += ignored[:keep]
    if len(ignored) > keep:
        out.append('(%d more files not restored)' % (len(ignored) - keep))
    last = other.pop() if other else None
    out += other
    text = '\n'.join(out + ([last] if last else []))
    if len(text) > limit:
        tail = ('\n' + last) if last else ''
        text = text[:max(0, limit - len(tail) - 4)] + ' ...' + tail
    return text


def parse_json_lines(text):
    """Objects of restic's --json output: a JSON document, or one JSON value per line (status + summary)."""
    text = (text or '').strip()
    if not text:
        return []
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except ValueError:
        pass
    values = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(('{', '[')):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    return values


def summary_of(values):
    """The message_type=summary object of `backup --json`, or None."""
    for value in reversed(values):
        if isinstance(value, dict) and value.get('message_type') == 'summary':
            return value
    return None


def check_errors(text):
    """Lines of `restic check` output that report damage."""
    noise = ('using temporary cache', 'create exclusive lock', 'load indexes', 'check all packs', 'check snapshots',
             'read all data', 'read ', 'no errors were found', '[', 'Fatal: repository contains errors')
    return [line.strip() for line in (text or '').splitlines()
            if line.strip() and not line.strip().startswith(noise)]


KEEP_MAX = 100000


def retention_args(keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None, keep_yearly=None):
    """restic forget's policy flags. Every count must be an int from 1 to KEEP_MAX: restic takes a negative count
    (or 0 on some versions) as "no limit" or "no policy", and a policy that keeps nothing forgets every snapshot."""
    args = []
    for flag, value in (('--keep-last', keep_last), ('--keep-daily', keep_daily), ('--keep-weekly', keep_weekly),
                        ('--keep-monthly', keep_monthly), ('--keep-yearly', keep_yearly)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= KEEP_MAX:
            raise ResticError('%s must be a whole number from 1 to %d, not %r: nothing was forgotten' % (
                flag[2:].replace('-', '_'), KEEP_MAX, value), kind='usage')
        args += [flag, str(value)]
    return args


_SUBSET = re.compile(r'^(?:(\d+)/(\d+)|(\d+(?:\.\d+)?)%|\d+[KMGT]?)$')


def check_read_data_subset(value):
    """restic check --read-data-subset: n/t (1 <= n <= t), x% (0 < x <= 100) or a size (500M)."""
    match = _SUBSET.match(value or '')
    ok = bool(match)
    if match and match.group(1):
        ok = 1 <= int(match.group(1)) <= int(match.group(2))
    elif match and match.group(3):
        ok = 0 < float(match.group(3)) <= 100
    if not ok:
        raise ResticError('read_data_subset must be n/t (1 <= n <= t), a percentage from 0 to 100 (10%%) or a size (500M), '
                          'not %r' % (value,), kind='usage')
    return value


def filter_args(host=None, tags=None):
    args = []
    if host:
        args += ['--host', host]
    for tag in tags or []:
        args += ['--tag', tag]
    return args


class Restic(object):
    """One repository, driven through the collection's runner (the `restic` tool of _runner.TOOLS)."""

    def __init__(self, module, repository, password=None, password_file=None, env=None, binary=None, cache_dir=None):
        self.module = module
        self.repository = repository
        self.password = password
        self.password_file = password_file
        self.env = dict((str(k), str(v)) for k, v in (env or {}).items())
        self.runner = Runner(module, paths={'restic': binary} if binary else None)
        self.binary = self.runner.which('restic')
        self.cache_dir = cache_dir
        if not self.binary:
            raise ResticError('restic not found on this host: install it from the distribution (apt install restic / dnf install restic)',
                              kind='not_installed')
        if not password and not password_file and not self.env.get('RESTIC_PASSWORD') and not self.env.get('RESTIC_PASSWORD_FILE'):
            raise ResticError('a repository password is needed: password or password_file', kind='no_password')

    # -- secrets -------------------------------------------------------------------------------------------
    def secrets(self):
        secret = url_secret(self.repository)
        values = [self.password, secret, urllib.parse.unquote(secret or '')] + list(self.env.values())
        return sorted(set(v for v in values if v and len(v) >= 3), key=len, reverse=True)

    def scrub(self, text):
        if not text:
            return text
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text

    def scrub_value(self, value):
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_value(v) for v in value]
        if isinstance(value, dict):
            return dict((k, self.scrub_value(v)) for k, v in value.items())
        return value

    # -- running ---------------------------------------------------------------------------------------------
    def _values(self, args):
        # A repository URL with a password in it travels in the environment (RESTIC_REPOSITORY), like the password:
        # a command line is visible to every user of the node.
        return dict(repo=None if url_secret(self.repository) else self.repository,
                    password_file=self.password_file if self.password_file and not self.password else None,
                    cache_dir=self.cache_dir or None, args=list(args))

    def argv(self, args):
        return self.runner.argv('restic', 'repo password_file cache_dir args', **self._values(args))

    def environ(self):
        """The environment of restic besides the runner's (LC_ALL=C, RESTIC_PROGRESS_FPS): secrets and the user's env."""
        environ = dict(self.env)
        if url_secret(self.repository):
            environ['RESTIC_REPOSITORY'] = self.repository
        if self.password:
            environ['RESTIC_PASSWORD'] = self.password
        return environ

    def run(self, args, check=True, data=None):
        """(rc, stdout, stderr), scrubbed; raises ResticError on failure when check."""
        rc, out, err = self.runner.run('restic', 'repo password_file cache_dir args', check=False, env=self.environ(), data=data,
                                       **self._values(args))
        out, err = self.scrub(out or ''), self.scrub(err or '')
        if check and rc != 0:
            raise self.error(args[0], rc, out, err)
        return rc, out, err

    def error(self, command, rc, out, err):
        text = '%s\n%s' % (err, out)
        kind, hint = classify(text)
        detail = condense(err if (err or '').strip() else out)
        msg = 'restic %s failed on repository %s (rc=%s, %s)' % (command, redact_url(self.repository), rc, kind)
        if hint:
            msg += ': %s' % hint
        msg += '. restic said: %s' % detail
        return ResticError(self.scrub(msg), kind=kind, rc=rc, output=detail)

    def run_json(self, args, check=True):
        rc, out, err = self.run(list(args[:1]) + ['--json'] + list(args[1:]), check=check)
        return rc, parse_json_lines(out), err

    # -- operations ------------------------------------------------------------------------------------------
    def exists(self):
        """True when the repository is there and opens with the password; False when it is missing."""
        rc, out, err = self.run(['cat', 'config'], check=False)
        if rc == 0:
            return True
        error = self.error('cat config', rc, out, err)
        if error.kind == MISSING:
            return False
        raise error

    def init(self):
        self.run(['init'])

    def backup(self, paths, exclude=None, tags=None, host=None, exclude_caches=True, one_file_system=False, dry_run=False):
        args = ['backup'] + filter_args(host, tags)
        for pattern in exclude or []:
            args += ['--exclude', pattern]
        if exclude_caches:
            args.append('--exclude-caches')
        if one_file_system:
            args.append('--one-file-system')
        if dry_run:
            args.append('--dry-run')
        rc, values, err = self.run_json(args + ['--'] + list(paths), check=False)
        summary = summary_of(values)
        # rc 3: the snapshot was made but some source files could not be read.
        if rc not in (0, 3) or summary is None and not dry_run:
            raise self.error('backup', rc, '', err)
        warnings = []
        if rc == 3:
            warnings.append('some source files could not be read; the snapshot is incomplete: %s' % err.strip()[-1000:])
        return summary or {}, warnings

    def snapshots(self, host=None, tags=None, paths=None):
        args = ['snapshots'] + filter_args(host, tags)
        for path in paths or []:
            args += ['--path', path]
        dummy, values, dummy2 = self.run_json(args)
        return [v for v in values if isinstance(v, dict)]

    def resolve(self, snapshot='latest', host=None, tags=None):
        """The snapshot object for an ID or 'latest' (with the host/tag filters), or ResticError(no_snapshot)."""
        found = self.snapshots(host=host, tags=tags)
        if snapshot == 'latest':
            if not found:
                raise ResticError('no snapshot in repository %s%s' % (
                    redact_url(self.repository), ' for host %s' % host if host else ''), kind=NO_SNAPSHOT)
            return sorted(found, key=lambda s: s.get('time', ''))[-1]
        for item in found:
            if item.get('id', '').startswith(snapshot) or item.get('short_id') == snapshot:
                return item
        raise ResticError('snapshot %s not found in repository %s' % (snapshot, redact_url(self.repository)), kind=NO_SNAPSHOT)

    def forget(self, retention, host=None, tags=None, group_by='host', prune=True, dry_run=False):
        args = ['forget'] + filter_args(host, tags) + retention
        if group_by:
            args += ['--group-by', group_by]
        if dry_run:
            args.append('--dry-run')
        dummy, values, dummy2 = self.run_json(args)
        kept, removed = [], []
        for group in values:
            if isinstance(group, dict):
                kept += [s.get('short_id') or s.get('id', '')[:8] for s in group.get('keep') or []]
                removed += [s.get('short_id') or s.get('id', '')[:8] for s in group.get('remove') or []]
        pruned = False
        if prune and removed and not dry_run:
            self.run(['prune'])
            pruned = True
        return {'kept': kept, 'removed': removed, 'pruned': pruned}

    def check(self, read_data_subset=None):
        args = ['check']
        if read_data_subset:
            args += ['--read-data-subset', str(read_data_subset)]
        rc, out, err = self.run(args, check=False)
        if rc == 0:
            return {'ok': True, 'errors': [], 'output': out.strip()[-2000:]}
        kind, dummy = classify('%s\n%s' % (err, out))
        if kind != CORRUPT:
            # A password file that cannot be read, a server that cannot be reached, a lock: not damage.
            raise self.error('check', rc, out, err)
        errors = check_errors(condense('%s\n%s' % (out, err), limit=100000))
        raise ResticError(self.scrub('restic check found errors in repository %s (corrupt): %d error line(s): %s' % (
            redact_url(self.repository), len(errors), '; '.join(errors[:20])[-1500:] or condense(err))),
            kind=CORRUPT, rc=rc, output=errors[:100])

    def ls(self, snapshot):
        dummy, values, dummy2 = self.run_json(['ls', snapshot])
        return [v for v in values if isinstance(v, dict) and v.get('struct_type') == 'node']

    def restore(self, snapshot, target, include=None, exclude=None, verify=True, host=None):
        args = ['restore', snapshot, '--target', target] + filter_args(host)
        for pattern in include or []:
            args += ['--include', pattern]
        for pattern in exclude or []:
            args += ['--exclude', pattern]
        if verify:
            args.append('--verify')
        rc, out, err = self.run(args, check=False)
        if rc != 0 or re.search(r'There were \d+ errors|no space left on device', '%s\n%s' % (out, err), re.I):
            raise self.error('restore', rc, out, err)
        return out


UNSAFE_TARGET = 'unsafe_target'


def _trusted_owner(info):
    # root, or the user running the module (an unprivileged run cannot write through another user's links anyway)
    return info.st_uid in (0, os.geteuid())


def private_target(target):
    """Make `target` safe to restore into as root, or raise ResticError(unsafe_target); returns the path.

    Refused: a relative path, '..' in it, any existing component that is a symbolic link, a world- or group-writable
    directory above it without the sticky bit, a component below a sticky world-writable directory (/tmp, /var/tmp)
    that is not owned by root, and a parent that is not owned by root or is group/world-writable - there another
    user could plant a link that restic (as root) would follow. A missing target (and missing directories above it)
    is created 0700 with mkdir, which never follows a link, then checked again with O_NOFOLLOW.
    """
    if not isinstance(target, str) or not target.startswith('/') or '\x00' in target:
        raise ResticError('target must be an absolute path, not %r' % (target,), kind=UNSAFE_TARGET)
    parts = [p for p in target.split('/') if p not in ('', '.')]
    if '..' in parts:
        raise ResticError('target %s must not contain ..' % target, kind=UNSAFE_TARGET)
    path = '/'
    parent_info = os.lstat('/')
    for index, name in enumerate(parts):
        path = os.path.join(path, name)
        last = index == len(parts) - 1
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is None:
            _check_parent(path, parent_info)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass  # raced: checked like any existing component below
            except OSError as exc:
                raise ResticError('cannot create the restore target %s: %s' % (path, exc), kind=UNSAFE_TARGET) from exc
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) and _trusted_owner(info):
                os.chmod(path, 0o700)
                info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise ResticError('refusing to restore into %s: %s is a symbolic link (restic would follow it as root)' % (
                target, path), kind=UNSAFE_TARGET)
        if not stat.S_ISDIR(info.st_mode):
            raise ResticError('refusing to restore into %s: %s is not a directory' % (target, path), kind=UNSAFE_TARGET)
        if parent_info.st_mode & stat.S_IWOTH and parent_info.st_mode & stat.S_ISVTX and not _trusted_owner(info):
            raise ResticError('refusing to restore into %s: %s (in a world-writable directory) belongs to uid %d, not root' % (
                target, path, info.st_uid), kind=UNSAFE_TARGET)
        if last:
            _check_parent(path, parent_info)
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            raise ResticError('refusing to restore into %s: %s is writable by other users' % (target, path), kind=UNSAFE_TARGET)
        parent_info = info
    if parts:
        info = parent_info
        if not _trusted_owner(info) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ResticError('refusing to restore into %s: it belongs to uid %d with mode %o; use a directory of root, '
                              'not writable by others' % (target, info.st_uid, stat.S_IMODE(info.st_mode)), kind=UNSAFE_TARGET)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_NOFOLLOW', 0))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ResticError('refusing to restore into %s: it changed into a link while it was checked' % target,
                                  kind=UNSAFE_TARGET) from exc
            raise ResticError('cannot open the restore target %s: %s' % (target, exc), kind=UNSAFE_TARGET) from exc
        try:
            now = os.fstat(fd)
        finally:
            os.close(fd)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise ResticError('refusing to restore into %s: it was replaced while it was checked' % target, kind=UNSAFE_TARGET)
    return target


def _check_parent(path, parent_info):
    """The directory that holds `path` must be root's and writable by root alone."""
    if not _trusted_owner(parent_info) or parent_info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ResticError('refusing to restore into %s: its parent directory belongs to uid %d with mode %o (another user '
                          'could plant a link there); restore under a directory of root that only root can write, such '
                          'as /var/lib/onprem_ai/drill' % (path, parent_info.st_uid, stat.S_IMODE(parent_info.st_mode)),
                          kind=UNSAFE_TARGET)


def snapshot_age(snapshot_time, now=None):
    """Seconds since a restic snapshot time ('2026-11-25T22:41:12.216466183Z' or with an offset), or None."""
    match = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$', snapshot_time or '')
    if not match:
        return None
    offset = match.group(3) or 'Z'
    stamp = datetime.datetime.strptime(match.group(1), '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    if offset != 'Z':
        sign = 1 if offset[0] == '+' else -1
        stamp -= sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    stamp += datetime.timedelta(seconds=float('0' + (match.group(2) or '.0')))
    return round((time.time() if now is None else now) - stamp.timestamp(), 3)


def _included(path, include):
    if not include:
        return True
    for pattern in include:
        pattern = pattern.rstrip('/')
        if path == pattern or path.startswith(pattern + '/') or pattern.startswith(path + '/'):
            return True
    return False


def verify_restore(nodes, target, include=None):
    """Compare restored files with the snapshot's listing: every file present with its size, every dir present."""
    result = {'files': 0, 'bytes': 0, 'dirs': 0, 'missing': [], 'size_mismatch': []}
    for node in nodes:
        path = node.get('path') or ''
        if not _included(path, include):
            continue
        local = os.path.join(target, path.lstrip('/'))
        kind = node.get('type')
        if kind == 'dir':
            if not os.path.isdir(local):
                result['missing'].append(path)
            else:
                result['dirs'] += 1
        elif kind == 'file':
            try:
                size = os.lstat(local).st_size
            except OSError:
                result['missing'].append(path)
                continue
            if size != node.get('size', 0):
                result['size_mismatch'].append({'path': path, 'expected': node.get('size', 0), 'found': size})
            else:
                result['files'] += 1
                result['bytes'] += size
        elif kind == 'symlink':
            if not os.path.islink(local):
                result['missing'].append(path)
    result['ok'] = not result['missing'] and not result['size_mismatch']
    result['missing'] = result['missing'][:100]
    result['size_mismatch'] = result['size_mismatch'][:100]
    return result
