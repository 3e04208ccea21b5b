#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup_snapshot
short_description: Back up, prune, check, list and restore a node with restic, with a system-state manifest
version_added: 0.2.0
description:
  - Drives L(restic,https://restic.net) from the distribution's package on a local path, SFTP, S3-compatible or
    REST server repository (O(repository) is passed to restic as it is).
  - O(action=init) creates the repository when it is not there yet.
  - O(action=backup) takes a snapshot of O(paths) with O(tags), the O(host) name and a C(reason:...) tag, and stores
    a system-state manifest with it (installed package versions, NVIDIA driver and CUDA versions, model records,
    container image digests, LiteLLM version and config hash), so that the node can be rebuilt to its recorded state.
  - O(action=forget) applies a retention policy (O(keep_last), O(keep_daily), O(keep_weekly), O(keep_monthly)) to the
    snapshots of O(host) (and O(tags) when given), in groups of O(group_by), and prunes. Grouped by host and tags (the
    default), a daily policy never weighs a C(pre-update) snapshot against a C(daily) one; give pre-update snapshots
    their own policy (O(tags=[pre-update]), O(keep_last), O(group_by=[host])), as the onprem_ai.maintenance.backup
    role does.
  - O(action=check) checks the repository structure and, with O(read_data_subset), reads back part of the data.
  - O(action=snapshots) lists snapshots.
  - O(action=restore) restores a snapshot (or some of its paths) into O(target) and verifies the restored files
    against the snapshot and against the manifest stored with it.
  - The password is passed to restic in the environment (O(password)) or as a file (O(password_file)), never on the
    command line, and it is removed from every output and error message.
  - Errors say what is wrong, in RV(error_kind) too - C(missing) repository, C(locked), C(wrong_password),
    C(corrupt), C(no_space) (restore target full), C(no_snapshot).
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: partial
    details:
      - O(action=backup) and O(action=forget) run restic with C(--dry-run); O(action=init) and O(action=restore) only
        report what they would do; O(action=check) and O(action=snapshots) run as usual.
  diff_mode:
    support: none
options:
  repository:
    description:
      - The restic repository, as restic takes it - C(/srv/backup/restic) (local path),
        C(sftp:backup@host:/srv/restic) (SFTP with the SSH keys of the user running the module),
        C(s3:https://s3.example.internal/bucket/node) (S3-compatible server such as MinIO or Ceph RGW, by URL),
        C(s3:s3.amazonaws.com/bucket/node) (AWS S3), C(rest:https://backup.example.internal:8000/node/) (restic REST
        server) or C(rest:https://user:pass@backup.example.internal:8000/node/) (REST server with HTTP basic
        authentication in the URL).
      - S3 credentials go to O(env) (E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY)). REST server credentials go to
        O(env) (E(RESTIC_REST_USERNAME), E(RESTIC_REST_PASSWORD)) with restic 0.17 or newer; older restic (0.14 in
        Debian 12, 0.16 in Ubuntu 24.04) only reads them from the URL.
      - A password inside a URL is treated as a secret - the repository is then passed to restic as
        E(RESTIC_REPOSITORY) instead of on its command line, and the password is removed from every output, error
        message and the logged module arguments.
    type: str
    required: true
  password:
    description:
      - Repository password, passed to restic as E(RESTIC_PASSWORD). One of O(password) and O(password_file) is required.
    type: str
  password_file:
    description:
      - File holding the repository password (restic C(--password-file)).
    type: path
  env:
    description:
      - Extra environment for restic - S3 credentials (E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY),
        E(AWS_DEFAULT_REGION)), REST server credentials (E(RESTIC_REST_USERNAME), E(RESTIC_REST_PASSWORD), restic 0.17
        or newer), proxies (E(HTTPS_PROXY)).
      - Passed to restic in its environment only, never on its command line. The option is C(no_log) - its values
        are removed from every output and error message, and the module never returns them.
    type: dict
    default: {}
  action:
    description:
      - What to do.
    type: str
    choices: [init, backup, forget, check, snapshots, restore]
    default: backup
  paths:
    description:
      - Files and directories to back up (O(action=backup)); paths that do not exist are skipped with a warning.
    type: list
    elements: path
    default: []
  exclude:
    description:
      - Exclude patterns (restic C(--exclude)) for O(action=backup) and O(action=restore).
    type: list
    elements: str
    default: []
  tags:
    description:
      - Tags of the snapshot (O(action=backup)) such as V(daily), V(monthly), V(pre-update); with O(action=forget),
        O(action=snapshots) and O(action=restore) they select snapshots.
    type: list
    elements: str
    default: []
  host:
    description:
      - Host name recorded with the snapshot, and the host whose snapshots O(action=forget), O(action=snapshots) and
        O(action=restore) select. Defaults to the node's host name for O(action=backup) and O(action=forget).
    type: str
  reason:
    description:
      - Why the snapshot is taken (for example V(before gpu_stack 570)); recorded in the manifest and as a
        C(reason:...) tag.
    type: str
  keep_last:
    description: Keep the last N snapshots (O(action=forget)).
    type: int
  keep_daily:
    description: Keep one snapshot a day for N days (O(action=forget)).
    type: int
  keep_weekly:
    description: Keep one snapshot a week for N weeks (O(action=forget)).
    type: int
  keep_monthly:
    description: Keep one snapshot a month for N months (O(action=forget)).
    type: int
  group_by:
    description:
      - How O(action=forget) groups the snapshots it applies the policy to (restic C(--group-by)); each group keeps its
        own snapshots.
      - V(host) and V(tags) (the default) keep the policy of one kind of snapshot (V(daily), V(monthly),
        V(pre-update)) from removing snapshots of another kind taken the same day.
      - Use V([host]) with O(tags=[pre-update]) and O(keep_last), since every pre-update snapshot also carries its own
        C(reason:...) tag and would otherwise be a group of its own.
    type: list
    elements: str
    choices: [host, paths, tags]
    default: [host, tags]
  prune:
    description: Remove the data of forgotten snapshots (O(action=forget)).
    type: bool
    default: true
  read_data_subset:
    description:
      - With O(action=check), also read and verify this part of the data, for example V(10%) or V(1/5).
    type: str
  snapshot:
    description:
      - Snapshot ID (short or full) or V(latest) (of O(host) and O(tags) when given) for O(action=restore).
    type: str
    default: latest
  target:
    description:
      - Directory to restore into (O(action=restore)). V(/) restores in place.
    type: path
  include:
    description:
      - Only restore these paths of the snapshot (O(action=restore)).
    type: list
    elements: str
    default: []
  verify:
    description:
      - After O(action=restore), let restic verify the restored content and check every restored file against the
        snapshot's listing (presence and size) and the manifest.
    type: bool
    default: true
  manifest:
    description:
      - Write the system-state manifest to O(state_dir)C(/backup_manifest.json) before O(action=backup) and include it
        in the snapshot.
    type: bool
    default: true
  state_dir:
    description:
      - Where the collection keeps its per-node records (and the manifest).
    type: path
    default: /var/lib/onprem_ai
  cache_dir:
    description:
      - restic cache directory (restic's default when not set).
    type: path
notes:
  - restic 0.14 (Debian 12) or newer. S3-compatible and REST repositories are passed through to restic unchanged.
  - The manifest records public models by digest; the onprem_ai.maintenance.backup role excludes their files unless told otherwise.
seealso:
  - name: restic documentation
    description: Preparing a repository (local, SFTP, REST, S3-compatible).
    link: https://restic.readthedocs.io/en/stable/030_preparing_a_new_repo.html
requirements:
  - restic on the target.
'''

EXAMPLES = r'''
- name: Create the repository
  onprem_ai.maintenance.backup_snapshot:
    action: init
    repository: /srv/backup/restic
    password_file: /etc/onprem_ai/restic.pass

- name: Pre-update snapshot of the configuration and state
  onprem_ai.maintenance.backup_snapshot:
    repository: sftp:backup@backup-1:/srv/restic/{{ inventory_hostname }}
    password: "{{ vault_restic_password }}"
    paths: [/etc/litellm, /etc/systemd/system, /var/lib/onprem_ai]
    tags: [pre-update]
    reason: before gpu_stack 570

- name: Create a repository on an S3-compatible server (MinIO, Ceph RGW); credentials only in the environment
  onprem_ai.maintenance.backup_snapshot:
    action: init
    repository: s3:https://s3.example.internal/backups/{{ inventory_hostname }}
    password: "{{ vault_restic_password }}"
    env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret }}"
      AWS_DEFAULT_REGION: us-east-1

