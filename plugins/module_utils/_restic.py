# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""restic through module.run_command: argument lists, --json parsing, error classification.

The repository password travels in the environment (RESTIC_PASSWORD) or as --password-file, never on the
command line, and every text that leaves this module (results, error messages) is scrubbed of it and of the
values of the extra environment (S3 / REST credentials).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time

MASK = '********'

# Error kinds, most specific first: (kind, pattern over restic's stderr + stdout, hint).
MISSING = 'missing'
LOCKED = 'locked'
WRONG_PASSWORD = 'wrong_password'
CORRUPT = 'corrupt'
NO_SPACE = 'no_space'
NO_SNAPSHOT = 'no_snapshot'
ERROR = 'error'

_CLASSIFIERS = [
    (WRONG_PASSWORD, re.compile(r'wrong password or no key found|no key found', re.I),
     'wrong repository password (or no key of this repository matches it)'),
    (LOCKED, re.compile(r'repository is already locked|unable to create lock', re.I),
     'the repository is locked by another restic process; when none runs, remove the stale lock with `restic unlock`'),
    (MISSING, re.compile(r'unable to open config file|Is there a repository at the following location|'
                         r'repository does not exist|does not exist.*config|unable to open repository', re.I),
     'no restic repository at this location: create it with action=init'),
    (NO_SPACE, re.compile(r'no space left on device|disk quota exceeded', re.I),
     'the target file system is full'),
    (NO_SNAPSHOT, re.compile(r'no snapshot found|no matching ID found|invalid id|snapshot .* not found', re.I),
     'no such snapshot in the repository'),
    (CORRUPT, re.compile(r'repository contains errors|pack .* does not exist|Pack ID does not match|'
                         r'ciphertext verification failed|unexpected EOF|checksum mismatch|invalid data returned|'
                         r'error for tree|blob .* not found|load index .* failed|decrypting blob .* failed', re.I),
     'the repository is damaged: run action=check with read_data_subset, then `restic repair` or restore from another copy'),
]


class ResticError(Exception):
    """restic failed; `kind` is one of the error kinds above, the message is already scrubbed."""

    def __init__(self, msg, kind=ERROR, rc=None, output=None):
        super(ResticError, self).__init__(msg)
        self.kind = kind
        self.rc = rc
        self.output = output


def classify(text):
    """(kind, hint) for restic's error output."""
    for kind, pattern, hint in _CLASSIFIERS:
        if pattern.search(text or ''):
            return kind, hint
    return ERROR, None


def redact_url(url):
    """rest:https://user:secret@host/ -> rest:https://user:********@host/."""
    return re.sub(r'(://[^/:@\s]+:)[^@/\s]+@', r'\1%s@' % MASK, url or '')


def url_secret(url):
    """The password inside a repository URL (rest:https://user:secret@host/), or None."""
    match = re.search(r'://[^/:@\s]+:([^@/\s]+)@', url or '')
    return match.group(1) if match else None


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


def retention_args(keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None, keep_yearly=None):
    args = []
    for flag, value in (('--keep-last', keep_last), ('--keep-daily', keep_daily), ('--keep-weekly', keep_weekly),
                        ('--keep-monthly', keep_monthly), ('--keep-yearly', keep_yearly)):
        if value is not None:
            args += [flag, str(value)]
    return args


def filter_args(host=None, tags=None):
    args = []
    if host:
        args += ['--host', host]
    for tag in tags or []:
        args += ['--tag', tag]
    return args


class Restic(object):
    """One repository, driven through module.run_command."""

    def __init__(self, module, repository, password=None, password_file=None, env=None, binary=None, cache_dir=None):
        self.module = module
        self.repository = repository
        self.password = password
        self.password_file = password_file
        self.env = dict((str(k), str(v)) for k, v in (env or {}).items())
        self.binary = binary or module.get_bin_path('restic')
        self.cache_dir = cache_dir
        if not self.binary:
            raise ResticError('restic not found on this host: install it from the distribution (apt install restic / dnf install restic)',
                              kind='not_installed')
        if not password and not password_file and not self.env.get('RESTIC_PASSWORD') and not self.env.get('RESTIC_PASSWORD_FILE'):
            raise ResticError('a repository password is needed: password or password_file', kind='no_password')

    # -- secrets -------------------------------------------------------------------------------------------
    def secrets(self):
        values = [self.password, url_secret(self.repository)] + list(self.env.values())
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
    def argv(self, args):
        argv = [self.binary]
        # A repository URL with a password in it travels in the environment (RESTIC_REPOSITORY), like the password:
        # a command line is visible to every user of the node.
        if not url_secret(self.repository):
            argv += ['--repo', self.repository]
        if self.password_file and not self.password:
            argv += ['--password-file', self.password_file]
        if self.cache_dir:
            argv += ['--cache-dir', self.cache_dir]
        return argv + list(args)

    def environ(self):
        environ = {'LC_ALL': 'C', 'RESTIC_PROGRESS_FPS': '0.016'}
        environ.update(self.env)
        if url_secret(self.repository):
            environ['RESTIC_REPOSITORY'] = self.repository
        if self.password:
            environ['RESTIC_PASSWORD'] = self.password
        return environ

    def run(self, args, check=True, data=None):
        """(rc, stdout, stderr), scrubbed; raises ResticError on failure when check."""
        rc, out, err = self.module.run_command(self.argv(args), environ_update=self.environ(), data=data)
        out, err = self.scrub(out or ''), self.scrub(err or '')
        if check and rc != 0:
            raise self.error(args[0], rc, out, err)
        return rc, out, err

    def error(self, command, rc, out, err):
        text = '%s\n%s' % (err, out)
        kind, hint = classify(text)
        detail = '\n'.join(line for line in (err or out).strip().splitlines() if line.strip())[-1500:]
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
        if kind in (WRONG_PASSWORD, LOCKED, MISSING):
            raise self.error('check', rc, out, err)
        errors = check_errors('%s\n%s' % (out, err))
        raise ResticError(self.scrub('restic check found errors in repository %s (corrupt): %s' % (
            redact_url(self.repository), '; '.join(errors[:20]) or err.strip()[-1500:])), kind=CORRUPT, rc=rc, output=errors)

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
