# -*- coding: utf-8 -*-
# SIMULATED nvidia-smi for the onprem_ai lab. This is NOT the NVIDIA tool.
#
# Installed as /usr/bin/nvidia-smi by the simulated nvidia-utils-<branch> packages that
# tests/lab/nvidia_sim/build_repo.py builds; the builder bakes DRIVER_VERSION and CUDA_VERSION
# below into the installed copy. It prints what the real tool prints (formats, messages,
# exit codes) for the options the onprem_ai.maintenance collection uses, from simulated state:
#
#   /etc/nvidia-sim/gpus.json          simulated hardware (list of GPU objects)
#   /sys/module/nvidia/version         the loaded kernel module (written by the simulated modprobe)
#   /run/nvidia-sim/procs/<pid>.json   simulated GPU processes (see gpu_proc.py; type C, G or C+G)
#   /etc/nvidia-sim/faults.json        fault injection (broken driver versions, uncorrectable ECC counts)
#   /sys/module/nvidia/nvidia-sim-mig.json  MIG GPU/compute instances; lives in the loaded module's
#                                      directory, so that a module reload or a reboot loses them (as on
#                                      real GPUs) while the MIG mode (gpus.json "mig_mode") persists
#
# Output shapes follow the real tool per node profile (gpus.json keys, see README): XML DTD v12 or
# v13, ECC counters split (570+), unsplit (older) or nested single_bit/double_bit (Pascal/Volta),
# minor numbers that differ from the index, MIG devices, graphics and compute processes.
#
# Every path is re-rooted under $NVIDIA_SIM_ROOT when that is set (unit tests); /proc is not.
"""Simulated nvidia-smi (onprem_ai lab)."""

import hashlib
import json
import os
import sys
import time

DRIVER_VERSION = "570.133.20"
CUDA_VERSION = "12.8"

RC_OK = 0
RC_INVALID_ARG = 2
RC_GPU_LOST = 15  # NVML_ERROR_GPU_IS_LOST
RC_NO_DEVICES = 6
RC_NO_DRIVER = 9
RC_MISMATCH = 18

MSG_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.")
MSG_INVALID = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."
NA = "N/A"

MIG_CAPABLE = ("A100", "A30", "H100", "H200", "H800", "H20", "GH200", "B200")
# PCI device ids the simulated GPUs report (pci.ids); unknown names get none.
PCI_ID_BY_NAME = (("H100 80GB HBM3", "2330"), ("H100 PCIe", "2331"), ("A100-SXM4-80GB", "20b2"), ("A100-SXM4-40GB", "20b0"),
                  ("V100-SXM2-32GB", "1db5"), ("V100-SXM2-16GB", "1db1"), ("Tesla T4", "1eb8"), ("L40", "26b5"), ("M10", "13bd"),
                  ("P100-PCIE-16GB", "15f8"))
# MIG profiles of the 80 GB A100/H100 (id, name, slices, memory MiB, SMs): GPU instance profiles and the full compute
# instance profile id of each size (1c=0, 2c=1, 3c=2, 4c=3, 7c=4).
MIG_PROFILES = {19: ("1g.10gb", 1, 9856, 16), 14: ("2g.20gb", 2, 19968, 32), 9: ("3g.40gb", 4, 40192, 60),
                5: ("4g.40gb", 4, 40192, 64), 0: ("7g.80gb", 8, 80384, 132)}
MIG_CI_PROFILE = {1: 0, 2: 1, 4: 2, 8: 4}
MIG_SLICES = 8

ARCH_BY_NAME = (("GH200", "Hopper"), ("H100", "Hopper"), ("H200", "Hopper"), ("H800", "Hopper"), ("H20", "Hopper"),
                ("B200", "Blackwell"), ("B100", "Blackwell"), ("A100", "Ampere"), ("A800", "Ampere"), ("A30", "Ampere"),
                ("A10", "Ampere"), ("L40", "Ada Lovelace"), ("L4", "Ada Lovelace"), ("V100", "Volta"), ("T4", "Turing"), ("P100", "Pascal"),
                ("M10", "Maxwell"))
COMPUTE_CAP = {"Hopper": "9.0", "Blackwell": "10.0", "Ampere": "8.0", "Ada Lovelace": "8.9", "Volta": "7.0", "Turing": "7.5",
               "Pascal": "6.0", "Maxwell": "5.0"}


class SmiError(Exception):
    """An nvidia-smi failure: message for stdout and exit code."""

    def __init__(self, message, rc):
        super().__init__(message)
        self.message = message
        self.rc = rc


def sim_path(path):
    """Re-root an absolute path under $NVIDIA_SIM_ROOT (default /)."""
    root = os.environ.get("NVIDIA_SIM_ROOT", "/") or "/"
    return os.path.join(root, path.lstrip("/"))


def pid_alive(pid):
    """True while /proc/<pid> exists (the real /proc, never re-rooted)."""
    return os.path.isdir("/proc/%d" % pid)


