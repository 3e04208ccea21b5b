# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Per-node state the collection keeps (previous versions, manifests), written atomically.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

DEFAULT_STATE_DIR = '/var/lib/onprem_ai'
HISTORY_LENGTH = 20


class StateError(Exception):
    """The state file cannot be read or written."""


def state_path(state_dir, name):
    return os.path.join(state_dir, '%s.json' % name)


def load(state_dir, name):
    """The recorded state, {} when there is none yet."""
    path = state_path(state_dir, name)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError('cannot read %s: %s (move the file away to start a fresh record)' % (path, exc)) from exc
    if not isinstance(data, dict):
        raise StateError('%s does not hold a JSON object' % path)
    return data


def write_json(path, data, mode=0o644):
    """Write a JSON file atomically: a private temporary file in the same directory, fsync, the final
    `mode`, rename. Raises OSError."""
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path) or '.')
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(state_dir, name, data):
    """Write the named state atomically (write_json)."""
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
