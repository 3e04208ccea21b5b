# -*- coding: utf-8 -*-
# SIMULATED modprobe front end for the onprem_ai lab. This is NOT kmod.
#
# The lab installs this at /usr/sbin/modprobe after
#   dpkg-divert --local --rename --add /usr/sbin/modprobe
# (the real kmod modprobe then lives at /usr/sbin/modprobe.distrib). The NVIDIA modules
# (nvidia, nvidia_uvm, nvidia_modeset, nvidia_drm, nvidia_peermem; dashes = underscores) are
# simulated; every other call is exec'd unchanged to the real modprobe.
#
# Loading reads the module "built" by the simulated nvidia-dkms package,
# /lib/modules/<uname -r>/updates/dkms/<module>.ko, mounts a tmpfs on /sys/module (once) and
# writes /sys/module/<name>/{version,refcnt,initstate} there, so that the real path
# /sys/module/nvidia/version shows the loaded driver and vanishes on reboot like a real module.
# Unloading fails with "is in use" while a simulated GPU compute process
# (/run/nvidia-sim/procs/<pid>.json, see gpu_proc.py) or a dependent module is live.
#
# Environment: NVIDIA_SIM_ROOT re-roots every path except /proc (unit tests; no mount is done
# then); NVIDIA_SIM_MODPROBE_FALLBACK overrides the real modprobe path.
"""Simulated modprobe for the NVIDIA kernel modules (onprem_ai lab)."""

import json
import os
import subprocess
import sys

FALLBACK = "/usr/sbin/modprobe.distrib"
MOUNT_SOURCE = "nvidia-sim-sysfs"
# module -> modules it needs (loaded first, removed after it when unused)
DEPENDS = {"nvidia": [], "nvidia_uvm": ["nvidia"], "nvidia_modeset": ["nvidia"],
           "nvidia_drm": ["nvidia_modeset", "nvidia"], "nvidia_peermem": ["nvidia"]}
# modules held open by a running CUDA process (/dev/nvidia0, /dev/nvidia-uvm)
HELD_BY_PROCS = ("nvidia", "nvidia_uvm")


class ModprobeError(Exception):
    """A modprobe failure (message for stderr, exit 1)."""


def sim_root():
    """The simulation root: $NVIDIA_SIM_ROOT or /."""
    return os.environ.get("NVIDIA_SIM_ROOT", "/") or "/"


def sim_path(path):
    """Re-root an absolute path under the simulation root."""
    return os.path.join(sim_root(), path.lstrip("/"))


def kernel_release():
    """uname -r."""
    return os.uname().release


def module_file(name):
    """Where the simulated DKMS build puts a module for the running kernel."""
    return sim_path("/lib/modules/%s/updates/dkms/%s.ko" % (kernel_release(), name.replace("_", "-")))


def module_dir(name):
    """/sys/module/<name> (re-rooted)."""
    return sim_path("/sys/module/%s" % name)


def is_loaded(name):
    """True when /sys/module/<name>/version exists."""
    return os.path.isfile(os.path.join(module_dir(name), "version"))