- name: Retention of the daily and monthly snapshots (grouped by host and tags)
  onprem_ai.maintenance.backup_snapshot:
    action: forget
    repository: s3:https://s3.example.internal/backups/{{ inventory_hostname }}
    password: "{{ vault_restic_password }}"
    env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret }}"
    tags: [daily, monthly]
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12

- name: Retention of the pre-update snapshots - the last 10, whatever their reason
  onprem_ai.maintenance.backup_snapshot:
    action: forget
    repository: /srv/backup/restic
    password_file: /etc/onprem_ai/restic.pass
    tags: [pre-update]
    group_by: [host]
    keep_last: 10

- name: Snapshots on a restic REST server (restic 0.14 to 0.16 - the credentials in the URL, masked in every output)
  onprem_ai.maintenance.backup_snapshot:
    action: snapshots
    repository: rest:https://{{ inventory_hostname }}:{{ vault_rest_password }}@backup.example.internal:8000/{{ inventory_hostname }}/
    password_file: /etc/onprem_ai/restic.pass

- name: Read back a tenth of the data on a REST server (restic 0.17 or newer - the credentials in the environment)
  onprem_ai.maintenance.backup_snapshot:
    action: check
    repository: rest:https://backup.example.internal:8000/{{ inventory_hostname }}/
    password_file: /etc/onprem_ai/restic.pass
    env:
      RESTIC_REST_USERNAME: "{{ inventory_hostname }}"
      RESTIC_REST_PASSWORD: "{{ vault_rest_password }}"
    read_data_subset: 10%

