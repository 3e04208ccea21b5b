# -*- coding: utf-8 -*-
# Builds the SIMULATED NVIDIA apt repository of the onprem_ai lab.
#
#   python3 tests/lab/nvidia_sim/build_repo.py OUTDIR
#
# Output (a signed flat repository shaped like NVIDIA's CUDA repository; no NVIDIA software):
#   OUTDIR/debian12/<x86_64|sbsa>/*.deb, Packages, Packages.gz, Release, InRelease, Release.gpg
#   OUTDIR/lab-nvidia-sim.gpg     public signing key, binary keyring (for signed-by=)
#   OUTDIR/.gnupg/                the lab signing key (kept, so the key is stable across rebuilds)
#   OUTDIR/.build-stamp           hash of the inputs: an unchanged rebuild prints "cached"
# Nodes use:
#   deb [signed-by=/usr/share/keyrings/lab-nvidia-sim.gpg] http://lab-nvidia-repo/debian12/x86_64/ /
# The packages are listed in catalog.py. Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg.
"""Build the simulated, signed NVIDIA apt repository for the onprem_ai lab."""

import gzip
import os
import re
import shutil
import sys
import tempfile

import catalog  # pylint: disable=import-error  # sibling module (tests/lab/nvidia_sim/catalog.py)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.dirname(HERE))
# the lab's shared repository builder pieces (tests/lab/debrepo.py)
from debrepo import (BuildError, control_text as deb_control, ensure_key, export_key,  # noqa: E402  pylint: disable=import-error,wrong-import-position
                     inputs_hash as hash_inputs, run, write_deb, write_signed_release)

KEY_UID = "onprem_ai lab simulated NVIDIA repository <lab-nvidia-sim@onprem-ai.invalid>"
KEYRING_NAME = "lab-nvidia-sim.gpg"
STAMP_NAME = ".build-stamp"
SOURCES = ("catalog.py", "build_repo.py", "nvidia_smi.py", "nv_fabricmanager.py", "nvidia_ctk.py", "nvcc_sim.py")


def host_arch():
    """dpkg --print-architecture."""
    return run(["dpkg", "--print-architecture"]).strip()


def inputs_hash(arch):
    """Hash of every input of the build: the nvidia_sim sources, the shared builder, the architecture, the kernel."""
    return hash_inputs(arch.encode() + b"\0" + os.uname().release.encode(), HERE, lambda name: not name.endswith(".pyc"))


def fill(template, variables):
    """Replace the @NAME@ placeholders of a template."""
    def repl(match):
        if match.group(1) not in variables:
            raise BuildError("unknown placeholder %s in the catalog" % match.group(0))
        return variables[match.group(1)]
    return re.sub(r"@([A-Z_]+)@", repl, template)


def bake_script(source, constants):
    """Text of a tool as installed: python3 shebang + source with module constants replaced."""
    with open(os.path.join(HERE, source), encoding="utf-8") as handle:
        text = handle.read()
    for name, value in constants.items():
        text, count = re.subn(r'^%s = "[^"\n]*"$' % re.escape(name), lambda m, n=name, v=value: '%s = "%s"' % (n, v), text, flags=re.M)
        if count != 1:
            raise BuildError("%s: constant %s found %d times (expected once)" % (source, name, count))
    return "#!/usr/bin/python3\n" + text


def expand_catalog(arch):
    """Every package as a dict: name, version, depends, virtual, files, scripts, summary."""
    packages = []
    for product in catalog.PRODUCTS:
        for release in product["versions"]:
            variables = {"VERSION": release["version"], "MULTIARCH": catalog.MULTIARCH[arch], "TARGET": catalog.TARGETS[arch],
                         "DKMS_MODULES": catalog.DKMS_MODULES, "KERNEL": os.uname().release}
            variables.update(release["vars"])
            for template in product["packages"]:
                files = []
                for kind, path, data in template.get("files", []):
                    if kind == "tool":
                        source, constants = data
                        data = bake_script(source, {k: fill(v, variables) for k, v in constants.items()})
                    else:
                        data = fill(data, variables)
                    files.append((kind, fill(path, variables), data))
                packages.append({
                    "name": fill(template["name"], variables),
                    "version": "%s-%s" % (release["version"], catalog.REVISION),
                    "depends": [fill(d, variables) for d in template.get("depends", [])],
                    "virtual": template.get("virtual"),
                    "summary": fill(template["summary"], variables),
                    "files": files,
                    "scripts": {k: fill(v, variables) for k, v in template.get("scripts", {}).items()},
                })
    return packages


