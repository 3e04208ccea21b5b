# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Per-node state the collection keeps (previous versions, manifests), and the collection's one atomic
file write: a temporary file in the target's directory, created 0600 before anything is written, fsynced,
given its final mode (and the owner of the file it replaces), renamed over the target, and the directory
fsynced. State files are written 0600: a record may hold deployments, URLs or digests of private models.
(`_manifest.py` keeps a copy of its own: the backup timer runs it standalone, without this package.)

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

DEFAULT_STATE_DIR = '/var/lib/onprem_ai'
HISTORY_LENGTH = 20


class StateError(OnpremError):
    """The state file cannot be read or written."""

    error_kind = 'state'


def state_path(state_dir, name):
    return os.path.join(state_dir, '%s.json' % name)


def read_json(path, error, hint='', missing=None):
    """The JSON document in `path`; `missing` when there is no such file. A file that cannot be read or parsed
    raises `error` (an OnpremError class): 'cannot read PATH: WHY' followed by `hint`.
    (`_manifest.py` keeps a copy of its own: it runs standalone on the node.)"""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return missing
    except (OSError, ValueError) as exc:
        raise error('cannot read %s: %s%s' % (path, exc, hint)) from exc


def load(state_dir, name):
    """The recorded state, {} when there is none yet."""
    path = state_path(state_dir, name)
    data = read_json(path, StateError, ' (move the file away to start a fresh record)', missing={})
    if not isinstance(data, dict):
        raise StateError('%s does not hold a JSON object' % path)
    return data


def write_private(directory, name, text):
    """A temporary file in `directory` holding `text`, created 0600 before anything is written, flushed and
    fsynced. Returns its path; install() puts it in place (or the caller removes it). Raises OSError."""
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory or '.')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def install(tmp, path, mode=None):
    """Rename `tmp` over `path`: first the owner of the file it replaces (where allowed) and `mode` (or the
    replaced file's mode; 0600 when there is neither), then the rename, then an fsync of the directory."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    if old is not None:
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except PermissionError:
            pass
    if mode is not None:
        os.chmod(tmp, mode)
    elif old is not None:
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(path) or '.', os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path, text, mode=0o600):
    """Write a file atomically (write_private, then install with `mode`). Raises OSError."""
    tmp = write_private(os.path.dirname(path), os.path.basename(path), text)
    try:
        install(tmp, path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, data, mode=0o600):
    """Write a JSON file atomically (write_text), 0600 unless told otherwise. Raises OSError."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n', mode)


def save(state_dir, name, data):
    """Write the named state atomically, 0600 (write_json)."""
    try:
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        write_json(state_path(state_dir, name), data)
    except OSError as exc:
        raise StateError('cannot write %s: %s' % (state_path(state_dir, name), exc)) from exc


def record_change(data, current, previous, now=None):
    """New state after a change from `previous` to `current`, with a bounded history."""
    history = list(data.get('history', []))
    history.append({'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
                    'from': (previous or {}).get('version'), 'to': current.get('version')})
    return {'current': current, 'previous': previous, 'history': history[-HISTORY_LENGTH:]}