- name: Restore the LiteLLM configuration of the latest snapshot into a scratch directory
  onprem_ai.maintenance.backup_snapshot:
    action: restore
    repository: /srv/backup/restic
    password_file: /etc/onprem_ai/restic.pass
    snapshot: latest
    include: [/etc/litellm]
    target: /var/tmp/restore
'''

RETURN = r'''
action:
  description: The action run.
  returned: always
  type: str
repository:
  description: The repository, with a password inside the URL masked.
  returned: always
  type: str
initialized:
  description: The repository was created by this run (O(action=init)).
  returned: when action is init
  type: bool
snapshot:
  description:
    - The snapshot taken (O(action=backup) - id, files and bytes new and processed, data added, duration in seconds)
      or restored (O(action=restore) - restic's snapshot object with id, time, paths, hostname, tags, and
      C(age_seconds), the age of its data when the restore started, the RPO of a drill).
  returned: when action is backup or restore
  type: dict
  sample: {"id": "75a8b6e5", "files_new": 12, "files_changed": 0, "files_unmodified": 3, "data_added": 7064,
           "total_bytes_processed": 90412, "total_duration": 0.27}
snapshots:
  description: Snapshots (O(action=snapshots)), as restic lists them.
  returned: when action is snapshots
  type: list
  elements: dict