def write(path, text):
    """Write a small file."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def live_procs():
    """Pids of the live simulated GPU compute processes."""
    directory = sim_path("/run/nvidia-sim/procs")
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    pids = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                pid = int(json.load(handle)["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.isdir("/proc/%d" % pid):
            pids.append(pid)
    return pids


def has_gpus():
    """True when the simulated hardware file lists at least one GPU."""
    try:
        with open(sim_path("/etc/nvidia-sim/gpus.json"), encoding="utf-8") as handle:
            return bool(json.load(handle))
    except (OSError, ValueError):
        return False


def ensure_sysfs():
    """Mount the tmpfs that stands in for /sys/module once (only on a real node, root /)."""
    if sim_root() != "/":
        os.makedirs(sim_path("/sys/module"), exist_ok=True)
        return
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "/sys/module" and fields[0] == MOUNT_SOURCE and fields[2] == "tmpfs":
                return
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", MOUNT_SOURCE, "/sys/module"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModprobeError("modprobe: ERROR: could not insert 'nvidia': Operation not permitted (simulation: %s)"
                            % result.stderr.strip())


def refresh_refcnt():
    """refcnt = number of loaded dependent modules (a snapshot, rewritten on every load/unload)."""
    for name in DEPENDS:
        if is_loaded(name):
            count = sum(1 for other, deps in DEPENDS.items() if name in deps and is_loaded(other))
            write(os.path.join(module_dir(name), "refcnt"), "%d\n" % count)


def load(name, verbose):
    """modprobe <name>: load its dependencies, then it."""
    for dep in reversed(DEPENDS[name]):
        load(dep, verbose)
    if is_loaded(name):
        return
    path = module_file(name)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ModprobeError("modprobe: FATAL: Module %s not found in directory %s"
                            % (name, sim_path("/lib/modules/%s" % kernel_release()).rstrip("/"))) from exc
    version = ""
    for word in text.split():
        if word.startswith("version="):
            version = word.split("=", 1)[1]
    if not version:
        raise ModprobeError("modprobe: ERROR: could not insert '%s': Exec format error" % name)
    if not has_gpus():
        raise ModprobeError("modprobe: ERROR: could not insert '%s': No such device" % name)
    ensure_sysfs()
    directory = module_dir(name)
    os.makedirs(directory, exist_ok=True)
    write(os.path.join(directory, "initstate"), "live\n")
    write(os.path.join(directory, "refcnt"), "0\n")
    write(os.path.join(directory, "version"), version + "\n")
    if verbose:
        print("insmod %s" % path)
    refresh_refcnt()


def in_use(name):
    """True while a dependent module or (for nvidia/nvidia_uvm) a compute process holds it."""
    if any(name in deps and is_loaded(other) for other, deps in DEPENDS.items()):
        return True
    return name in HELD_BY_PROCS and bool(live_procs())


def unload(name, verbose, explicit=True):
    """modprobe -r <name>: remove it, then its unused dependencies (quietly)."""
    if not is_loaded(name):
        return
    if in_use(name):
        if explicit:
            raise ModprobeError("modprobe: FATAL: Module %s is in use." % name)
        return
    directory = module_dir(name)
    for entry in os.listdir(directory):
        os.unlink(os.path.join(directory, entry))
    os.rmdir(directory)
    if verbose:
        print("rmmod %s" % name)
    for dep in DEPENDS[name]:
        unload(dep, verbose, explicit=False)
    refresh_refcnt()


def parse(argv):
    """Split argv into (options, module names, remove, all_names)."""
    options, names = [], []
    remove = all_names = False
    for arg in argv:
        if arg in ("-r", "--remove"):
            remove = True
        elif arg in ("-a", "--all"):
            all_names = True
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and set(arg[1:]) <= set("raqvb"):
            remove = remove or "r" in arg
            all_names = all_names or "a" in arg
            options.append("-" + arg[1:].replace("r", "").replace("a", ""))
        elif arg.startswith("-"):
            options.append(arg)
        else:
            names.append(arg)
    return options, names, remove, all_names


def fallback(argv):
    """exec the real modprobe with argv unchanged (argv[0] "modprobe": kmod dispatches on it)."""
    binary = os.environ.get("NVIDIA_SIM_MODPROBE_FALLBACK", FALLBACK)
    try:
        os.execv(binary, ["modprobe"] + list(argv))
    except OSError as exc:
        sys.stderr.write("modprobe: FATAL: cannot run the real modprobe %s: %s\n" % (binary, exc))
        return 1
    return 0


def main(argv=None):
    """Entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    options, names, remove, all_names = parse(argv)
    canon = [n.replace("-", "_") for n in names]
    if not remove and not all_names:
        canon = canon[:1]  # modprobe MODULE [params...]: the rest are module parameters
    ours = [n for n in canon if n in DEPENDS]
    if not ours or len(ours) != len(canon):
        if ours:
            sys.stderr.write("modprobe: simulated NVIDIA modules cannot be mixed with others in one call (lab limitation)\n")
            return 1
        return fallback(argv)
    quiet = any(o in ("-q", "--quiet") or (o.startswith("-") and not o.startswith("--") and "q" in o) for o in options)
    verbose = any(o in ("-v", "--verbose") or (o.startswith("-") and not o.startswith("--") and "v" in o) for o in options)
    try:
        for name in ours:
            if remove:
                unload(name, verbose)
            else:
                load(name, verbose)
    except ModprobeError as err:
        if not quiet or "in use" in str(err):
            sys.stderr.write(str(err) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
