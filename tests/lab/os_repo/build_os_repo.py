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
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))
import catalog  # noqa: E402  (beside this file)
from debrepo import (BuildError, control_text, ensure_key, export_key,  # noqa: E402  (tests/lab/debrepo.py, shared with nvidia_sim)
                     inputs_hash as hash_inputs, run, write_deb, write_signed_release)

KEY_UID = "onprem_ai lab simulated OS repository <lab-os-sim@onprem-ai.invalid>"
KEYRING_NAME = "lab-os-sim.gpg"
STAMP_NAME = ".build-stamp"


def inputs_hash(arch):
    return hash_inputs(arch.encode(), HERE, lambda name: name.endswith(".py"))


def build_deb(package, arch, workdir, pooldir):
    package_arch = package.get("arch", arch)
    control = control_text([("Package", package["name"]), ("Version", package["version"]), ("Architecture", package_arch),
                            ("Maintainer", catalog.MAINTAINER), ("Section", package.get("section", "misc")),
                            ("Priority", "optional"), ("Depends", ", ".join(package.get("depends") or []))],
                           ["%s - %s" % (package["summary"], catalog.SIMULATED),
                            "%s: imitates a Debian package for the lab's OS update tests; no Debian software inside." % catalog.SIMULATED])
    write_deb(os.path.join(workdir, "%s_%s" % (package["name"], package["version"])),
              os.path.join(pooldir, "%s_%s_%s.deb" % (package["name"], package["version"], package_arch)), control,
              [(path, mode, text) for path, (mode, text) in package.get("files", {}).items()], package.get("scripts", {}))


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
    env, fpr = ensure_key(outdir, KEY_UID)
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
            write_signed_release(distdir, [("Origin", info["origin"]), ("Label", info["origin"]), ("Suite", suite), ("Codename", suite),
                                           ("Version", "12"), ("Components", "main"), ("Architectures", arch),
                                           ("Description", "%s: %s" % (catalog.SIMULATED, suite))], env, fpr)
    export_key(os.path.join(outdir, KEYRING_NAME), env, fpr)
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
