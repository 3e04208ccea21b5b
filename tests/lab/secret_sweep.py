# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the secrets a scenario planted ended up on a lab node (testinfra helper).

Every file that holds a planted secret must be private (no group or other bits) and owned by root
or by the service account named for it, and only the files a scenario expects may hold one. The
search covers every place the collection or the services it configures write to, the journal
included, so a secret that leaks into a log, a state file, a temporary copy or a unit file is found.

Use from a scenario's testinfra module:
    sys.path.insert(0, os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'tests', 'lab'))
    from secret_sweep import assert_secrets_private
"""

from __future__ import annotations

SEARCH_ROOTS = ('/etc', '/var/lib', '/var/backups', '/var/tmp', '/var/log', '/var/cache', '/tmp',
                '/opt', '/root', '/home', '/srv', '/run')


def files_holding(host, secrets, roots=SEARCH_ROOTS):
    """Each file under `roots` on `host` that holds one of `secrets`: {path: (mode, owner)}."""
    argv = ['grep', '-rlsF', '--devices=skip']
    for secret in secrets:
        argv += ['-e', secret]
    result = host.run(' '.join(['%s'] * (len(argv) + len(roots))), *(argv + list(roots)))
    if result.rc not in (0, 1):  # 1: nothing found; 2 with output: an unreadable file somewhere
        assert result.stdout or result.rc == 1, 'grep failed on %s: %s' % (host.backend.hostname, result.stderr[-500:])
    found = {}
    for path in result.stdout.splitlines():
        item = host.file(path)
        found[path] = (item.mode, item.user)
    return found


def assert_secrets_private(host, secrets, expected=None, owners=('root',), lab_own=()):
    """No file holding a secret is readable by group or others, each is owned by one of `owners`,
    and, when `expected` (paths) is given, no other file holds one. Paths starting with one of
    `lab_own` are the lab's own doing (a lab server given the secret on its command line) and left out."""
    found = {path: found for path, found in files_holding(host, secrets).items() if not path.startswith(tuple(lab_own))}
    loose = ['%s mode %o owner %s' % (path, mode, user) for path, (mode, user) in sorted(found.items())
             if mode & 0o077 or user not in owners]
    assert not loose, 'secrets in files that are not private: %s' % ', '.join(loose)
    if expected is not None:
        unexpected = sorted(set(found) - set(expected))
        assert not unexpected, 'secrets in unexpected files: %s' % ', '.join(unexpected)
    return found


def assert_no_secret_in_text(text, secrets, what):
    """A playbook's output (or any text kept from a run) holds none of `secrets`."""
    leaked = [index for index, secret in enumerate(secrets) if secret in text]
    assert not leaked, '%s holds planted secret(s) number %s' % (what, leaked)