forget:
  description: Short IDs kept and removed, and whether the repository was pruned (O(action=forget)).
  returned: when action is forget
  type: dict
  sample: {"kept": ["0f9c3032"], "removed": ["75a8b6e5"], "pruned": true}
check:
  description: Result of O(action=check) (C(ok), the damage found in C(errors)).
  returned: when action is check
  type: dict
manifest:
  description:
    - The system-state manifest stored with the snapshot (O(action=backup)) or found in the restored snapshot
      (O(action=restore)) - packages, gpu (driver, CUDA), models, container_images, litellm, records, paths.
  returned: when action is backup or restore and a manifest is there
  type: dict
manifest_path:
  description: Where the manifest was written (O(action=backup)) or found among the restored files (O(action=restore)).
  returned: when action is backup or restore and a manifest is there
  type: str
verification:
  description:
    - Restore check (O(action=restore)) - C(ok), C(files) and C(bytes) restored as listed, C(missing) and
      C(size_mismatch) paths, and C(manifest) (file counts per backed-up path compared with the manifest).
  returned: when action is restore and verify is true
  type: dict
target:
  description: Where the snapshot was restored.
  returned: when action is restore
  type: str
duration:
  description: Seconds the action took.
  returned: always
  type: float
error_kind:
  description: On failure - missing, locked, wrong_password, corrupt, no_space, no_snapshot, not_installed or error.
  returned: failure
  type: str
