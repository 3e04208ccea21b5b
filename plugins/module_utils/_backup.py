# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup_snapshot module's logic: option checks, the six actions (init, backup, forget, check,
snapshots, restore) over `_restic`, the system-state manifest (`_manifest`) and the restore check.

`run(module)` returns the module's result or raises BackupError (an OnpremError) whose details are the
partial result, scrubbed of the repository password, the password inside a repository URL and the values
of the extra environment.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.parse

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest_utils
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._restic import (
    KEEP_MAX, MASK, Restic, check_read_data_subset, private_target, redact_url, retention_args, snapshot_age,
    url_secret, verify_restore)

ACTIONS = ('init', 'backup', 'forget', 'check', 'snapshots', 'restore')
KEEPS = ('keep_last', 'keep_daily', 'keep_weekly', 'keep_monthly')
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_SNAPSHOT = re.compile(r'^(latest|[0-9a-f]{4,64})$')
_PATH_OPTIONS = ('password_file', 'state_dir', 'cache_dir', 'target', 'models_root', 'litellm_dir', 'litellm_config')


class BackupError(OnpremError):
    """A backup action failed or was refused; `error_kind` is one of the kinds backup_snapshot documents."""


def _usage(msg):
    return BackupError(msg, error_kind='usage')


def _covered(path, paths):
    return any(path == p or path.startswith(p.rstrip('/') + '/') for p in paths)


def _reason_tag(reason):
    return 'reason:' + ''.join(c if c.isalnum() or c in '-_.' else '-' for c in reason)[:60]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


def secrets(params):
    """The secrets of the arguments: password, env values, the password inside the repository URL."""
    values = [params.get('password')] + [v for v in (params.get('env') or {}).values() if not isinstance(v, (dict, list))]
    secret = url_secret(params.get('repository'))
    values += [secret, urllib.parse.unquote(secret or '')]
    return sorted(set(str(v) for v in values if v is not None and len(str(v)) >= 3), key=len, reverse=True)


def redactor(params):
    """A function that masks the secrets of the arguments in a text (for failure())."""
    found = secrets(params if isinstance(params, dict) else {})

    def redact(text):
        text = str(text)
        for secret in found:
            text = text.replace(secret, MASK)
        return text
    return redact


def validate(params):
    """Every option with a range or a shape, checked before restic runs or anything is written (usage)."""
    for name, value in params.items():
        if any('\x00' in text for text in _strings(value)):
            raise _usage('%s must not contain a NUL character' % name)
    for name in KEEPS:
        value = params.get(name)
        if value is not None and not 1 <= value <= KEEP_MAX:
            # restic reads a negative count as "unlimited" or a policy that keeps nothing: every snapshot would go.
            raise _usage('%s must be from 1 to %d, not %d; nothing was forgotten' % (name, KEEP_MAX, value))
    if not params['repository'].strip() or any(c in params['repository'] for c in '\r\n'):
        raise _usage('repository must be a restic repository (a path or a URL on one line)')
    for name in _PATH_OPTIONS:
        if params.get(name) is not None and not params[name].startswith('/'):
            raise _usage('%s must be an absolute path, not %r' % (name, params[name]))
    for path in params['paths']:
        if not path or not path.startswith('/'):
            raise _usage('paths must be absolute paths, not %r' % (path,))
    for name in ('tags', 'exclude', 'include'):
        for item in params[name]:
            if not item or not item.strip() or any(c in item for c in '\r\n') or (name == 'tags' and ',' in item):
                raise _usage('%s must be non-empty single-line strings%s, not %r' % (name, ' without commas' if name == 'tags' else '', item))
    for name in ('host', 'reason'):
        value = params.get(name)
        if value is not None and (not value.strip() or any(c in value for c in '\r\n') or len(value) > 1000):
            raise _usage('%s must be a non-empty line of at most 1000 characters' % name)
    if not _SNAPSHOT.match(params['snapshot'] or ''):
        raise _usage('snapshot must be latest or a snapshot ID (4 to 64 hex digits), not %r' % (params['snapshot'],))
    if params['read_data_subset'] is not None:
        check_read_data_subset(params['read_data_subset'])
    for key, value in (params['env'] or {}).items():
        if not _ENV_NAME.match(key):
            raise _usage('env names must be environment variable names (letters, digits, _), not %r' % (key,))
        if isinstance(value, (dict, list)) or value is None:
            raise _usage('env %s must be a string' % key)


def do_init(module, restic, params, result):
    exists = restic.exists()
    result['initialized'] = not exists
    if not exists:
        result['changed'] = True
        if not module.check_mode:
            restic.init()


