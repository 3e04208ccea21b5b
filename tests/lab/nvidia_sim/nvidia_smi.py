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
#   /run/nvidia-sim/procs/<pid>.json   simulated GPU compute processes (see gpu_proc.py)
#
# Every path is re-rooted under $NVIDIA_SIM_ROOT when that is set (unit tests); /proc is not.
"""Simulated nvidia-smi (onprem_ai lab)."""

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

ARCH_BY_NAME = (("GH200", "Hopper"), ("H100", "Hopper"), ("H200", "Hopper"), ("H800", "Hopper"), ("H20", "Hopper"),
                ("B200", "Blackwell"), ("B100", "Blackwell"), ("A100", "Ampere"), ("A800", "Ampere"), ("A30", "Ampere"),
                ("A10", "Ampere"), ("L40", "Ada Lovelace"), ("L4", "Ada Lovelace"), ("V100", "Volta"), ("T4", "Turing"))
COMPUTE_CAP = {"Hopper": "9.0", "Blackwell": "10.0", "Ampere": "8.0", "Ada Lovelace": "8.9", "Volta": "7.0", "Turing": "7.5"}


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


def load_gpus():
    """The simulated GPUs, with defaults filled in."""
    text = read_text(sim_path("/etc/nvidia-sim/gpus.json"))
    raw = json.loads(text) if text else []
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
        ecc = {"volatile_correctable": 0, "volatile_uncorrectable": 0, "aggregate_correctable": 0, "aggregate_uncorrectable": 0}
        ecc.update(gpu.get("ecc_errors") or {})
        gpu["ecc_errors"] = ecc
        gpu["procs"] = []
        gpus.append(gpu)
    return gpus


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
    return gpus


def broken_driver_versions():
    """Lab fault injection: driver versions that fail on this node's GPUs (/etc/nvidia-sim/faults.json)."""
    text = read_text(sim_path("/etc/nvidia-sim/faults.json"))
    if not text:
        return []
    try:
        return list(json.loads(text).get("broken_driver_versions", []))
    except (ValueError, AttributeError):
        return []


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
    "mig.mode.current": ("mig.mode.current", None, lambda g: "Disabled"),
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
            lines.append(", ".join(format_value(f[2](gpu, proc), f[1], nounits) for f in fields))
    return lines


def list_gpus(opts, gpus):
    """-L output lines."""
    return ["GPU %d: %s (UUID: %s)" % (g["index"], g["name"], g["uuid"]) for g in select_gpus(gpus, opts["ids"])]


def gpu_tree(gpu):
    """The per-GPU part of -q as (tag, value-or-children) pairs, in the real tool's order."""
    ecc = gpu["ecc_errors"]
    domain, bus, devfn = gpu["pci_bus_id"].split(":")
    procs = [("process_info", [("gpu_instance_id", NA), ("compute_instance_id", NA), ("pid", str(p["pid"])), ("type", "C"),
                               ("process_name", p["name"]), ("used_memory", mib(p["used_memory_mib"]))]) for p in gpu["procs"]]
    return [
        ("product_name", gpu["name"]),
        ("product_brand", "NVIDIA"),
        ("product_architecture", gpu["architecture"]),
        ("display_mode", "Disabled"),
        ("display_active", "Disabled"),
        ("persistence_mode", gpu["persistence_mode"]),
        ("mig_mode", [("current_mig", "Disabled"), ("pending_mig", "Disabled")]),
        ("serial", gpu["serial"]),
        ("uuid", gpu["uuid"]),
        ("minor_number", str(gpu["index"])),
        ("vbios_version", gpu["vbios_version"]),
        ("pci", [("pci_bus", bus), ("pci_device", devfn.split(".")[0]), ("pci_domain", domain[-4:]), ("pci_bus_id", gpu["pci_bus_id"])]),
        ("fan_speed", NA),
        ("performance_state", "P0"),
        ("fb_memory_usage", [("total", mib(gpu["memory_total_mib"])), ("reserved", mib(gpu["memory_reserved_mib"])),
                             ("used", mib(gpu["memory_used_mib"])), ("free", mib(gpu["memory_free_mib"]))]),
        ("compute_mode", "Default"),
        ("ecc_mode", [("current_ecc", "Enabled"), ("pending_ecc", "Enabled")]),
        ("ecc_errors", [
            ("volatile", [("sram_correctable", "0"), ("sram_uncorrectable", "0"),
                          ("dram_correctable", str(ecc["volatile_correctable"])), ("dram_uncorrectable", str(ecc["volatile_uncorrectable"]))]),
            ("aggregate", [("sram_correctable", "0"), ("sram_uncorrectable", "0"),
                           ("dram_correctable", str(ecc["aggregate_correctable"])), ("dram_uncorrectable", str(ecc["aggregate_uncorrectable"]))]),
        ]),
        ("temperature", [("gpu_temp", "%s C" % gpu["temperature_c"])]),
        ("gpu_power_readings", [("power_state", "P0"), ("power_draw", watts(gpu["power_draw_w"])),
                                ("current_power_limit", watts(gpu["power_limit_w"])), ("default_power_limit", watts(gpu["power_limit_w"]))]),
        ("processes", procs),
    ]


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
    lines = ['<?xml version="1.0" ?>', '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">', "<nvidia_smi_log>"]
    lines.extend(xml_lines([("timestamp", time.strftime("%a %b %e %H:%M:%S %Y")), ("driver_version", DRIVER_VERSION),
                            ("cuda_version", CUDA_VERSION), ("attached_gpus", str(len(gpus)))], 1))
    for gpu in select_gpus(gpus, opts["ids"]):
        lines.append('    <gpu id="%s">' % gpu["pci_bus_id"])
        lines.extend(xml_lines(gpu_tree(gpu), 2))
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
        lines.extend(text_lines(gpu_tree(gpu), 1))
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
        lines.append("|" + " " * 41 + "|" + " " * 24 + "|" + cell("%21s " % "Disabled", 22) + "|")
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
        lines.append("|" + cell("  %3d   N/A  N/A  %15d      C   %-35s%10s " % (gpu["index"], proc["pid"], name, "%dMiB" % proc["used_memory_mib"]), 89) + "|")
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
    --query-gpu=                Information about GPU (csv, with --format=).
    --query-compute-apps=       List of currently active compute processes (csv, with --format=).
    --format=                   csv[,noheader][,nounits]
"""


def parse_args(argv):  # pylint: disable=too-many-branches
    """Parse the supported options; anything else is an invalid combination (rc 2)."""
    opts = {"mode": "table", "xml": False, "ids": None, "format": None, "query_gpu": None, "query_apps": None}
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
    opts = parse_args(argv)
    if opts["mode"] == "help":
        return [HELP % DRIVER_VERSION], RC_OK
    gpus = init_nvml()
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
