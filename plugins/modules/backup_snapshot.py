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
version_added: 0.1.0
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
  - Errors say what is wrong, in RV(error_kind) too - C(missing) repository (not initialised), C(unreachable)
    (network, TLS, SSH), C(password_file) (missing or unreadable), C(locked), C(wrong_password), C(corrupt) (with the
    cause and how often restic retried, not each retry), C(no_space) (restore target full), C(no_snapshot),
    C(unsafe_target) (restore target), C(usage) (an option out of range).
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
  - onprem_ai.maintenance.common.STATE_DIR
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
    description:
      - Keep the last N snapshots (O(action=forget)), from 1 to 100000; anything else is refused before restic runs (restic reads a
        negative count as a policy that would forget every snapshot).
    type: int
  keep_daily:
    description:
      - Keep one snapshot a day for N days (O(action=forget)), from 1 to 100000 like O(keep_last).
    type: int
  keep_weekly:
    description:
      - Keep one snapshot a week for N weeks (O(action=forget)), from 1 to 100000 like O(keep_last).
    type: int
  keep_monthly:
    description:
      - Keep one snapshot a month for N months (O(action=forget)), from 1 to 100000 like O(keep_last).
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
      - With O(action=check), also read and verify this part of the data - V(n/t) (1 <= n <= t, for example V(1/5)),
        a percentage from 0 to 100 (V(10%)) or a size (V(500M)).
    type: str
  snapshot:
    description:
      - Snapshot ID (short or full, 4 to 64 hex digits) or V(latest) (of O(host) and O(tags) when given) for
        O(action=restore).
    type: str
    default: latest
  target:
    description:
      - Directory to restore into (O(action=restore)). V(/) restores in place.
      - restic restores as root and follows links it finds, so the target must be private - no component of the
        path may be a symbolic link, and its parent directory must belong to root and be writable by root alone
        (not V(/tmp) or V(/var/tmp) themselves). A missing target is created with mode 0700, without following links.
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
      - Write the system-state manifest to O(state_dir)C(/backup_manifest.json) (mode 0600) before O(action=backup) and
        include it in the snapshot. Parts that cannot be read are null and named in its C(unreadable) field, with a
        warning; they never stop the backup.
    type: bool
    default: true
  cache_dir:
    description:
      - restic cache directory (restic's default when not set).
    type: path
  models_root:
    description:
      - Where onprem_ai.maintenance.model_pull keeps its models (its O(onprem_ai.maintenance.model_pull#module:dest_root));
        the manifest records each model's current version, digest and size from there (never its source URLs).
    type: path
    default: /var/lib/onprem_ai/models
  litellm_dir:
    description:
      - Install directory of the onprem_ai.maintenance.litellm_gateway role (C(venvs/<version>), C(current) link); the
        manifest records the version in use.
    type: path
    default: /opt/litellm
  litellm_config:
    description:
      - LiteLLM configuration whose sha256 the manifest records.
    type: path
    default: /etc/litellm/config.yaml
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
    target: /var/lib/onprem_ai/drill/restore
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
      (O(action=restore)) - packages, gpu (driver, CUDA), models, container_images, litellm, paths, unreadable
      (the parts that could not be read, and why), and record_names; the collection's records themselves stay in
      the file (0600) and are never returned.
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
rc:
  description: On a failed restic command, its exit code.
  returned: failure of a restic command
  type: int
output:
  description: On a failed restic command, its error output, condensed (the cause first, retries counted) and without secrets.
  returned: failure of a restic command
  type: str
error_kind:
  description:
    - On failure - missing, unreachable, password_file, locked, wrong_password, corrupt, no_space, no_snapshot,
      unsafe_target, usage, verify, not_installed, state, os or error.
  returned: failure
  type: str
'''

from ansible.module_utils.basic import _load_params

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _backup as backup
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _manifest as manifest_utils
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import STATE_DIR_SPEC, OnpremModule
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._restic import url_secret


def main():
    # A password inside the repository URL makes the whole option no_log, decided before the arguments are
    # validated: a failure there prints the module's arguments, with only the no_log values masked.
    raw = _load_params()
    repository = raw.get('repository') if isinstance(raw, dict) else None
    module = OnpremModule(
        argument_spec=dict(
            repository=dict(type='str', required=True, no_log=bool(isinstance(repository, str) and url_secret(repository))),
            password=dict(type='str', no_log=True),
            password_file=dict(type='path', no_log=False),
            env=dict(type='dict', default={}, no_log=True),
            action=dict(type='str', default='backup', choices=list(backup.ACTIONS)),
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
            cache_dir=dict(type='path'),
            models_root=dict(type='path', default=manifest_utils.MODELS_ROOT),
            litellm_dir=dict(type='path', default=manifest_utils.LITELLM_INSTALL_DIR),
            litellm_config=dict(type='path', default=manifest_utils.LITELLM_CONFIG),
            **STATE_DIR_SPEC
        ),
        required_one_of=[('password', 'password_file')],
        mutually_exclusive=[('password', 'password_file')],
        required_if=[('action', 'backup', ['paths']), ('action', 'restore', ['target'])],
        supports_check_mode=True,
    )
    try:
        result = backup.run(module)
    except Exception as exc:  # pylint: disable=broad-except  # one failure shape, never a traceback
        module.fail_json(**failure(exc, backup.redactor(module.params), 'backup_snapshot'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