def do_backup(module, restic, params, result):
    paths = []
    for path in params['paths']:
        if os.path.lexists(path):
            paths.append(path)
        else:
            module.warn('%s does not exist on this host and is not backed up' % path)
    tags = list(params['tags'])
    if params['reason']:
        tags.append(_reason_tag(params['reason']))
    if params['manifest']:
        data = manifest_utils.build(manifest_utils.ModuleHost(module), paths, exclude=params['exclude'], state_dir=params['state_dir'],
                                    tags=tags, reason=params['reason'], models_root=params['models_root'],
                                    litellm_dir=params['litellm_dir'], litellm_config=params['litellm_config'])
        result['manifest_path'] = os.path.join(params['state_dir'], manifest_utils.MANIFEST_FILE)
        if not module.check_mode:
            try:
                manifest_utils.write(result['manifest_path'], data)
            except OSError as exc:
                raise BackupError('cannot write the manifest %s: %s' % (result['manifest_path'], exc), error_kind='state') from exc
        result['manifest'] = manifest_utils.public(data)
        for name, why in sorted(data['unreadable'].items()):
            module.warn('manifest: %s not recorded: %s' % (name, why))
        if not _covered(result['manifest_path'], paths):
            paths.append(result['manifest_path'])
    if not paths:
        raise BackupError('nothing to back up: none of the paths exists', error_kind='no_paths')
    summary, warnings = restic.backup(paths, exclude=params['exclude'], tags=tags, host=params['host'] or socket.gethostname(),
                                      dry_run=module.check_mode)
    for warning in warnings:
        module.warn(warning)
    snap = dict((k, v) for k, v in summary.items() if k != 'message_type')
    snap['id'] = snap.pop('snapshot_id', None)
    snap['paths'] = paths
    snap['tags'] = tags
    result['snapshot'] = snap
    result['changed'] = True


def do_forget(module, restic, params, result):
    retention = retention_args(*(params[name] for name in KEEPS))
    if not retention:
        raise _usage('action=forget needs at least one of keep_last, keep_daily, keep_weekly, keep_monthly')
    result['forget'] = restic.forget(retention, host=params['host'] or socket.gethostname(), tags=params['tags'] or None,
                                     group_by=','.join(params['group_by']), prune=params['prune'], dry_run=module.check_mode)
    result['changed'] = bool(result['forget']['removed'])


def do_check(module, restic, params, result):
    result['check'] = restic.check(params['read_data_subset'])


def do_snapshots(module, restic, params, result):
    result['snapshots'] = restic.snapshots(host=params['host'], tags=params['tags'] or None)


def _restored_manifest(module, path):
    """The manifest found among the restored files, None when it is not there or not readable."""
    if not os.path.isfile(path):
        return None, False
    data = None
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        module.warn('cannot read the restored manifest %s: %s' % (path, exc))
    return (data if isinstance(data, dict) else None), True


def do_restore(module, restic, params, result):
    if not params['target']:
        raise _usage('action=restore needs target')
    snap = restic.resolve(params['snapshot'], host=params['host'], tags=params['tags'] or None)
    snap['age_seconds'] = snapshot_age(snap.get('time'))
    result['snapshot'] = snap
    result['target'] = params['target']
    if module.check_mode:
        result['changed'] = True
        return
    # restic restores as root and follows links it finds in the target: only a directory nobody else can write.
    private_target(params['target'])
    restic.restore(snap['id'], params['target'], include=params['include'], exclude=params['exclude'], verify=params['verify'])
    result['changed'] = True
    manifest_path = os.path.join(params['target'], os.path.join(params['state_dir'], manifest_utils.MANIFEST_FILE).lstrip('/'))
    data, found = _restored_manifest(module, manifest_path)
    if found:
        result['manifest'] = manifest_utils.public(data)
        result['manifest_path'] = manifest_path
    if params['verify']:
        check = verify_restore(restic.ls(snap['id']), params['target'], params['include'])
        if data is not None:
            recorded = [p for p in data.get('paths') or []
                        if isinstance(p, dict) and (not params['include'] or _covered(str(p.get('path')), params['include']))]
            check['manifest'] = manifest_utils.compare(dict(data, paths=recorded), params['target'])
            check['ok'] = check['ok'] and check['manifest']['ok']
        result['verification'] = check
        if not check['ok']:
            raise BackupError('restore of snapshot %s into %s does not match the snapshot: %d missing, %d size mismatches%s' % (
                snap.get('short_id'), params['target'], len(check['missing']), len(check['size_mismatch']),
                '' if check.get('manifest', {}).get('ok', True) else ', manifest file counts differ'), error_kind='verify')


_DO = dict(init=do_init, backup=do_backup, forget=do_forget, check=do_check, snapshots=do_snapshots, restore=do_restore)


def hide_secrets(module):
    """AnsibleModule lists the no_log values before it turns a JSON or k=v string into a dict, so an env given as a
    string would only have the whole string masked: mask each value (and a password inside the repository URL)."""
    module.no_log_values.update(secrets(module.params))


def run(module):
    """Run the action of module.params; the module's result. Raises BackupError (an OnpremError) whose details are
    the partial result, or another OnpremError (StateError) with them."""
    params = module.params
    hide_secrets(module)
    redact = redactor(params)
    result = {'changed': False, 'action': params['action'], 'repository': redact_url(params['repository'])}
    started = time.time()
    try:
        validate(params)
        restic = Restic(module, params['repository'], password=params['password'], password_file=params['password_file'],
                        env=params['env'], cache_dir=params['cache_dir'])
        _DO[params['action']](module, restic, params, result)
    except (OnpremError, OSError) as exc:  # ResticError, StateError, BackupError; OSError from the file system
        result.pop('manifest', None)  # never returned with a failure: it names what was being backed up
        result['duration'] = round(time.time() - started, 3)
        if isinstance(exc, OSError):
            msg, kind, details = 'cannot %s: %s' % (params['action'], exc), 'os', {}
        else:
            msg, kind, details = exc.msg, exc.error_kind, exc.details  # e.g. restic's rc and output
        raise BackupError(redact(msg), error_kind=kind, **remove_values(dict(details, **result), set(secrets(params)))) from exc
    result['duration'] = round(time.time() - started, 3)
    return remove_values(result, set(secrets(params)))