'''

import json
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest_utils
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _state as state
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._restic import (
    Restic, ResticError, redact_url, retention_args, snapshot_age, url_secret, verify_restore)


def _covered(path, paths):
    return any(path == p or path.startswith(p.rstrip('/') + '/') for p in paths)


def _reason_tag(reason):
    return 'reason:' + ''.join(c if c.isalnum() or c in '-_.' else '-' for c in reason)[:60]


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
        data = manifest_utils.build(module, paths, exclude=params['exclude'], state_dir=params['state_dir'], tags=tags, reason=params['reason'])
        result['manifest_path'] = state.state_path(params['state_dir'], manifest_utils.MANIFEST_NAME)
        if not module.check_mode:
            state.save(params['state_dir'], manifest_utils.MANIFEST_NAME, data)
        result['manifest'] = data
        if not _covered(result['manifest_path'], paths):
            paths.append(result['manifest_path'])
    if not paths:
        raise ResticError('nothing to back up: none of the paths exists', kind='no_paths')
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


def do_restore(module, restic, params, result):
    if not params['target']:
        raise ResticError('action=restore needs target', kind='usage')
    snap = restic.resolve(params['snapshot'], host=params['host'], tags=params['tags'] or None)
    snap['age_seconds'] = snapshot_age(snap.get('time'))
    result['snapshot'] = snap
    result['target'] = params['target']
    if module.check_mode:
        result['changed'] = True
        return
    restic.restore(snap['id'], params['target'], include=params['include'], exclude=params['exclude'], verify=params['verify'])
    result['changed'] = True
    manifest_path = os.path.join(params['target'], state.state_path(params['state_dir'], manifest_utils.MANIFEST_NAME).lstrip('/'))
    data = None
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            module.warn('cannot read the restored manifest %s: %s' % (manifest_path, exc))
        result['manifest'] = data
        result['manifest_path'] = manifest_path
    if params['verify']:
        check = verify_restore(restic.ls(snap['id']), params['target'], params['include'])
        if data is not None:
            recorded = [p for p in data.get('paths') or [] if not params['include'] or _covered(p['path'], params['include'])]
            check['manifest'] = manifest_utils.compare(dict(data, paths=recorded), params['target'])
            check['ok'] = check['ok'] and check['manifest']['ok']
        result['verification'] = check
        if not check['ok']:
            raise ResticError('restore of snapshot %s into %s does not match the snapshot: %d missing, %d size mismatches%s' % (
                snap.get('short_id'), params['target'], len(check['missing']), len(check['size_mismatch']),
                '' if check.get('manifest', {}).get('ok', True) else ', manifest file counts differ'), kind='verify')


def run(module, params, result):
    restic = Restic(module, params['repository'], password=params['password'], password_file=params['password_file'],
                    env=params['env'], cache_dir=params['cache_dir'])
    result['_restic'] = restic
    action = params['action']
    if action == 'init':
        exists = restic.exists()
        result['initialized'] = not exists
        if not exists:
            result['changed'] = True
            if not module.check_mode:
                restic.init()
    elif action == 'backup':
        do_backup(module, restic, params, result)
    elif action == 'forget':
        retention = retention_args(params['keep_last'], params['keep_daily'], params['keep_weekly'], params['keep_monthly'])
        if not retention:
            raise ResticError('action=forget needs at least one of keep_last, keep_daily, keep_weekly, keep_monthly', kind='usage')
        result['forget'] = restic.forget(retention, host=params['host'] or socket.gethostname(), tags=params['tags'] or None,
                                         group_by=','.join(params['group_by']), prune=params['prune'], dry_run=module.check_mode)
        result['changed'] = bool(result['forget']['removed'])
    elif action == 'check':
        result['check'] = restic.check(params['read_data_subset'])
    elif action == 'snapshots':
        result['snapshots'] = restic.snapshots(host=params['host'], tags=params['tags'] or None)
    elif action == 'restore':
        do_restore(module, restic, params, result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type='str', required=True, no_log=False),
            password=dict(type='str', no_log=True),
            password_file=dict(type='path', no_log=False),
            env=dict(type='dict', default={}, no_log=True),
            action=dict(type='str', default='backup', choices=['init', 'backup', 'forget', 'check', 'snapshots', 'restore']),
            paths=dict(type='list', elements='path', default=[]),
            exclude=dict(type='list', elements='str', default=[]),
            tags=dict(type='list', elements='str', default=[]),
            host=dict(type='str'),
            reason=dict(type='str'),
            keep_last=dict(type='int'),
            keep_daily=dict(type='int'),
            keep_weekly=dict(type='int'),
            keep_monthly=dict(type='int'),
            group_by=dict(type='list', elements='str', choices=['host', 'paths', 'tags'], default=['host', 'tags']),
            prune=dict(type='bool', default=True),
            read_data_subset=dict(type='str'),
            snapshot=dict(type='str', default='latest'),
            target=dict(type='path'),
            include=dict(type='list', elements='str', default=[]),
            verify=dict(type='bool', default=True),
            manifest=dict(type='bool', default=True),
            state_dir=dict(type='path', default='/var/lib/onprem_ai'),
            cache_dir=dict(type='path'),
        ),
        required_one_of=[('password', 'password_file')],
        mutually_exclusive=[('password', 'password_file')],
        required_if=[('action', 'backup', ['paths']), ('action', 'restore', ['target'])],
        supports_check_mode=True,
    )
    params = module.params
    # A password inside the repository URL is a secret like the no_log options: out of the logged arguments too.
    url_password = url_secret(params['repository'])
    if url_password:
        module.no_log_values.add(url_password)
    result = {'changed': False, 'action': params['action'], 'repository': redact_url(params['repository'])}
    started = time.time()
    try:
        run(module, params, result)
    except ResticError as exc:
        restic = result.pop('_restic', None)
        result.pop('manifest', None)
        result['duration'] = round(time.time() - started, 3)
        msg = restic.scrub(str(exc)) if restic else str(exc)
        module.fail_json(msg=msg, error_kind=exc.kind, **(restic.scrub_value(result) if restic else result))
    except state.StateError as exc:
        result.pop('_restic', None)
        module.fail_json(msg=str(exc), error_kind='state', **result)
    restic = result.pop('_restic')
    result['duration'] = round(time.time() - started, 3)
    module.exit_json(**restic.scrub_value(result))


if __name__ == '__main__':
    main()
