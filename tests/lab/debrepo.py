# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the lab's SIMULATED apt repository builders (tests/lab/nvidia_sim/build_repo.py and
tests/lab/os_repo/build_os_repo.py): running the Debian tools, the input hash of a build, one .deb from a
package layout, the lab signing key and the signed Release files. Both builders import it from their
parent folder; their input hashes include this file, so a change here rebuilds both repositories."""

import hashlib
import os
import subprocess

HELPER = os.path.abspath(__file__)
GPG_BATCH = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]


class BuildError(Exception):
    """A build step failed."""


def run(args, cwd=None, env=None, binary=False):
    """Run a command (argument list) and return its stdout (bytes when binary); BuildError on failure."""
    try:
        result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=not binary, check=False)
    except OSError as exc:
        raise BuildError("cannot run %s: %s" % (args[0], exc)) from exc
    if result.returncode != 0:
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode("utf-8", "replace")
        raise BuildError("%s failed (rc %d): %s" % (" ".join(args), result.returncode, err.strip()))
    return result.stdout


def inputs_hash(seed, directory, wanted):
    """sha256 of seed, of every file of directory whose name wanted(name) accepts and of this helper."""
    digest = hashlib.sha256(seed)
    paths = [os.path.join(directory, name) for name in sorted(os.listdir(directory))]
    for path in [p for p in paths if os.path.isfile(p) and wanted(os.path.basename(p))] + [HELPER]:
        with open(path, "rb") as handle:
            digest.update(os.path.basename(path).encode() + b"\0" + handle.read())
    return digest.hexdigest()


def control_text(fields, description):
    """DEBIAN/control text: the (field, value) pairs whose value is set, then the Description lines."""
    lines = ["%s: %s" % (name, value) for name, value in fields if value]
    lines.append("Description: %s" % description[0])
    lines.extend(" " + line for line in description[1:])
    return "\n".join(lines) + "\n"


def write_deb(root, deb, control, files, scripts):
    """dpkg-deb --build --root-owner-group the package laid out under root into the file deb.

    files: (path, mode, data) triples; mode None makes path a symbolic link to data.
    scripts: maintainer script name -> text (mode 0755)."""
    os.makedirs(os.path.join(root, "DEBIAN"))
    for path, mode, data in files:
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if mode is None:
            os.symlink(data, target)
            continue
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.chmod(target, mode)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
        handle.write(control)
    for name, text in scripts.items():
        path = os.path.join(root, "DEBIAN", name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o755)
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb])
    return deb


def ensure_key(outdir, key_uid):
    """The lab signing key key_uid (generated once under OUTDIR/.gnupg); return (env, fingerprint)."""
    home = os.path.join(outdir, ".gnupg")
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)

    def fingerprint():
        probe = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys", key_uid], env=env,
                               capture_output=True, text=True, check=False)
        for line in probe.stdout.splitlines() if probe.returncode == 0 else []:
            if line.startswith("fpr:"):
                return line.split(":")[9]
        return None

    fpr = fingerprint()
    if fpr is None:
        run(GPG_BATCH + ["--quick-generate-key", key_uid, "ed25519", "sign", "never"], env=env)
        fpr = fingerprint()
    if fpr is None:
        raise BuildError("gpg did not create the lab signing key in %s" % home)
    return env, fpr


def write_signed_release(distdir, options, env, fpr):
    """apt-ftparchive release of distdir with these APT::FTPArchive::Release options (ordered pairs),
    then InRelease (clear-signed) and Release.gpg (detached) with the key fpr."""
    args = ["apt-ftparchive"]
    for name, value in options:
        args += ["-o", "APT::FTPArchive::Release::%s=%s" % (name, value)]
    release = run(args + ["release", "."], cwd=distdir)
    with open(os.path.join(distdir, "Release"), "w", encoding="utf-8") as handle:
        handle.write(release)
    run(GPG_BATCH + ["--yes", "--local-user", fpr, "--clearsign", "--output", "InRelease", "Release"], cwd=distdir, env=env)
    run(GPG_BATCH + ["--yes", "--local-user", fpr, "--armor", "--detach-sign", "--output", "Release.gpg", "Release"],
        cwd=distdir, env=env)


def export_key(path, env, fpr):
    """The public key fpr as a binary keyring (for signed-by=) at path; stop the gpg agent of env."""
    with open(path, "wb") as handle:
        handle.write(run(["gpg", "--batch", "--export", fpr], env=env, binary=True))
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