def read_text(path):
    """Content of a file, stripped, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def loaded_driver_version():
    """Version of the loaded nvidia kernel module, or None."""
    return read_text(sim_path("/sys/module/nvidia/version")) or None


def driver_tuple():
    """(570, 133, 20) of the baked driver version."""
    return tuple(int(p) for p in DRIVER_VERSION.split(".") if p.isdigit())


def load_gpus():
    """The simulated GPUs, with defaults filled in (node profile keys: see README)."""
    text = read_text(sim_path("/etc/nvidia-sim/gpus.json"))
    raw = json.loads(text) if text else []
    faults = read_faults()
    gpus = []
    for index, item in enumerate(raw or []):
        gpu = dict(item)
        gpu["index"] = index
        arch = gpu.get("architecture")
        if not arch:
            arch = next((a for key, a in ARCH_BY_NAME if key in gpu["name"]), NA)
        gpu["architecture"] = arch
        gpu.setdefault("compute_cap", COMPUTE_CAP.get(arch, NA))
        gpu.setdefault("serial", NA)
        gpu.setdefault("vbios_version", NA)
        gpu.setdefault("persistence_mode", "Disabled")
        gpu.setdefault("power_limit_w", 700)
        gpu.setdefault("temperature_c", 34)
        gpu.setdefault("memory_reserved_mib", 0)
        gpu.setdefault("minor_number", index)
        gpu.setdefault("pci_device_id", next((i for key, i in PCI_ID_BY_NAME if key in gpu["name"]), None))
        gpu.setdefault("mig_mode", "Disabled" if any(key in gpu["name"] for key in MIG_CAPABLE) else NA)
        gpu.setdefault("ecc_mode", "Enabled")
        gpu.setdefault("print_architecture", driver_tuple() >= (470,))
        if not gpu.get("ecc_layout"):
            if arch in ("Pascal", "Volta", "Maxwell"):
                gpu["ecc_layout"] = "nested"
            else:
                gpu["ecc_layout"] = "split" if driver_tuple() >= (570,) else "unsplit"
        ecc = {"volatile_correctable": 0, "volatile_uncorrectable": 0, "aggregate_correctable": 0, "aggregate_uncorrectable": 0}
        ecc.update(gpu.get("ecc_errors") or {})
        ecc.update((faults.get("ecc_errors") or {}).get(str(index)) or {})
        gpu["ecc_errors"] = ecc
        gpu["procs"] = []
        gpus.append(gpu)
    return gpus


def document_dtd(gpus):
    """'v12' or 'v13': the node profile's "dtd" (first GPU), else v13 from driver 580 on."""
    dtd = gpus[0].get("dtd") if gpus else None
    return dtd or ("v13" if driver_tuple() >= (580,) else "v12")


