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

import base64
import binascii
import io
import os
import pwd
import re
import tarfile
import urllib.parse

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


# --- The systematic sweep: every entry point's output and every file it wrote (molecule/backup/tests/test_secrets.py).
# Secrets are given as {name: value}; what is reported names the secret and where it was found, never its value.

_B64_RUN = re.compile(r'[A-Za-z0-9+/_-]{12,}={0,2}')


def _b64_decoded(run):
    """The text a base64 (or base64url) run decodes to, at each of the four alignments; '' when none decodes."""
    out = []
    for start in range(4):
        body = run[start:].rstrip('=')
        body = body[:len(body) - len(body) % 4] if len(body) % 4 == 1 else body
        for alphabet in (None, b'-_'):
            try:
                raw = base64.b64decode(body + '=' * (-len(body) % 4), altchars=alphabet, validate=True)
            except (binascii.Error, ValueError):
                continue
            out.append(raw.decode('latin-1'))
    return '\n'.join(out)


def haystacks(text):
    """`text` and the forms a secret may take in it: URL-decoded (%40 for @, + for space), and every base64 run
    decoded (HTTP basic auth, slurp contents, Kubernetes-style values), each labelled by its form."""
    forms = {'clear': text}
    unquoted = urllib.parse.unquote(text)
    if unquoted != text:
        forms['url-encoded'] = unquoted
    plus = urllib.parse.unquote_plus(text)
    if plus not in (text, unquoted):
        forms['form-encoded'] = plus
    decoded = '\n'.join(filter(None, (_b64_decoded(run) for run in set(_B64_RUN.findall(text)))))
    if decoded:
        forms['base64'] = decoded
        forms['base64+url-encoded'] = urllib.parse.unquote(decoded)
    return forms


def secrets_in_text(text, secrets):
    """[(name, form)] of each secret of `secrets` ({name: value}) found in `text` in clear or a transformed form."""
    if isinstance(text, bytes):
        text = text.decode('latin-1')
    found = []
    for form, hay in haystacks(text).items():
        found += [(name, form) for name, value in sorted(secrets.items()) if value and value in hay]
    seen = set()
    return [item for item in found if not (item[0] in seen or seen.add(item[0]))]


def scan_tar(data, secrets, owners=('root',), skip=()):
    """The files of a tar archive (bytes) that hold one of `secrets`: {path: {'mode', 'owner', 'secrets', 'private'}};
    private is false when the file is readable by group or others or owned by someone not in `owners`. Paths starting
    with one of `skip` (the lab's own doing) are left out."""
    result = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            path = '/' + member.name.lstrip('./').lstrip('/')
            if not member.isfile() or path.startswith(tuple(skip)):
                continue
            found = secrets_in_text(tar.extractfile(member).read(), secrets)
            if found:
                result[path] = {'mode': member.mode & 0o7777, 'owner': member.uname or str(member.uid),
                                'secrets': found,
                                'private': not member.mode & 0o077 and (member.uname or str(member.uid)) in owners}
    return result


def scan_dir(root, secrets, owners=None, skip=()):
    """scan_tar for a local directory (the controller's side: its temporary and home directories)."""
    owners = owners or (pwd.getpwuid(os.getuid()).pw_name,)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        tar.add(str(root), arcname=str(root).lstrip('/'))
    return scan_tar(buf.getvalue(), secrets, owners=owners, skip=skip)


def describe(found):
    """Readable lines for scan_tar's result (names and forms, never values)."""
    return ['%s (mode %04o, owner %s): %s' % (path, item['mode'], item['owner'],
                                              ', '.join('%s in %s' % pair for pair in item['secrets']))
            for path, item in sorted(found.items())]