def control_text(package, arch):
    """DEBIAN/control of a package."""
    virtual = package["virtual"]
    return deb_control([("Package", package["name"]), ("Version", package["version"]), ("Architecture", arch),
                        ("Maintainer", catalog.MAINTAINER), ("Section", "multiverse/devel"), ("Priority", "optional"),
                        ("Depends", ", ".join(package["depends"])), ("Provides", virtual), ("Conflicts", virtual),
                        ("Replaces", virtual)],
                       ["%s - %s" % (package["summary"], catalog.SIMULATED),
                        "%s: this package contains no NVIDIA software; it only imitates the" % catalog.SIMULATED,
                        "package of the same name in NVIDIA's CUDA repository for tests."])


def build_deb(package, arch, workdir, repodir):
    """dpkg-deb --build --root-owner-group one package into repodir."""
    modes = {"link": None, "tool": 0o755}
    return write_deb(os.path.join(workdir, package["name"] + "_" + package["version"]),
                     os.path.join(repodir, "%s_%s_%s.deb" % (package["name"], package["version"], arch)),
                     control_text(package, arch),
                     [(path, modes.get(kind, 0o644), data) for kind, path, data in package["files"]], package["scripts"])


def sign_repo(repodir, outdir):
    """Release, InRelease, Release.gpg and the binary public keyring."""
    env, fpr = ensure_key(outdir, KEY_UID)
    write_signed_release(repodir, [("Origin", "NVIDIA"), ("Label", "NVIDIA CUDA"), ("Architectures", host_arch()),
                                   ("Description", "%s (flat repository)" % catalog.SIMULATED)], env, fpr)
    export_key(os.path.join(outdir, KEYRING_NAME), env, fpr)


def build(outdir):
    """Build (or confirm cached) the repository in outdir; return 'cached' or 'built'."""
    for tool in ("dpkg-deb", "apt-ftparchive", "gpg"):
        if shutil.which(tool) is None:
            raise BuildError("%s is not installed (needs dpkg, apt-utils and gnupg)" % tool)
    outdir = os.path.abspath(outdir)
    arch = host_arch()
    if arch not in catalog.ARCH_DIRS:
        raise BuildError("unsupported architecture %s (supported: %s)" % (arch, ", ".join(catalog.ARCH_DIRS)))
    key = inputs_hash(arch)
    stamp = os.path.join(outdir, STAMP_NAME)
    repodir = os.path.join(outdir, "debian12", catalog.ARCH_DIRS[arch])
    outputs = [os.path.join(repodir, n) for n in ("Packages", "Packages.gz", "Release", "InRelease", "Release.gpg")]
    outputs.append(os.path.join(outdir, KEYRING_NAME))
    try:
        with open(stamp, encoding="utf-8") as handle:
            cached = handle.read().strip() == key
    except FileNotFoundError:
        cached = False
    if cached and all(os.path.isfile(p) for p in outputs):
        return "cached"
    os.makedirs(outdir, exist_ok=True)
    if os.path.exists(stamp):
        os.unlink(stamp)
    shutil.rmtree(os.path.join(outdir, "debian12"), ignore_errors=True)
    os.makedirs(repodir)
    with tempfile.TemporaryDirectory(prefix="nvidia-sim-build.") as workdir:
        for package in expand_catalog(arch):
            build_deb(package, arch, workdir, repodir)
    packages = run(["apt-ftparchive", "packages", "."], cwd=repodir)
    with open(os.path.join(repodir, "Packages"), "w", encoding="utf-8") as handle:
        handle.write(packages)
    with gzip.GzipFile(os.path.join(repodir, "Packages.gz"), "wb", mtime=0) as handle:
        handle.write(packages.encode("utf-8"))
    sign_repo(repodir, outdir)
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return "built"


def main(argv=None):
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: build_repo.py OUTDIR\n")
        return 2
    try:
        result = build(argv[0])
    except BuildError as err:
        sys.stderr.write("build_repo.py: error: %s\n" % err)
        return 1
    if result == "cached":
        print("cached")
    else:
        print("built simulated NVIDIA repository in %s" % os.path.abspath(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