def load_procs(gpus):
    """Attach the live simulated compute processes to their GPUs; remove stale registry files."""
    directory = sim_path("/run/nvidia-sim/procs")
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                proc = json.load(handle)
            pid = int(proc["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not pid_alive(pid):
            try:
                os.unlink(path)
            except OSError:
                pass
            continue
        for index in proc.get("gpus", []):
            if 0 <= int(index) < len(gpus):
                gpus[int(index)]["procs"].append({"pid": pid, "name": str(proc.get("name", "python3")),
                                                  "type": str(proc.get("type", "C")),
                                                  "used_memory_mib": int(proc.get("used_memory_mib", 0))})
    for gpu in gpus:
        gpu["procs"].sort(key=lambda p: p["pid"])
        used = sum(p["used_memory_mib"] for p in gpu["procs"])
        gpu["memory_used_mib"] = used
        gpu["memory_free_mib"] = max(int(gpu["memory_total_mib"]) - int(gpu["memory_reserved_mib"]) - used, 0)
        if "power_draw_w" not in gpu:
            gpu["power_draw_w"] = 69.5 + (250.0 if gpu["procs"] else 0.0)


def init_nvml():
    """What NVML initialisation does: check the module and the version, then find the GPUs."""
    loaded = loaded_driver_version()
    if loaded is None:
        raise SmiError(MSG_NO_DRIVER, RC_NO_DRIVER)
    if loaded != DRIVER_VERSION:
        nvml = ".".join(DRIVER_VERSION.split(".")[:2])
        raise SmiError("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: %s" % nvml, RC_MISMATCH)
    gpus = load_gpus()
    if not gpus:
        raise SmiError("No devices were found", RC_NO_DEVICES)
    if DRIVER_VERSION in broken_driver_versions():
        raise SmiError("Unable to determine the device handle for GPU %s: Unknown Error" % gpus[0]["pci_bus_id"], RC_GPU_LOST)
    load_procs(gpus)
    mig = load_mig()
    for gpu in gpus:
        gpu["mig"] = mig.get(str(gpu["index"]), []) if gpu["mig_mode"] == "Enabled" else []
    return gpus


def read_faults():
    """Lab fault injection (/etc/nvidia-sim/faults.json), {} when none or unreadable."""
    text = read_text(sim_path("/etc/nvidia-sim/faults.json"))
    if not text:
        return {}
    try:
        faults = json.loads(text)
    except ValueError:
        return {}
    return faults if isinstance(faults, dict) else {}


def broken_driver_versions():
    """Lab fault injection: driver versions that fail on this node's GPUs (/etc/nvidia-sim/faults.json)."""
    try:
        return list(read_faults().get("broken_driver_versions", []))
    except TypeError:
        return []


# ---------------------------------------------------------------- MIG (instances live while the module is loaded)
def mig_state_path():
    """Where the MIG instances are kept: in the loaded module's directory."""
    return sim_path("/sys/module/nvidia/nvidia-sim-mig.json")


def load_mig():
    """{gpu index (str): [GPU instance {"gi_id", "profile_id", "start", "compute": [{"ci_id", "profile_id"}]}]}."""
    text = read_text(mig_state_path())
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def save_mig(state):
    """Write the MIG instances atomically."""
    path = mig_state_path()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    os.replace(tmp, path)


def set_mig_mode(gpus, ids, value):
    """-mig 0|1: change the persistent MIG mode in gpus.json (no GPU reset needed in the simulation)."""
    mode = {"1": "Enabled", "0": "Disabled", "ENABLED": "Enabled", "DISABLED": "Disabled"}.get(str(value).upper())
    if mode is None:
        raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    path = sim_path("/etc/nvidia-sim/gpus.json")
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    lines = []
    for gpu in select_gpus(gpus, ids):
        if gpu["mig_mode"] == NA:
            lines.append("Unable to enable MIG Mode for GPU %s: Not Supported" % gpu["pci_bus_id"])
            continue
        if mode == "Disabled" and load_mig().get(str(gpu["index"])):
            raise SmiError("Unable to disable MIG Mode for GPU %s: In use by another client" % gpu["pci_bus_id"], 15)
        raw[gpu["index"]]["mig_mode"] = mode
        lines.append("%s MIG mode for GPU %s" % (mode, gpu["pci_bus_id"]))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(raw, handle)
    os.replace(tmp, path)
    lines.append("All done.")
    return lines


def mig_gpus(gpus, ids):
    """The selected GPUs that have MIG enabled (error when none)."""
    chosen = [g for g in select_gpus(gpus, ids) if g["mig_mode"] == "Enabled"]
    if not chosen:
        raise SmiError("No MIG-enabled devices found.", RC_NO_DEVICES)
    return chosen


def mig_table(title, header, rows):
    """A box table as `nvidia-smi mig -lgi/-lci` prints it."""
    width = max([len(h) for h in header] + [len(r) for r in rows] + [len(title)]) + 2
    border = "+" + "-" * width + "+"
    lines = [border, "| " + title.ljust(width - 1) + "|"]
    lines += ["| " + h.ljust(width - 1) + "|" for h in header]
    lines.append("|" + "=" * width + "|")
    for row in rows:
        lines.append("| " + row.ljust(width - 1) + "|")
        lines.append(border)
    return lines


def mig_command(argv, gpus):
    """nvidia-smi mig [-i N] -lgi | -lci | -cgi P[:S][,...] [-C] | -gi G -cci P[,...] | -dci [-gi G] | -dgi [-gi G]."""
    args = list(argv)
    ids, gi_filter, action, value, default_ci = None, None, None, None, False
    while args:
        arg = args.pop(0)
        if arg in ("-i", "--id") and args:
            ids = args.pop(0)
        elif arg in ("-gi", "--gpu-instance-id") and args:
            gi_filter = [int(v) for v in args.pop(0).split(",")]
        elif arg in ("-lgi", "-lci", "-dci", "-dgi"):
            action = arg
        elif arg in ("-cgi", "-cci") and args:
            action, value = arg, args.pop(0)
        elif arg in ("-C", "--default-compute-instance"):
            default_ci = True
        else:
            raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    if action is None:
        raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    state = load_mig()
    chosen = mig_gpus(gpus, ids)
    lines = []
    if action == "-lgi":
        rows = []
        for gpu in chosen:
            for gi in sorted(state.get(str(gpu["index"]), []), key=lambda g: g["gi_id"]):
                name, size = MIG_PROFILES[gi["profile_id"]][:2]
                rows.append("%3d  MIG %-12s %4d %8d %10s  " % (gpu["index"], name, gi["profile_id"], gi["gi_id"], "%d:%d" % (gi["start"], size)))
        if not rows:
            raise SmiError("No GPU instances found: Not Found", RC_NO_DEVICES)
        return mig_table("GPU instances:", ["GPU   Name             Profile  Instance   Placement ",
                                            "                         ID       ID       Start:Size"], rows)
    if action == "-lci":
        rows = []
        for gpu in chosen:
            for gi in sorted(state.get(str(gpu["index"]), []), key=lambda g: g["gi_id"]):
                if gi_filter and gi["gi_id"] not in gi_filter:
                    continue
                name, size = MIG_PROFILES[gi["profile_id"]][:2]
                for ci in sorted(gi["compute"], key=lambda c: c["ci_id"]):
                    values = (gpu["index"], gi["gi_id"], name, ci["profile_id"], ci["ci_id"], "0:%d" % size)
                    rows.append("%3d %6d       MIG %-12s %4d %9d %10s  " % values)
        if not rows:
            raise SmiError("No compute instances found: Not Found", RC_NO_DEVICES)
        return mig_table("Compute instances:", ["GPU     GPU       Name             Profile   Instance   Placement ",
                                                "      Instance                       ID        ID       Start:Size",
                                                "        ID                                                       "], rows)
    for gpu in chosen:
        instances = state.setdefault(str(gpu["index"]), [])
        if action == "-cgi":
            for spec in value.split(","):
                profile, has_start, start = spec.partition(":")
                profile = int(profile)
                if profile not in MIG_PROFILES:
                    raise SmiError("Unable to create a GPU instance on GPU %d using profile %d: Invalid Argument" % (gpu["index"], profile), RC_INVALID_ARG)
                size = MIG_PROFILES[profile][1]
                used = set(s for g in instances for s in range(g["start"], g["start"] + MIG_PROFILES[g["profile_id"]][1]))
                starts = [int(start)] if has_start else list(range(0, MIG_SLICES, size))
                start = next((s for s in starts if s % size == 0 and s + size <= MIG_SLICES and not used & set(range(s, s + size))), None)
                if start is None:
                    raise SmiError("Unable to create a GPU instance on GPU %d using profile %d: Insufficient Resources" % (gpu["index"], profile), 2)
                gi_id = max([g["gi_id"] for g in instances] + [0]) + 1
                instances.append({"gi_id": gi_id, "profile_id": profile, "start": start, "compute": []})
                lines.append("Successfully created GPU instance ID %2d on GPU %d using profile MIG %s (ID %2d)"
                             % (gi_id, gpu["index"], MIG_PROFILES[profile][0], profile))
                if default_ci:
                    instances[-1]["compute"].append({"ci_id": 0, "profile_id": MIG_CI_PROFILE[size]})
                    lines.append("Successfully created compute instance ID  0 on GPU %d GPU instance ID %2d using profile MIG %s (ID %2d)"
                                 % (gpu["index"], gi_id, MIG_PROFILES[profile][0], MIG_CI_PROFILE[size]))
        elif action == "-cci":
            for gi in instances:
                if gi_filter and gi["gi_id"] not in gi_filter:
                    continue
                for profile in value.split(","):
                    ci_id = max([c["ci_id"] for c in gi["compute"]] + [-1]) + 1
                    gi["compute"].append({"ci_id": ci_id, "profile_id": int(profile)})
                    lines.append("Successfully created compute instance ID %2d on GPU %d GPU instance ID %2d using profile MIG %s (ID %2d)"
                                 % (ci_id, gpu["index"], gi["gi_id"], MIG_PROFILES[gi["profile_id"]][0], int(profile)))
        elif action == "-dci":
            for gi in instances:
                if gi_filter and gi["gi_id"] not in gi_filter:
                    continue
                for ci in gi["compute"]:
                    lines.append("Successfully destroyed compute instance ID %2d from GPU %d GPU instance ID %2d"
                                 % (ci["ci_id"], gpu["index"], gi["gi_id"]))
                gi["compute"] = []
        elif action == "-dgi":
            keep = []
            for gi in instances:
                if gi_filter and gi["gi_id"] not in gi_filter:
                    keep.append(gi)
                elif gi["compute"]:
                    raise SmiError("Unable to destroy GPU instance ID %2d from GPU %d: In use by another client" % (gi["gi_id"], gpu["index"]), 15)
                else:
                    lines.append("Successfully destroyed GPU instance ID %2d from GPU %d" % (gi["gi_id"], gpu["index"]))
            state[str(gpu["index"])] = keep
    save_mig(state)
    return lines


def select_gpus(gpus, ids):
    """Apply -i: indexes, UUIDs or PCI bus ids, comma separated."""
    if ids is None:
        return gpus
    chosen = []
    for ident in ids.split(","):
        ident = ident.strip()
        match = [g for g in gpus if ident in (str(g["index"]), g["uuid"], g["pci_bus_id"])]
        if not match:
            raise SmiError("No devices were found", RC_NO_DEVICES)
        chosen.extend(m for m in match if m not in chosen)
    return chosen


def mib(value):
    """Format a MiB value as nvidia-smi does."""
    return "%d MiB" % int(value)


def watts(value):
    """Format a power value as nvidia-smi does."""
    return "%.2f W" % float(value)


def na(value, csv=False):
    """N/A as the XML ([N/A] as the CSV) prints it."""
    if value is None or value == NA:
        return "[N/A]" if csv else NA
    return value


# --query-gpu fields: name -> (csv header, unit, getter). Units are dropped by nounits.
GPU_FIELDS = {
    "timestamp": ("timestamp", None, lambda g: time.strftime("%Y/%m/%d %H:%M:%S.000")),
    "driver_version": ("driver_version", None, lambda g: DRIVER_VERSION),
    "count": ("count", None, lambda g: str(g["count"])),
    "index": ("index", None, lambda g: str(g["index"])),
    "name": ("name", None, lambda g: g["name"]),
    "serial": ("serial", None, lambda g: g["serial"]),
    "uuid": ("uuid", None, lambda g: g["uuid"]),
    "pci.bus_id": ("pci.bus_id", None, lambda g: g["pci_bus_id"]),
    "vbios_version": ("vbios_version", None, lambda g: g["vbios_version"]),
    "persistence_mode": ("persistence_mode", None, lambda g: g["persistence_mode"]),
    "compute_cap": ("compute_cap", None, lambda g: g["compute_cap"]),
    "pstate": ("pstate", None, lambda g: "P0"),
    "memory.total": ("memory.total [MiB]", "MiB", lambda g: g["memory_total_mib"]),
    "memory.reserved": ("memory.reserved [MiB]", "MiB", lambda g: g["memory_reserved_mib"]),
    "memory.used": ("memory.used [MiB]", "MiB", lambda g: g["memory_used_mib"]),
    "memory.free": ("memory.free [MiB]", "MiB", lambda g: g["memory_free_mib"]),
    "utilization.gpu": ("utilization.gpu [%]", "%", lambda g: 100 if g["procs"] else 0),
    "temperature.gpu": ("temperature.gpu", None, lambda g: str(g["temperature_c"])),
    "power.draw": ("power.draw [W]", "W", lambda g: g["power_draw_w"]),
    "power.limit": ("power.limit [W]", "W", lambda g: g["power_limit_w"]),
    "ecc.mode.current": ("ecc.mode.current", None, lambda g: "Enabled"),
    "ecc.errors.corrected.volatile.total": ("ecc.errors.corrected.volatile.total", None,
                                            lambda g: str(g["ecc_errors"]["volatile_correctable"])),
    "ecc.errors.uncorrected.volatile.total": ("ecc.errors.uncorrected.volatile.total", None,
                                              lambda g: str(g["ecc_errors"]["volatile_uncorrectable"])),
    "ecc.errors.corrected.aggregate.total": ("ecc.errors.corrected.aggregate.total", None,
                                             lambda g: str(g["ecc_errors"]["aggregate_correctable"])),
    "ecc.errors.uncorrected.aggregate.total": ("ecc.errors.uncorrected.aggregate.total", None,
                                               lambda g: str(g["ecc_errors"]["aggregate_uncorrectable"])),
    "mig.mode.current": ("mig.mode.current", None, lambda g: na(g["mig_mode"], csv=True)),
    "mig.mode.pending": ("mig.mode.pending", None, lambda g: na(g["mig_mode"], csv=True)),
}
GPU_ALIASES = {"gpu_name": "name", "gpu_serial": "serial", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id",
               "vbios": "vbios_version", "persistence-mode": "persistence_mode", "ecc.mode": "ecc.mode.current"}

# --query-compute-apps fields: name -> (csv header, unit, getter(gpu, proc))
APP_FIELDS = {
    "timestamp": ("timestamp", None, lambda g, p: time.strftime("%Y/%m/%d %H:%M:%S.000")),
    "gpu_name": ("gpu_name", None, lambda g, p: g["name"]),
    "gpu_bus_id": ("gpu_bus_id", None, lambda g, p: g["pci_bus_id"]),
    "gpu_serial": ("gpu_serial", None, lambda g, p: g["serial"]),
    "gpu_uuid": ("gpu_uuid", None, lambda g, p: g["uuid"]),
    "pid": ("pid", None, lambda g, p: str(p["pid"])),
    "process_name": ("process_name", None, lambda g, p: p["name"]),
    "used_memory": ("used_gpu_memory [MiB]", "MiB", lambda g, p: p["used_memory_mib"]),
}
APP_ALIASES = {"name": "process_name", "used_gpu_memory": "used_memory"}


def format_value(value, unit, nounits):
    """A CSV cell: with or without its unit."""
    if value is None or value == NA:
        return "[N/A]"
    if unit == "W":
        text = "%.2f" % float(value)
    else:
        text = str(value)
    if unit and not nounits:
        text = "%s %s" % (text, unit)
    return text


def resolve_fields(spec, known, aliases):
    """Field list of a --query-*= option, checked against the known fields."""
    fields = []
    for field in spec.split(","):
        field = field.strip()
        name = aliases.get(field, field)
        if name not in known:
            raise SmiError('Field "%s" is not a valid field to query.\n' % field, RC_INVALID_ARG)
        fields.append(known[name])
    return fields


def parse_format(spec):
    """--format=csv[,noheader][,nounits] -> (noheader, nounits)."""
    if spec is None:
        raise SmiError("Missing --format option. Please run 'nvidia-smi --help-query-gpu' for help.", RC_INVALID_ARG)
    words = [w.strip() for w in spec.split(",") if w.strip()]
    if "csv" not in words or any(w not in ("csv", "noheader", "nounits") for w in words):
        raise SmiError('"%s" is not a valid format. Please run \'nvidia-smi -h\' for help.' % spec, RC_INVALID_ARG)
    return "noheader" in words, "nounits" in words


def query_gpu(opts, gpus):
    """--query-gpu output lines."""
    fields = resolve_fields(opts["query_gpu"], GPU_FIELDS, GPU_ALIASES)
    noheader, nounits = parse_format(opts["format"])
    lines = [] if noheader else [", ".join(f[0] for f in fields)]
    chosen = select_gpus(gpus, opts["ids"])
    for gpu in chosen:
        gpu["count"] = len(gpus)
        lines.append(", ".join(format_value(f[2](gpu), f[1], nounits) for f in fields))
    return lines


def query_apps(opts, gpus):
    """--query-compute-apps output lines."""
    fields = resolve_fields(opts["query_apps"], APP_FIELDS, APP_ALIASES)
    noheader, nounits = parse_format(opts["format"])
    lines = [] if noheader else [", ".join(f[0] for f in fields)]
    for gpu in select_gpus(gpus, opts["ids"]):
        for proc in gpu["procs"]:
            if proc["type"] == "G":  # graphics-only processes are not compute apps
                continue
            lines.append(", ".join(format_value(f[2](gpu, proc), f[1], nounits) for f in fields))
    return lines


def mig_uuid(gpu, gi, ci):
    """A stable MIG device UUID for a GPU/compute instance."""
    digest = hashlib.md5(("%s/%d/%d" % (gpu["uuid"], gi["gi_id"], ci["ci_id"])).encode()).hexdigest()
    return "MIG-%s-%s-%s-%s-%s" % (digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])


def list_gpus(opts, gpus):
    """-L output lines (MIG devices indented below their GPU)."""
    lines = []
    for gpu in select_gpus(gpus, opts["ids"]):
        lines.append("GPU %d: %s (UUID: %s)" % (gpu["index"], gpu["name"], gpu["uuid"]))
        number = 0
        for gi in sorted(gpu["mig"], key=lambda g: g["gi_id"]):
            for ci in sorted(gi["compute"], key=lambda c: c["ci_id"]):
                lines.append("  MIG %-11s Device %2d: (UUID: %s)" % (MIG_PROFILES[gi["profile_id"]][0], number, mig_uuid(gpu, gi, ci)))
                number += 1
    return lines


def ecc_tree(gpu, scope, dtd):
    """The <volatile> or <aggregate> children in the GPU's ECC layout; N/A everywhere when ECC is off."""
    ecc = gpu["ecc_errors"]
    enabled = gpu["ecc_mode"] == "Enabled"
    corr = str(ecc["%s_correctable" % scope]) if enabled else NA
    unc = str(ecc["%s_uncorrectable" % scope]) if enabled else NA
    zero = "0" if enabled else NA
    if gpu["ecc_layout"] == "nested":
        parts = ("device_memory", "register_file", "l1_cache", "l2_cache", "texture_memory", "texture_shm", "cbu")
        return [("single_bit", [(p, corr if p == "device_memory" else zero) for p in parts] + [("total", corr)]),
                ("double_bit", [(p, unc if p == "device_memory" else zero) for p in parts] + [("total", unc)])]
    if gpu["ecc_layout"] == "split":
        items = [("sram_correctable", zero), ("sram_uncorrectable_parity", zero), ("sram_uncorrectable_secded", zero),
                 ("dram_correctable", corr), ("dram_uncorrectable", unc)]
    else:
        items = [("sram_correctable", zero), ("sram_uncorrectable", zero), ("dram_correctable", corr), ("dram_uncorrectable", unc)]
    if scope == "aggregate" and dtd == "v13":
        items.append(("sram_threshold_exceeded", "No" if enabled else NA))
    return items


def mig_devices_tree(gpu):
    """<mig_devices>: one <mig_device> per compute instance, or None."""
    devices = []
    number = 0
    for gi in sorted(gpu["mig"], key=lambda g: g["gi_id"]):
        name, size, memory, sms = MIG_PROFILES[gi["profile_id"]]
        for ci in sorted(gi["compute"], key=lambda c: c["ci_id"]):
            devices.append(("mig_device", [("index", str(number)), ("gpu_instance_id", str(gi["gi_id"])),
                                           ("compute_instance_id", str(ci["ci_id"])),
                                           ("device_attributes", [("shared", [("multiprocessor_count", str(sms))])]),
                                           ("fb_memory_usage", [("total", mib(memory)), ("reserved", mib(0)), ("used", mib(0)),
                                                                ("free", mib(memory))])]))
            number += 1
        del name, size
    return devices or "None"


def gpu_tree(gpu, dtd="v12"):
    """The per-GPU part of -q as (tag, value-or-children) pairs, in the real tool's order and this node's layout."""
    domain, bus, devfn = gpu["pci_bus_id"].split(":")
    procs = [("process_info", [("gpu_instance_id", NA), ("compute_instance_id", NA), ("pid", str(p["pid"])), ("type", p["type"]),
                               ("process_name", p["name"]), ("used_memory", mib(p["used_memory_mib"]))]) for p in gpu["procs"]]
    pci = [("pci_bus", bus), ("pci_device", devfn.split(".")[0]), ("pci_domain", domain[-4:])]
    if gpu.get("pci_device_id"):
        pci.append(("pci_device_id", "%s10DE" % gpu["pci_device_id"].upper()))
    pci.append(("pci_bus_id", gpu["pci_bus_id"]))
    if dtd == "v13":
        power = [("power_state", "P0"), ("average_power_draw", watts(gpu["power_draw_w"])), ("instant_power_draw", watts(gpu["power_draw_w"])),
                 ("current_power_limit", watts(gpu["power_limit_w"])), ("default_power_limit", watts(gpu["power_limit_w"]))]
    else:
        power = [("power_state", "P0"), ("power_draw", watts(gpu["power_draw_w"])),
                 ("current_power_limit", watts(gpu["power_limit_w"])), ("default_power_limit", watts(gpu["power_limit_w"]))]
    tree = [("product_name", gpu["name"]), ("product_brand", gpu.get("brand", "NVIDIA"))]
    if gpu["print_architecture"]:
        tree.append(("product_architecture", gpu["architecture"]))
    minor = gpu["minor_number"]
    tree += [
        ("display_mode", "Disabled"),
        ("display_active", "Disabled"),
        ("persistence_mode", gpu["persistence_mode"]),
        ("mig_mode", [("current_mig", gpu["mig_mode"]), ("pending_mig", gpu["mig_mode"])]),
        ("mig_devices", mig_devices_tree(gpu)),
        ("serial", gpu["serial"]),
        ("uuid", gpu["uuid"]),
        ("minor_number", NA if minor is None else str(minor)),
        ("vbios_version", gpu["vbios_version"]),
        ("pci", pci),
        ("fan_speed", NA),
        ("performance_state", "P0"),
        ("fb_memory_usage", [("total", mib(gpu["memory_total_mib"])), ("reserved", mib(gpu["memory_reserved_mib"])),
                             ("used", mib(gpu["memory_used_mib"])), ("free", mib(gpu["memory_free_mib"]))]),
        ("compute_mode", "Default"),
        ("ecc_mode", [("current_ecc", gpu["ecc_mode"]), ("pending_ecc", gpu["ecc_mode"])]),
        ("ecc_errors", [("volatile", ecc_tree(gpu, "volatile", dtd)), ("aggregate", ecc_tree(gpu, "aggregate", dtd))]),
        ("temperature", [("gpu_temp", "%s C" % gpu["temperature_c"])]),
        ("gpu_power_readings", power),
        ("processes", procs),
    ]
    return tree


def xml_escape(text):
    """Escape text for an XML element."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_lines(items, depth):
    """Render (tag, value) pairs as nvidia-smi's XML (4-space indents, empty elements as <tag />)."""
    pad = "    " * depth
    lines = []
    for tag, value in items:
        if isinstance(value, list):
            if value:
                lines.append("%s<%s>" % (pad, tag))
                lines.extend(xml_lines(value, depth + 1))
                lines.append("%s</%s>" % (pad, tag))
            else:
                lines.append("%s<%s />" % (pad, tag))
        else:
            lines.append("%s<%s>%s</%s>" % (pad, tag, xml_escape(value), tag))
    return lines


def query_xml(opts, gpus):
    """-q -x output lines."""
    dtd = document_dtd(gpus)
    lines = ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_%s.dtd">' % dtd, "<nvidia_smi_log>"]
    lines.extend(xml_lines([("timestamp", time.strftime("%a %b %e %H:%M:%S %Y")), ("driver_version", DRIVER_VERSION),
                            ("cuda_version", CUDA_VERSION), ("attached_gpus", str(len(gpus)))], 1))
    for gpu in select_gpus(gpus, opts["ids"]):
        lines.append('    <gpu id="%s">' % gpu["pci_bus_id"])
        lines.extend(xml_lines(gpu_tree(gpu, dtd), 2))
        lines.append("    </gpu>")
    lines.append("</nvidia_smi_log>")
    return lines


def text_lines(items, depth):
    """Render (tag, value) pairs in the indented text form of -q."""
    lines = []
    for tag, value in items:
        label = tag.replace("_", " ").title()
        if isinstance(value, list):
            lines.append("%s%s" % ("    " * depth, label))
            lines.extend(text_lines(value, depth + 1) if value else ["%s%s" % ("    " * (depth + 1), "None")])
        else:
            lines.append("%s%-38s: %s" % ("    " * depth, label, value))
    return lines


def query_text(opts, gpus):
    """-q output lines (the text form)."""
    lines = ["", "==============NVSMI LOG==============", "",
             "%-42s: %s" % ("Timestamp", time.strftime("%a %b %e %H:%M:%S %Y")),
             "%-42s: %s" % ("Driver Version", DRIVER_VERSION),
             "%-42s: %s" % ("CUDA Version", CUDA_VERSION), "",
             "%-42s: %d" % ("Attached GPUs", len(gpus))]
    for gpu in select_gpus(gpus, opts["ids"]):
        lines.append("GPU %s" % gpu["pci_bus_id"])
        lines.extend(text_lines(gpu_tree(gpu, document_dtd(gpus)), 1))
        lines.append("")
    return lines


def cell(text, width, right=False):
    """A table cell of exactly width characters."""
    text = str(text)[:width]
    return text.rjust(width) if right else text.ljust(width)


def table(opts, gpus):
    """The default nvidia-smi table."""
    border = "+" + "-" * 89 + "+"
    sep = "|" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"
    lines = [time.strftime("%a %b %e %H:%M:%S %Y").ljust(31), border,
             "| NVIDIA-SMI %-22s Driver Version: %-14s CUDA Version: %-9s|" % (DRIVER_VERSION, DRIVER_VERSION, CUDA_VERSION),
             sep,
             "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
             "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
             "|                                         |                        |               MIG M. |",
             "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|"]
    chosen = select_gpus(gpus, opts["ids"])
    for num, gpu in enumerate(chosen):
        persistence = "On" if gpu["persistence_mode"] == "Enabled" else "Off"
        name = gpu["name"] if len(gpu["name"]) <= 29 else gpu["name"][:26] + "..."
        lines.append("|" + cell(" %3d  %-29s%4s  " % (gpu["index"], name, persistence), 41) + "|"
                     + cell("%19s Off " % gpu["pci_bus_id"], 24) + "|"
                     + cell("%21s " % gpu["ecc_errors"]["volatile_uncorrectable"], 22) + "|")
        power = "%dW / %5dW" % (round(gpu["power_draw_w"]), round(float(gpu["power_limit_w"])))
        memory = "%dMiB / %6dMiB" % (gpu["memory_used_mib"], gpu["memory_total_mib"])
        util = "%d%%" % (100 if gpu["procs"] else 0)
        lines.append("|" + cell(" N/A   %2dC    P0%24s " % (int(gpu["temperature_c"]), power), 41) + "|"
                     + cell("%23s " % memory, 24) + "|" + cell("%8s %12s " % (util, "Default"), 22) + "|")
        lines.append("|" + " " * 41 + "|" + " " * 24 + "|" + cell("%21s " % gpu["mig_mode"], 22) + "|")
        lines.append(sep.replace("|", "+") if num == len(chosen) - 1 else sep)
    lines += [" " * 89, border,
              "| Processes:".ljust(90) + "|",
              "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
              "|        ID   ID                                                               Usage      |",
              "|" + "=" * 89 + "|"]
    procs = [(g, p) for g in chosen for p in g["procs"]]
    if not procs:
        lines.append("|  No running processes found".ljust(90) + "|")
    for gpu, proc in procs:
        name = proc["name"] if len(proc["name"]) <= 35 else "..." + proc["name"][-32:]
        values = (gpu["index"], proc["pid"], proc["type"], name, "%dMiB" % proc["used_memory_mib"])
        lines.append("|" + cell("  %3d   N/A  N/A  %15d  %5s   %-35s%10s " % values, 89) + "|")
    lines.append(border)
    return lines


def version_lines():
    """--version output lines."""
    return ["NVIDIA-SMI version  : %s" % DRIVER_VERSION,
            "NVML version        : %s" % ".".join(DRIVER_VERSION.split(".")[:2]),
            "DRIVER version      : %s" % DRIVER_VERSION,
            "CUDA Version        : %s" % CUDA_VERSION]


HELP = """NVIDIA System Management Interface -- v%s (SIMULATED for the onprem_ai lab)

nvidia-smi [OPTION1 [ARG1]] [OPTION2 [ARG2]] ...

    -h,   --help                Print usage information and exit.
          --version             Print version information and exit.
    -L,   --list-gpus           Display a list of GPUs connected to the system.
    -q,   --query               Display GPU or Unit info.
    -x,   --xml-format          Produce XML output (with -q).
    -i,   --id=                 Target a specific GPU (index, UUID or PCI bus id).
    -mig, --multi-instance-gpu= Enable or disable MIG mode: 0/DISABLED, 1/ENABLED.
    mig -lgi | -lci | -cgi P[:S][,..] [-C] | -gi G -cci P[,..] | -dci | -dgi   MIG instances.
    --query-gpu=                Information about GPU (csv, with --format=).
    --query-compute-apps=       List of currently active compute processes (csv, with --format=).
    --format=                   csv[,noheader][,nounits]
"""


def parse_args(argv):  # pylint: disable=too-many-branches
    """Parse the supported options; anything else is an invalid combination (rc 2)."""
    opts = {"mode": "table", "xml": False, "ids": None, "format": None, "query_gpu": None, "query_apps": None, "mig": None}
    modes = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, has_value, value = arg.partition("=")
        if arg in ("-h", "--help"):
            modes.append("help")
        elif arg == "--version":
            modes.append("version")
        elif arg in ("-L", "--list-gpus"):
            modes.append("list")
        elif arg in ("-q", "--query"):
            modes.append("query")
        elif arg in ("-x", "--xml-format"):
            opts["xml"] = True
        elif arg in ("-qx", "-xq"):
            modes.append("query")
            opts["xml"] = True
        elif arg in ("-i", "--id") or key in ("-i", "--id") and has_value:
            if not has_value:
                if not args:
                    raise SmiError(MSG_INVALID, RC_INVALID_ARG)
                value = args.pop(0)
            opts["ids"] = value
        elif arg.startswith("-i") and len(arg) > 2 and not has_value:
            opts["ids"] = arg[2:]
        elif arg in ("-mig", "--multi-instance-gpu") or key == "--multi-instance-gpu" and has_value:
            if not has_value:
                if not args:
                    raise SmiError(MSG_INVALID, RC_INVALID_ARG)
                value = args.pop(0)
            opts["mig"] = value
            modes.append("set_mig")
        elif key in ("--query-gpu", "--query-compute-apps", "--format") and has_value:
            if not value:
                raise SmiError(MSG_INVALID, RC_INVALID_ARG)
            name = {"--query-gpu": "query_gpu", "--query-compute-apps": "query_apps", "--format": "format"}[key]
            opts[name] = value
            if name != "format":
                modes.append(name)
        else:
            raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    if len(set(modes)) > 1 or (opts["xml"] and modes != ["query"]):
        raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    if modes:
        opts["mode"] = modes[0]
    if opts["format"] is not None and opts["mode"] not in ("query_gpu", "query_apps"):
        raise SmiError(MSG_INVALID, RC_INVALID_ARG)
    return opts


def run(argv):
    """Run nvidia-smi with argv; return (stdout lines, rc)."""
    if list(argv[:1]) == ["mig"]:
        return mig_command(argv[1:], init_nvml()), RC_OK
    opts = parse_args(argv)
    if opts["mode"] == "help":
        return [HELP % DRIVER_VERSION], RC_OK
    gpus = init_nvml()
    if opts["mode"] == "set_mig":
        return set_mig_mode(gpus, opts["ids"], opts["mig"]), RC_OK
    handlers = {"version": lambda o, g: version_lines(), "list": list_gpus, "query_gpu": query_gpu, "query_apps": query_apps,
                "query": query_xml if opts["xml"] else query_text, "table": table}
    return handlers[opts["mode"]](opts, gpus), RC_OK


def main(argv=None):
    """Entry point."""
    try:
        lines, rc = run(sys.argv[1:] if argv is None else argv)
    except SmiError as err:
        lines, rc = [err.message], err.rc
    except (ValueError, KeyError, TypeError) as err:
        lines, rc = ["Unable to determine the device handle for GPU: Unknown Error (simulation state: %s)" % err], 255
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
