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
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import catalog  # pylint: disable=import-error  # sibling module (tests/lab/nvidia_sim/catalog.py)

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_UID = "onprem_ai lab simulated NVIDIA repository <lab-nvidia-sim@onprem-ai.invalid>"
KEYRING_NAME = "lab-nvidia-sim.gpg"
STAMP_NAME = ".build-stamp"
SOURCES = ("catalog.py", "build_repo.py", "nvidia_smi.py", "nv_fabricmanager.py", "nvidia_ctk.py", "nvcc_sim.py")


class BuildError(Exception):
    """A build step failed."""


def run(args, cwd=None, env=None, stdout=None):
    """Run a command (argument list); raise BuildError with its output on failure."""
    try:
        result = subprocess.run(args, cwd=cwd, env=env, stdout=stdout if stdout is not None else subprocess.PIPE,
                                stderr=subprocess.PIPE, text=stdout is None, check=False)
    except OSError as exc:
        raise BuildError("cannot run %s: %s" % (args[0], exc)) from exc
    if result.returncode != 0:
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode("utf-8", "replace")
        raise BuildError("%s failed (rc %d): %s" % (" ".join(args), result.returncode, err.strip()))
    return result.stdout


def host_arch():
    """dpkg --print-architecture."""
    return run(["dpkg", "--print-architecture"]).strip()


def inputs_hash(arch):
    """Hash of every input of the build: the nvidia_sim sources and the architecture."""
    digest = hashlib.sha256(arch.encode() + b"\0" + os.uname().release.encode())
    for name in sorted(os.listdir(HERE)):
        path = os.path.join(HERE, name)
        if os.path.isfile(path) and not name.endswith(".pyc"):
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


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
    lines = ["Package: %s" % package["name"], "Version: %s" % package["version"], "Architecture: %s" % arch,
             "Maintainer: %s" % catalog.MAINTAINER, "Section: multiverse/devel", "Priority: optional"]
    if package["depends"]:
        lines.append("Depends: %s" % ", ".join(package["depends"]))
    if package["virtual"]:
        for field in ("Provides", "Conflicts", "Replaces"):
            lines.append("%s: %s" % (field, package["virtual"]))
    lines.append("Description: %s - %s" % (package["summary"], catalog.SIMULATED))
    lines.append(" %s: this package contains no NVIDIA software; it only imitates the" % catalog.SIMULATED)
    lines.append(" package of the same name in NVIDIA's CUDA repository for tests.")
    return "\n".join(lines) + "\n"


def build_deb(package, arch, workdir, repodir):
    """dpkg-deb --build --root-owner-group one package into repodir."""
    root = os.path.join(workdir, package["name"] + "_" + package["version"])
    os.makedirs(os.path.join(root, "DEBIAN"))
    for kind, path, data in package["files"]:
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if kind == "link":
            os.symlink(data, target)
            continue
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.chmod(target, 0o755 if kind == "tool" else 0o644)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
        handle.write(control_text(package, arch))
    for name, text in package["scripts"].items():
        path = os.path.join(root, "DEBIAN", name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o755)
    deb = os.path.join(repodir, "%s_%s_%s.deb" % (package["name"], package["version"], arch))
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb])
    return deb


def ensure_key(outdir):
    """The lab signing key (generated once under OUTDIR/.gnupg); return (env, fingerprint)."""
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


def sign_repo(repodir, outdir):
    """Release, InRelease, Release.gpg and the binary public keyring."""
    env, fpr, base = ensure_key(outdir)
    release = run(["apt-ftparchive",
                   "-o", "APT::FTPArchive::Release::Origin=NVIDIA",
                   "-o", "APT::FTPArchive::Release::Label=NVIDIA CUDA",
                   "-o", "APT::FTPArchive::Release::Architectures=%s" % host_arch(),
                   "-o", "APT::FTPArchive::Release::Description=%s (flat repository)" % catalog.SIMULATED,
                   "release", "."], cwd=repodir)
    with open(os.path.join(repodir, "Release"), "w", encoding="utf-8") as handle:
        handle.write(release)
    run(base + ["--yes", "--local-user", fpr, "--clearsign", "--output", "InRelease", "Release"], cwd=repodir, env=env)
    run(base + ["--yes", "--local-user", fpr, "--armor", "--detach-sign", "--output", "Release.gpg", "Release"], cwd=repodir, env=env)
    with open(os.path.join(outdir, KEYRING_NAME), "wb") as handle:
        handle.write(run(["gpg", "--batch", "--export", fpr], env=env, stdout=subprocess.PIPE))
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False)


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
