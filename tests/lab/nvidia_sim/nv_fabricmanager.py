# -*- coding: utf-8 -*-
# SIMULATED nv-fabricmanager for the onprem_ai lab. This is NOT NVIDIA Fabric Manager.
#
# Installed as /usr/bin/nv-fabricmanager by the simulated nvidia-fabricmanager-<branch> packages
# (build_repo.py bakes VERSION). `--version` prints the real banner. Run as a service it checks,
# like the real one, that the loaded driver (/sys/module/nvidia/version, re-rooted under
# $NVIDIA_SIM_ROOT when set) is exactly its own version: otherwise it exits 1 with an error;
# when it matches it stays in the foreground until SIGTERM (systemd Type=simple).
"""Simulated NVIDIA Fabric Manager (onprem_ai lab)."""

import os
import signal
import sys
import time

VERSION = "570.133.20"


def loaded_driver():
    """Version of the loaded nvidia module, or None."""
    root = os.environ.get("NVIDIA_SIM_ROOT", "/") or "/"
    try:
        with open(os.path.join(root, "sys/module/nvidia/version"), encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def main(argv=None):
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-v", "--version") for a in argv):
        print("Fabric Manager version is : %s" % VERSION)
        return 0
    if any(a in ("-h", "--help") for a in argv):
        print("NVIDIA Fabric Manager (SIMULATED for the onprem_ai lab)\n\nUsage: nv-fabricmanager [-c CONFIG_FILE] [-v|--version]")
        return 0
    print("Fabric Manager version is : %s" % VERSION, flush=True)
    driver = loaded_driver()
    if driver is None:
        sys.stderr.write("request to query NVIDIA GPU driver information failed with error:NVIDIA GPU driver is not loaded\n"
                         "fabric manager failed to initialize. Please refer to the fabric manager log file for details\n")
        return 1
    if driver != VERSION:
        sys.stderr.write("fabric manager NVIDIA GPU driver interface version %s don't match with driver version %s. "
                         "Please update with matching NVIDIA driver package.\n" % (VERSION, driver))
        return 1
    print("Successfully configured all the available NVSwitches to route GPU NVLink traffic. NVLink Peer-to-Peer support "
          "will be enabled once the GPUs are successfully registered with the NVLink fabric.", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
