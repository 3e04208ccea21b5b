# -*- coding: utf-8 -*-
# SIMULATED CUDA compute process for the onprem_ai lab (it does no GPU work at all).
#
#   python3 gpu_proc.py --gpus 0,1 --memory-mib 20480 [--name NAME] [--type C|G|C+G]
#
# registers itself in /run/nvidia-sim/procs/<pid>.json (re-rooted under $NVIDIA_SIM_ROOT when
# set), sleeps until SIGTERM/SIGINT, then unregisters. The simulated nvidia-smi lists it as a
# compute process and the simulated modprobe refuses to unload nvidia/nvidia_uvm while it lives.
# Registry file format (one per process; stale files, whose pid is gone, are ignored/removed):
#   {"pid": 1234, "name": "/usr/bin/python3", "gpus": [0, 1], "used_memory_mib": 20480, "type": "C"}
# type: C (compute, the default), G (graphics only: Xorg, desktop shells; not a compute app) or C+G.
# used_memory_mib is per GPU listed. register()/unregister() can be reused by other lab programs.
"""Simulated GPU compute process (onprem_ai lab)."""

import argparse
import json
import os
import signal
import sys
import time

PROCS_DIR = "/run/nvidia-sim/procs"


def procs_dir():
    """The registry directory, re-rooted under $NVIDIA_SIM_ROOT."""
    root = os.environ.get("NVIDIA_SIM_ROOT", "/") or "/"
    return os.path.join(root, PROCS_DIR.lstrip("/"))


def register(gpus, used_memory_mib, name=None, pid=None, proc_type="C"):
    """Register pid (default: this process) as a GPU process; return the file path."""
    pid = os.getpid() if pid is None else int(pid)
    record = {"pid": pid, "name": sys.executable or "python3" if name is None else name,
              "gpus": [int(g) for g in gpus], "used_memory_mib": int(used_memory_mib), "type": proc_type}
    directory = procs_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "%d.json" % pid)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)
    return path


def unregister(pid=None):
    """Remove the registry file of pid (default: this process), if any."""
    pid = os.getpid() if pid is None else int(pid)
    try:
        os.unlink(os.path.join(procs_dir(), "%d.json" % pid))
    except FileNotFoundError:
        pass


def main(argv=None):
    """Entry point: register, wait for SIGTERM/SIGINT, unregister."""
    parser = argparse.ArgumentParser(description="Simulated CUDA compute process (SIMULATED for the onprem_ai lab)")
    parser.add_argument("--gpus", required=True, help="comma separated GPU indexes, e.g. 0,1")
    parser.add_argument("--memory-mib", type=int, required=True, help="GPU memory used on each listed GPU (MiB)")
    parser.add_argument("--name", default=None, help="process name shown by nvidia-smi (default: the python interpreter; may be "
                        "empty, or contain commas and spaces as real command lines do)")
    parser.add_argument("--type", default="C", choices=["C", "G", "C+G"], help="process type nvidia-smi shows (default C)")
    args = parser.parse_args(argv)
    try:
        gpus = [int(g) for g in args.gpus.split(",") if g.strip()]
    except ValueError:
        parser.error("--gpus must be comma separated integers")

    def stop(signum, frame):  # pylint: disable=unused-argument
        unregister()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    path = register(gpus, args.memory_mib, args.name, proc_type=args.type)
    print("registered simulated GPU process %d in %s" % (os.getpid(), path), flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        unregister()


if __name__ == "__main__":
    main()
