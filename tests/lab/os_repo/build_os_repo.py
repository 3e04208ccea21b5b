# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Builds the SIMULATED Debian OS repository of the onprem_ai lab (suites bookworm, bookworm-updates,
bookworm-security) with Debian's own tools: dpkg-deb builds the packages, apt-ftparchive the indexes and
Release files, gpg signs them (InRelease, Release.gpg).

    python3 tests/lab/os_repo/build_os_repo.py OUTDIR      # prints `cached` when nothing changed

OUTDIR/dists/<suite>/main/binary-<arch>/Packages(.gz), OUTDIR/dists/<suite>/{Release,InRelease,Release.gpg},
OUTDIR/pool/<suite>/*.deb, OUTDIR/lab-os-sim.gpg (public key). Node source lines (served as
http://lab-nvidia-repo/os by the lab's repository container, tests/lab/tasks/services.yml):

    deb [signed-by=/usr/share/keyrings/lab-os-sim.gpg] http://lab-nvidia-repo/os bookworm main
    deb [signed-by=/usr/share/keyrings/lab-os-sim.gpg] http://lab-nvidia-repo/os bookworm-updates main
    deb [signed-by=/usr/share/keyrings/lab-os-sim.gpg] http://lab-nvidia-repo/os bookworm-security main

The packages are in catalog.py beside this file. None of them is Debian software.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import catalog  # noqa: E402  (beside this file)

KEY_UID = "onprem_ai lab simulated OS repository <lab-os-sim@onprem-ai.invalid>"
KEYRING_NAME = "lab-os-sim.gpg"
STAMP_NAME = ".build-stamp"


class BuildError(Exception):
    """A build step failed."""


def run(args, cwd=None, env=None, binary=False):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=not binary, check=False)
    if result.returncode != 0:
        raise BuildError("%s failed (rc %d): %s" % (" ".join(args), result.returncode, str(result.stderr).strip()))
    return result.stdout


def inputs_hash(arch):
    digest = hashlib.sha256(arch.encode())
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".py"):
            with open(os.path.join(HERE, name), "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()


def build_deb(package, arch, workdir, pooldir):
    root = os.path.join(workdir, "%s_%s" % (package["name"], package["version"]))
    os.makedirs(os.path.join(root, "DEBIAN"))
    for path, (mode, text) in package.get("files", {}).items():
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(target, mode)
    package_arch = package.get("arch", arch)
    lines = ["Package: %s" % package["name"], "Version: %s" % package["version"], "Architecture: %s" % package_arch,
             "Maintainer: %s" % catalog.MAINTAINER, "Section: %s" % package.get("section", "misc"), "Priority: optional"]
    if package.get("depends"):
        lines.append("Depends: %s" % ", ".join(package["depends"]))
    lines.append("Description: %s - %s" % (package["summary"], catalog.SIMULATED))
    lines.append(" %s: imitates a Debian package for the lab's OS update tests; no Debian software inside." % catalog.SIMULATED)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    for name, text in package.get("scripts", {}).items():
        path = os.path.join(root, "DEBIAN", name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o755)
    deb = os.path.join(pooldir, "%s_%s_%s.deb" % (package["name"], package["version"], package_arch))
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb])


def ensure_key(outdir):
    home = os.path.join(outdir, ".gnupg")
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    base = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]

    def fingerprint():
        probe = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys", KEY_UID], env=env,
                               capture_output=True, text=True, check=False)
        for line in probe.stdout.splitlines() if probe.returncode == 0 else []:
            if line.startswith("fpr:"):
                return line.split(":")[9]
        return None

    fpr = fingerprint()
    if fpr is None:
        run(base + ["--quick-generate-key", KEY_UID, "ed25519", "sign", "never"], env=env)
        fpr = fingerprint()
    if fpr is None:
        raise BuildError("gpg did not create the lab signing key in %s" % home)
    return env, fpr, base


def build(outdir):
    arch = run(["dpkg", "--print-architecture"]).strip()
    stamp = os.path.join(outdir, STAMP_NAME)
    digest = inputs_hash(arch)
    if os.path.exists(stamp) and open(stamp).read().strip() == digest:
        print("cached: %s" % outdir)
        return
    os.makedirs(outdir, exist_ok=True)
    for name in ("dists", "pool"):
        shutil.rmtree(os.path.join(outdir, name), ignore_errors=True)
    env, fpr, base = ensure_key(outdir)
    with tempfile.TemporaryDirectory(prefix="lab-os-repo-") as workdir:
        for suite, info in catalog.SUITES.items():
            pool = os.path.join(outdir, "pool", suite)
            os.makedirs(pool)
            for package in catalog.packages(suite):
                build_deb(package, arch, workdir, pool)
            bindir = os.path.join(outdir, "dists", suite, "main", "binary-%s" % arch)
            os.makedirs(bindir)
            packages = run(["apt-ftparchive", "packages", os.path.join("pool", suite)], cwd=outdir)
            with open(os.path.join(bindir, "Packages"), "w", encoding="utf-8") as handle:
                handle.write(packages)
            with gzip.open(os.path.join(bindir, "Packages.gz"), "wt", encoding="utf-8") as handle:
                handle.write(packages)
            distdir = os.path.join(outdir, "dists", suite)
            release = run(["apt-ftparchive",
                           "-o", "APT::FTPArchive::Release::Origin=%s" % info["origin"],
                           "-o", "APT::FTPArchive::Release::Label=%s" % info["origin"],
                           "-o", "APT::FTPArchive::Release::Suite=%s" % suite,
                           "-o", "APT::FTPArchive::Release::Codename=%s" % suite,
                           "-o", "APT::FTPArchive::Release::Version=12",
                           "-o", "APT::FTPArchive::Release::Components=main",
                           "-o", "APT::FTPArchive::Release::Architectures=%s" % arch,
                           "-o", "APT::FTPArchive::Release::Description=%s: %s" % (catalog.SIMULATED, suite),
                           "release", "."], cwd=distdir)
            with open(os.path.join(distdir, "Release"), "w", encoding="utf-8") as handle:
                handle.write(release)
            run(base + ["--yes", "--local-user", fpr, "--clearsign", "--output", "InRelease", "Release"], cwd=distdir, env=env)
            run(base + ["--yes", "--local-user", fpr, "--armor", "--detach-sign", "--output", "Release.gpg", "Release"], cwd=distdir, env=env)
    with open(os.path.join(outdir, KEYRING_NAME), "wb") as handle:
        handle.write(run(["gpg", "--batch", "--export", fpr], env=env, binary=True))
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
    with open(stamp, "w") as handle:
        handle.write(digest + "\n")
    print("built: %s (%s)" % (outdir, ", ".join(catalog.SUITES)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for tool in ("dpkg-deb", "apt-ftparchive", "gpg"):
        if not shutil.which(tool):
            print("%s is needed (tools/ensure-host.sh installs it)" % tool, file=sys.stderr)
            return 1
    try:
        build(os.path.abspath(argv[0]))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
