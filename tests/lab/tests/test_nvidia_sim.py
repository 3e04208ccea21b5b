# -*- coding: utf-8 -*-
# Unit tests of the SIMULATED NVIDIA tools of the onprem_ai lab (tests/lab/nvidia_sim/).
# The programs run as subprocesses (python3 file.py args) with NVIDIA_SIM_ROOT pointing at a
# temporary directory; outputs are checked against the real tool's messages, exit codes and
# the hand-written reference outputs in fixtures/nvidia_smi/ (real shapes, made-up values), and the
# -q -x output per node profile against REAL captures (tests/unit/fixtures/nvidia_smi/, sources in its README).
"""Tests of the simulated nvidia-smi, modprobe, gpu_proc and repository builder."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(os.path.dirname(HERE), "nvidia_sim")
FIXTURES = os.path.join(HERE, "fixtures", "nvidia_smi")
PYTHON = shutil.which("python3") or sys.executable
KERNEL = os.uname().release

sys.path.insert(0, SIM)
import build_repo  # noqa: E402  pylint: disable=wrong-import-position,import-error
import catalog  # noqa: E402  pylint: disable=wrong-import-position,import-error

V570 = "570.133.20"
V550 = "550.144.03"
MSG_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.\n")
QUERY_FIELDS = ("index,name,uuid,pci.bus_id,driver_version,memory.total,memory.used,memory.free,persistence_mode,temperature.gpu,"
                "power.draw,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total,serial,vbios_version,compute_cap")
APP_FIELDS = "pid,process_name,used_memory,gpu_uuid,gpu_bus_id"


def run_py(script, args, root, env=None):
    """Run python3 script args with NVIDIA_SIM_ROOT=root; return CompletedProcess (text)."""
    full_env = dict(os.environ, NVIDIA_SIM_ROOT=str(root))
    full_env.update(env or {})
    return subprocess.run([PYTHON, script] + list(args), env=full_env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(name="smi550", scope="session")
def fixture_smi550(tmp_path_factory):
    """nvidia_smi.py baked for 550.144.03 / CUDA 12.4, the way build_repo.py installs it."""
    path = tmp_path_factory.mktemp("baked") / "nvidia-smi-550"
    path.write_text(build_repo.bake_script("nvidia_smi.py", {"DRIVER_VERSION": V550, "CUDA_VERSION": "12.4"}))
    return str(path)


@pytest.fixture(name="root")
def fixture_root(tmp_path):
    """A simulation root with two simulated H100s and the 570.133.20 module loaded."""
    (tmp_path / "etc/nvidia-sim").mkdir(parents=True)
    shutil.copy(os.path.join(FIXTURES, "gpus-h100x2.json"), tmp_path / "etc/nvidia-sim/gpus.json")
    load_module(tmp_path, V570)
    return tmp_path


def load_module(root, version):
    """Simulate a loaded nvidia module of version."""
    (root / "sys/module/nvidia").mkdir(parents=True, exist_ok=True)
    (root / "sys/module/nvidia/version").write_text(version + "\n")


def smi(root, *args, script=None):
    """Run the simulated nvidia-smi (570 unless script is given)."""
    return run_py(script or os.path.join(SIM, "nvidia_smi.py"), args, root)


def register_proc(root, pid, gpus, mib, name="python3", proc_type="C"):
    """Write a registry file as gpu_proc.register() does."""
    directory = root / "run/nvidia-sim/procs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("%d.json" % pid)
    path.write_text(json.dumps({"pid": pid, "name": name, "gpus": gpus, "used_memory_mib": mib, "type": proc_type}))
    return path


def dead_pid():
    """A pid that has exited."""
    proc = subprocess.Popen([PYTHON, "-c", "pass"])  # pylint: disable=consider-using-with
    proc.wait()
    return proc.pid


@pytest.fixture(name="gpu_proc")
def fixture_gpu_proc(root):
    """A live simulated compute process (gpu_proc.py) on GPU 0 with 20480 MiB."""
    env = dict(os.environ, NVIDIA_SIM_ROOT=str(root))
    proc = subprocess.Popen([PYTHON, os.path.join(SIM, "gpu_proc.py"), "--gpus", "0", "--memory-mib", "20480",  # pylint: disable=consider-using-with
                             "--name", "vllm-worker"], env=env, stdout=subprocess.PIPE, text=True)
    path = root / "run/nvidia-sim/procs" / ("%d.json" % proc.pid)
    for dummy in range(100):
        if path.exists():
            break
        time.sleep(0.05)
    assert path.exists()
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)
    proc.stdout.close()


# ---------------------------------------------------------------- nvidia-smi: failures

def test_no_module_loaded(root):
    shutil.rmtree(root / "sys/module")
    for args in ([], ["-L"], ["-q", "-x"], ["--query-gpu=name", "--format=csv"], ["--version"]):
        result = smi(root, *args)
        assert result.returncode == 9
        assert result.stdout == MSG_NO_DRIVER


def test_version_mismatch(root, smi550):
    result = smi(root, script=smi550)
    assert result.returncode == 18
    assert result.stdout == "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 550.144\n"
    load_module(root, V550)
    assert smi(root, "-L", script=smi550).returncode == 0
    result = smi(root, "--query-gpu=driver_version", "--format=csv,noheader")
    assert (result.returncode, result.stdout) == (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.133\n")


def test_fault_injection_broken_driver(root, smi550):
    (root / "etc/nvidia-sim/faults.json").write_text(json.dumps({"broken_driver_versions": [V570]}))
    result = smi(root, "-q", "-x")
    assert result.returncode == 15
    assert result.stdout == "Unable to determine the device handle for GPU 00000000:18:00.0: Unknown Error\n"
    load_module(root, V550)
    assert smi(root, "-L", script=smi550).returncode == 0  # only the listed version is broken


@pytest.mark.parametrize("content", [None, "[]"])
def test_no_gpus(root, content):
    gpus = root / "etc/nvidia-sim/gpus.json"
    if content is None:
        gpus.unlink()
    else:
        gpus.write_text(content)
    result = smi(root)
    assert (result.returncode, result.stdout) == (6, "No devices were found\n")


@pytest.mark.parametrize("args", [["--bogus"], ["-q", "--bogus"], ["-x"], ["--query-gpu=name"], ["-i"], ["-L", "-q"]])
def test_invalid_arguments(root, args):
    result = smi(root, *args)
    assert result.returncode == 2
    assert result.stdout.strip()


def test_unknown_option_message(root):
    shutil.rmtree(root / "sys/module")  # arguments are checked before the driver
    result = smi(root, "--bogus")
    assert (result.returncode, result.stdout) == (2, "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n")


@pytest.mark.parametrize("query", ["--query-gpu=name,bogus.field", "--query-compute-apps=pid,bogus.field"])
def test_invalid_field(root, query):
    result = smi(root, query, "--format=csv")
    assert result.returncode == 2
    assert result.stdout.splitlines()[0] == 'Field "bogus.field" is not a valid field to query.'


def test_bad_gpu_id(root):
    result = smi(root, "-i", "7", "-L")
    assert (result.returncode, result.stdout) == (6, "No devices were found\n")


# ---------------------------------------------------------------- nvidia-smi: outputs

def test_list_gpus(root):
    result = smi(root, "-L")
    assert result.returncode == 0
    assert result.stdout == ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01)\n"
                             "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a02)\n")
    assert smi(root, "-L", "-i", "1").stdout.startswith("GPU 1: ")


def test_version(root, smi550):
    load_module(root, V550)
    result = smi(root, "--version", script=smi550)
    assert result.returncode == 0
    assert result.stdout == ("NVIDIA-SMI version  : 550.144.03\nNVML version        : 550.144\n"
                             "DRIVER version      : 550.144.03\nCUDA Version        : 12.4\n")


def test_table(root, gpu_proc):
    result = smi(root)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "| NVIDIA-SMI 570.133.20             Driver Version: 570.133.20     CUDA Version: 12.8     |" in lines
    assert all(len(line) == 91 for line in lines if line.startswith(("|", "+")))
    assert any(re.match(r"^\|   0  NVIDIA H100 80GB HBM3 +On  \|   00000000:18:00.0 Off \| +1 \|$", line) for line in lines)
    assert any("20480MiB /  81559MiB" in line for line in lines)
    proc_line = [line for line in lines if " vllm-worker " in line]
    assert len(proc_line) == 1 and str(gpu_proc.pid) in proc_line[0] and proc_line[0].endswith("20480MiB |")


def test_table_without_processes(root):
    assert "|  No running processes found" in smi(root).stdout


def xml_of(root, *args):
    """Run nvidia-smi with args, check the XML prologue, return the parsed root element."""
    result = smi(root, *args)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == '<?xml version="1.0" ?>'
    assert lines[1] == '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">'
    return ET.fromstring("\n".join(lines[2:]))


@pytest.mark.parametrize("args", [["-q", "-x"], ["-x", "-q"], ["--query", "--xml-format"]])
def test_xml(root, args):
    log = xml_of(root, *args)
    assert log.tag == "nvidia_smi_log"
    assert log.findtext("driver_version") == V570
    assert log.findtext("cuda_version") == "12.8"
    assert log.findtext("attached_gpus") == "2"
    assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", log.findtext("timestamp"))
    gpus = log.findall("gpu")
    assert [g.get("id") for g in gpus] == ["00000000:18:00.0", "00000000:2A:00.0"]
    gpu = gpus[0]
    assert gpu.findtext("product_name") == "NVIDIA H100 80GB HBM3"
    assert gpu.findtext("product_brand") == "NVIDIA"
    assert gpu.findtext("product_architecture") == "Hopper"
    assert gpu.findtext("persistence_mode") == "Enabled"
    assert gpu.findtext("serial") == "1650924010001"
    assert gpu.findtext("uuid") == "GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01"
    assert gpu.findtext("minor_number") == "0"
    assert gpu.findtext("vbios_version") == "96.00.99.00.01"
    assert gpu.findtext("pci/pci_bus_id") == "00000000:18:00.0"
    assert gpu.findtext("pci/pci_bus") == "18"
    assert gpu.findtext("fb_memory_usage/total") == "81559 MiB"
    assert gpu.findtext("fb_memory_usage/used") == "0 MiB"
    assert gpu.findtext("fb_memory_usage/free") == "81559 MiB"
    assert gpu.findtext("ecc_mode/current_ecc") == "Enabled"
    assert gpu.findtext("ecc_errors/volatile/dram_correctable") == "3"
    assert gpu.findtext("ecc_errors/volatile/dram_uncorrectable") == "1"
    assert gpu.findtext("ecc_errors/aggregate/dram_correctable") == "12"
    assert gpu.findtext("temperature/gpu_temp") == "36 C"
    assert re.match(r"^\d+\.\d\d W$", gpu.findtext("gpu_power_readings/power_draw"))
    assert gpu.find("processes") is not None and len(gpu.find("processes")) == 0
    assert "<processes />" in smi(root, *args).stdout
    assert gpus[1].findtext("persistence_mode") == "Disabled"
    assert gpus[1].findtext("serial") == "N/A"


def test_xml_processes_and_select(root, gpu_proc):
    gone = register_proc(root, dead_pid(), [0, 1], 999, "stale")
    log = xml_of(root, "-q", "-x")
    infos = log.findall("gpu/processes/process_info")
    assert len(infos) == 1
    info = infos[0]
    assert [c.tag for c in info] == ["gpu_instance_id", "compute_instance_id", "pid", "type", "process_name", "used_memory"]
    assert info.findtext("pid") == str(gpu_proc.pid)
    assert info.findtext("type") == "C"
    assert info.findtext("process_name") == "vllm-worker"
    assert info.findtext("used_memory") == "20480 MiB"
    assert log.findtext("gpu/fb_memory_usage/used") == "20480 MiB"
    assert log.findtext("gpu/fb_memory_usage/free") == "61079 MiB"
    assert not gone.exists()
    selected = xml_of(root, "-q", "-x", "-i", "1")
    assert [g.get("id") for g in selected.findall("gpu")] == ["00000000:2A:00.0"]
    assert selected.findtext("attached_gpus") == "2"


def element_paths(element, prefix=""):
    """Set of slash-separated element paths below element (gpu ids dropped)."""
    paths = set()
    for child in element:
        path = prefix + "/" + child.tag
        paths.add(path)
        paths |= element_paths(child, path)
    return paths


def unit_shape(value):
    """A value's format with the digits abstracted: '81559 MiB' -> 'N MiB', '69.50 W' -> 'N.N W'."""
    return re.sub(r"\d+", "N", value.strip())


REAL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "unit", "fixtures", "nvidia_smi")
REAL_XML = {"v12": ["telegraf-a100-sxm4-80gb-mig-535.54.03-v12.xml"],
            "v13": ["telegraf-rtx-pro-6000-blackwell-590.44.01-v13.xml", "telegraf-rtx-4000-sff-ada-595.84-v13.xml",
                    "telegraf-dual-rtx2080-590.44.01-v13.xml"],
            "older": ["telegraf-grid-p4-1q-513.46-v11.xml", "netdata-tesla-p100-510.47.03-v11.xml", "nagios-tesla-m10-390.94-v9-gpu0.xml"]}


def real_capture(name):
    """A REAL nvidia-smi -q -x capture (tests/unit/fixtures/nvidia_smi/README.md names its source)."""
    return ET.parse(os.path.join(REAL, name)).getroot()


def real_paths(dtd):
    """Element paths of the real captures of one layout. Elements whose only real captures are of another layout
    (MIG devices: A100 v12; process_info: the v11/v9 captures; single_bit/double_bit: Pascal/Maxwell v11/v9) count
    for both layouts: the DTDs keep those element names."""
    paths = set()
    for name in REAL_XML[dtd]:
        paths |= element_paths(real_capture(name))
    for name in REAL_XML["v12"] + REAL_XML["older"]:
        paths |= set(p for p in element_paths(real_capture(name))
                     if "/mig_devices/" in p or "/processes/" in p or "/single_bit" in p or "/double_bit" in p)
    return paths


PROFILE_GPUS = [
    {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01", "pci_bus_id": "00000000:18:00.0",
     "memory_total_mib": 81559, "minor_number": 1, "mig_mode": "Enabled"},
    {"name": "Tesla V100-SXM2-32GB", "uuid": "GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a02", "pci_bus_id": "00000000:2A:00.0",
     "memory_total_mib": 32768, "minor_number": 0},
]


@pytest.mark.parametrize("version,dtd", [("550.144.03", "v12"), ("590.44.01", "v13")])
def test_xml_paths_exist_in_real_captures(tmp_path, version, dtd):
    """The simulator's -q -x, per layout, uses only element paths that real captures of that layout have."""
    script = tmp_path / "nvidia-smi"
    script.write_text(build_repo.bake_script("nvidia_smi.py", {"DRIVER_VERSION": version, "CUDA_VERSION": "12.4"}))
    (tmp_path / "etc/nvidia-sim").mkdir(parents=True)
    (tmp_path / "etc/nvidia-sim/gpus.json").write_text(json.dumps(PROFILE_GPUS))
    load_module(tmp_path, version)
    register_proc(tmp_path, os.getpid(), [0], 512, name="python3 -m vllm serve --model a,b")
    assert smi(tmp_path, "mig", "-i", "0", "-cgi", "19,9", "-C", script=str(script)).returncode == 0
    text = smi(tmp_path, "-q", "-x", script=str(script)).stdout
    assert ('nvsmi_device_%s.dtd' % dtd) in text.splitlines()[1]
    sim = ET.fromstring("\n".join(text.splitlines()[2:]))
    missing = element_paths(sim) - real_paths(dtd)
    assert not missing, "simulator emits element paths real %s captures do not have: %s" % (dtd, sorted(missing))
    assert sim.find("gpu/mig_devices/mig_device") is not None
    h100, v100 = sim.findall("gpu")
    assert h100.find("ecc_errors/volatile/single_bit") is None
    assert v100.findtext("ecc_errors/aggregate/double_bit/total") == "0"  # Pascal/Volta nest their counters
    # value formats of the leaves as the real tool prints them
    reference = real_capture(REAL_XML[dtd][0])
    for path in ("gpu/fb_memory_usage/total", "gpu/fb_memory_usage/used", "gpu/minor_number", "gpu/temperature/gpu_temp",
                 "gpu/gpu_power_readings/current_power_limit", "attached_gpus", "driver_version"):
        assert unit_shape(sim.findtext(path)) == unit_shape(reference.findtext(path)), path
    power = "gpu/gpu_power_readings/instant_power_draw" if dtd == "v13" else "gpu/gpu_power_readings/power_draw"
    assert unit_shape(sim.findtext(power)) == unit_shape(reference.findtext(power))
    assert re.match(r"^[0-9A-F]{4}10DE$", sim.findtext("gpu/pci/pci_device_id"))
    assert [g.tag for g in sim][:4] == [g.tag for g in reference][:4]


def read_reference_csv(name):
    """Lines of a reference CSV."""
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.mark.parametrize("fmt, reference", [("csv", "reference-query-gpu.csv"), ("csv,nounits", "reference-query-gpu-nounits.csv")])
def test_query_gpu_matches_reference(root, fmt, reference):
    expected = read_reference_csv(reference)
    result = smi(root, "--query-gpu=" + QUERY_FIELDS, "--format=" + fmt)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == expected[0]
    assert len(lines) == 3
    for line in lines[1:]:
        cells = line.split(", ")
        ref_cells = expected[1].split(", ")
        assert len(cells) == len(ref_cells)
        for header, cell, ref in zip(expected[0].split(", "), cells, ref_cells):
            if header in ("name", "uuid", "pci.bus_id", "serial", "vbios_version", "persistence_mode", "compute_cap"):
                continue
            assert unit_shape(cell) == unit_shape(ref), header
    row0 = lines[1].split(", ")
    assert row0[:5] == ["0", "NVIDIA H100 80GB HBM3", "GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01", "00000000:18:00.0", V570]
    assert row0[8:] == ["Enabled", "36", row0[10], "3", "1", "1650924010001", "96.00.99.00.01", "9.0"]
    assert row0[5] == ("81559 MiB" if fmt == "csv" else "81559")


def test_query_gpu_noheader_and_select(root):
    result = smi(root, "--query-gpu=index,memory.used,serial", "--format=csv,noheader,nounits", "-i", "1")
    assert (result.returncode, result.stdout) == (0, "1, 0, [N/A]\n")
    result = smi(root, "--query-gpu=gpu_name,gpu_bus_id", "--format=csv")
    assert result.stdout.splitlines()[0] == "name, pci.bus_id"


def test_query_compute_apps(root, gpu_proc):
    expected = read_reference_csv("reference-query-compute-apps.csv")
    register_proc(root, dead_pid(), [1], 4096)
    result = smi(root, "--query-compute-apps=" + APP_FIELDS, "--format=csv")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == expected[0] == "pid, process_name, used_gpu_memory [MiB], gpu_uuid, gpu_bus_id"
    assert lines[1:] == ["%d, vllm-worker, 20480 MiB, GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01, 00000000:18:00.0" % gpu_proc.pid]
    assert unit_shape(lines[1].split(", ")[2]) == unit_shape(expected[1].split(", ")[2])
    nounits = smi(root, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    assert nounits.stdout == "%d, 20480\n" % gpu_proc.pid
    used = smi(root, "--query-gpu=memory.used", "--format=csv,noheader")
    assert used.stdout == "20480 MiB\n0 MiB\n"


def test_query_compute_apps_none(root):
    register_proc(root, dead_pid(), [0], 4096)
    result = smi(root, "--query-compute-apps=" + APP_FIELDS, "--format=csv")
    assert (result.returncode, result.stdout) == (0, "pid, process_name, used_gpu_memory [MiB], gpu_uuid, gpu_bus_id\n")
    result = smi(root, "--query-compute-apps=" + APP_FIELDS, "--format=csv,noheader")
    assert (result.returncode, result.stdout) == (0, "")


# ---------------------------------------------------------------- gpu_proc

def test_gpu_proc_registers_and_unregisters(root, gpu_proc):
    path = root / "run/nvidia-sim/procs" / ("%d.json" % gpu_proc.pid)
    assert json.loads(path.read_text()) == {"pid": gpu_proc.pid, "name": "vllm-worker", "gpus": [0], "used_memory_mib": 20480, "type": "C"}
    gpu_proc.send_signal(signal.SIGTERM)
    assert gpu_proc.wait(timeout=10) == 0
    assert not path.exists()


def test_gpu_proc_helpers(root, monkeypatch):
    monkeypatch.setenv("NVIDIA_SIM_ROOT", str(root))
    import gpu_proc  # pylint: disable=import-outside-toplevel,import-error
    path = gpu_proc.register([0, 1], 1024, name="server")
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle) == {"pid": os.getpid(), "name": "server", "gpus": [0, 1], "used_memory_mib": 1024, "type": "C"}
    assert path == str(root / "run/nvidia-sim/procs" / ("%d.json" % os.getpid()))
    gpu_proc.unregister()
    assert not os.path.exists(path)
    gpu_proc.unregister()


# ---------------------------------------------------------------- modprobe

def install_module(root, version):
    """What the simulated nvidia-dkms postinst writes."""
    directory = root / "lib/modules" / KERNEL / "updates/dkms"
    directory.mkdir(parents=True, exist_ok=True)
    for module in catalog.DKMS_MODULES.split():
        (directory / (module + ".ko")).write_text("simulated %s.ko version=%s\n" % (module, version))


def modprobe(root, *args, env=None):
    """Run the simulated modprobe."""
    return run_py(os.path.join(SIM, "modprobe_sim.py"), args, root, env)


@pytest.fixture(name="mroot")
def fixture_mroot(tmp_path):
    """A simulation root with GPUs, no module loaded and no module installed."""
    (tmp_path / "etc/nvidia-sim").mkdir(parents=True)
    shutil.copy(os.path.join(FIXTURES, "gpus-h100x2.json"), tmp_path / "etc/nvidia-sim/gpus.json")
    return tmp_path


def test_modprobe_not_found(mroot):
    result = modprobe(mroot, "nvidia")
    assert result.returncode == 1
    assert result.stderr == "modprobe: FATAL: Module nvidia not found in directory %s\n" % (mroot / "lib/modules" / KERNEL)
    assert not (mroot / "sys/module/nvidia").exists()


def test_modprobe_no_gpus(mroot):
    install_module(mroot, V570)
    (mroot / "etc/nvidia-sim/gpus.json").write_text("[]")
    result = modprobe(mroot, "nvidia")
    assert (result.returncode, result.stderr) == (1, "modprobe: ERROR: could not insert 'nvidia': No such device\n")


def test_modprobe_load_and_nvidia_smi(mroot):
    install_module(mroot, V550)
    assert smi(mroot).returncode == 9
    result = modprobe(mroot, "nvidia")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (mroot / "sys/module/nvidia/version").read_text() == V550 + "\n"
    assert (mroot / "sys/module/nvidia/refcnt").read_text() == "0\n"
    assert smi(mroot).returncode == 18
    assert modprobe(mroot, "nvidia-uvm").returncode == 0
    assert (mroot / "sys/module/nvidia_uvm/version").read_text() == V550 + "\n"
    assert (mroot / "sys/module/nvidia/refcnt").read_text() == "1\n"
    assert modprobe(mroot, "nvidia").returncode == 0  # already loaded: no-op


def test_modprobe_dependent_loads_nvidia_first(mroot):
    install_module(mroot, V570)
    assert modprobe(mroot, "nvidia_drm").returncode == 0
    assert sorted(os.listdir(mroot / "sys/module")) == ["nvidia", "nvidia_drm", "nvidia_modeset"]
    assert smi(mroot, "-L").returncode == 0


def test_modprobe_remove_in_use_by_module(mroot):
    install_module(mroot, V570)
    assert modprobe(mroot, "nvidia_uvm").returncode == 0
    result = modprobe(mroot, "-r", "nvidia")
    assert (result.returncode, result.stderr) == (1, "modprobe: FATAL: Module nvidia is in use.\n")
    assert (mroot / "sys/module/nvidia/version").exists()
    result = modprobe(mroot, "-r", "nvidia", "nvidia_uvm")  # given order: nvidia first -> in use
    assert result.returncode == 1
    result = modprobe(mroot, "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia")
    assert (result.returncode, result.stderr) == (0, "")
    assert os.listdir(mroot / "sys/module") == []
    assert smi(mroot).returncode == 9
    assert modprobe(mroot, "-r", "nvidia").returncode == 0  # not loaded: nothing to do


def test_modprobe_remove_in_use_by_process(mroot):
    install_module(mroot, V570)
    assert modprobe(mroot, "nvidia").returncode == 0
    register_proc(mroot, os.getpid(), [0], 1024)
    result = modprobe(mroot, "-r", "nvidia")
    assert (result.returncode, result.stderr) == (1, "modprobe: FATAL: Module nvidia is in use.\n")
    assert modprobe(mroot, "-q", "-r", "nvidia").returncode == 1
    (mroot / "run/nvidia-sim/procs" / ("%d.json" % os.getpid())).unlink()
    register_proc(mroot, dead_pid(), [0], 1024)  # a stale registration does not hold the module
    assert modprobe(mroot, "-r", "nvidia").returncode == 0
    assert not (mroot / "sys/module/nvidia").exists()


def test_modprobe_falls_back_for_other_modules(mroot, tmp_path):
    fake = tmp_path / "fake-modprobe"
    fake.write_text("#!/bin/sh\necho \"real modprobe: $*\"\nexit 3\n")
    fake.chmod(0o755)
    result = modprobe(mroot, "-r", "loop", env={"NVIDIA_SIM_MODPROBE_FALLBACK": str(fake)})
    assert (result.returncode, result.stdout) == (3, "real modprobe: -r loop\n")
    result = modprobe(mroot, "br_netfilter", "-v", env={"NVIDIA_SIM_MODPROBE_FALLBACK": str(fake)})
    assert result.stdout == "real modprobe: br_netfilter -v\n"


# ---------------------------------------------------------------- other simulated tools and files

def test_fabricmanager(root, tmp_path):
    script = tmp_path / "nv-fabricmanager"
    script.write_text(build_repo.bake_script("nv_fabricmanager.py", {"VERSION": V550}))
    result = run_py(str(script), ["--version"], root)
    assert (result.returncode, result.stdout) == (0, "Fabric Manager version is : 550.144.03\n")
    result = run_py(str(script), ["-c", "/usr/share/nvidia/nvswitch/fabricmanager.cfg"], root)
    assert result.returncode == 1
    assert "version 550.144.03 don't match with driver version 570.133.20" in result.stderr
    shutil.rmtree(root / "sys/module")
    assert run_py(str(script), [], root).returncode == 1


def test_nvcc_and_ctk(tmp_path):
    nvcc = tmp_path / "nvcc"
    nvcc.write_text(build_repo.bake_script("nvcc_sim.py", {"RELEASE": "12.4", "NVCC_VERSION": "12.4.131"}))
    lines = run_py(str(nvcc), ["--version"], tmp_path).stdout.splitlines()
    assert lines[0] == "nvcc: NVIDIA (R) Cuda compiler driver"
    assert "Cuda compilation tools, release 12.4, V12.4.131" in lines
    ctk = run_py(os.path.join(SIM, "nvidia_ctk.py"), ["--version"], tmp_path).stdout.splitlines()
    assert ctk[0] == "NVIDIA Container Toolkit CLI version 1.17.8" and ctk[1].startswith("commit: ")


def test_bake_script_rejects_unknown_constant():
    with pytest.raises(build_repo.BuildError):
        build_repo.bake_script("nvidia_smi.py", {"NO_SUCH_CONSTANT": "1"})


def test_boot_unit():
    with open(os.path.join(SIM, "nvidia-sim-modules.service"), encoding="utf-8") as handle:
        text = handle.read()
    assert "ConditionPathExists=/lib/modules/%v/updates/dkms/nvidia.ko" in text
    assert "ExecStart=-/usr/sbin/modprobe nvidia\n" in text
    assert "ExecStart=-/usr/sbin/modprobe nvidia_uvm\n" in text
    assert "WantedBy=multi-user.target" in text


def test_python_sources_are_sanity_clean():
    for name in sorted(os.listdir(SIM)) + ["../tests/test_nvidia_sim.py"]:
        if not name.endswith(".py"):
            continue
        with open(os.path.join(SIM, name), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        assert not lines[0].startswith("#!"), "%s: no shebang in .py files" % name
        assert all(len(line) <= 160 for line in lines), "%s: line longer than 160" % name


# ---------------------------------------------------------------- repository build

def deb_field(deb, field):
    """dpkg-deb -f deb field."""
    return subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not all(shutil.which(t) for t in ("dpkg-deb", "apt-ftparchive", "gpg")), reason="needs dpkg-deb, apt-ftparchive and gpg")
def test_build_repo(tmp_path):  # pylint: disable=too-many-locals,too-many-statements
    out = tmp_path / "repo"
    script = os.path.join(SIM, "build_repo.py")
    result = subprocess.run([PYTHON, script, str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    repodir = out / "debian12" / catalog.ARCH_DIRS[arch]
    for name in ("Packages", "Packages.gz", "Release", "InRelease", "Release.gpg"):
        assert (repodir / name).is_file(), name
    assert (out / "lab-nvidia-sim.gpg").stat().st_size > 100

    debs = {p.name: str(p) for p in repodir.glob("*.deb")}
    expected = {}
    for driver in ("550.127.08", "550.144.03", "570.124.06", "570.133.20"):
        branch = driver.split(".", maxsplit=1)[0]
        for pkg in ("cuda-drivers", "nvidia-driver", "nvidia-utils", "libnvidia-compute", "nvidia-kernel-common", "nvidia-dkms",
                    "nvidia-fabricmanager"):
            expected["%s-%s" % (pkg, branch), driver + "-1"] = None
    for cuda, dash in (("12.4.1", "12-4"), ("12.8.1", "12-8")):
        for pkg in ("cuda-toolkit", "cuda-nvcc", "cuda-cudart"):
            expected["%s-%s" % (pkg, dash), cuda + "-1"] = None
    expected["cuda-toolkit-config-common", "12.8.90-1"] = None
    for ctk in ("1.17.4", "1.17.8"):
        for pkg in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"):
            expected[pkg, ctk + "-1"] = None
    expected["linux-headers-" + os.uname().release, "1.0-1"] = None
    assert len(debs) == len(expected) == 44  # 43 NVIDIA packages + linux-headers-<uname -r>
    found = {}
    for deb in debs.values():
        found[deb_field(deb, "Package"), deb_field(deb, "Version")] = deb
        assert deb_field(deb, "Architecture") == arch
        assert "SIMULATED for the onprem_ai lab" in deb_field(deb, "Description")
    assert set(found) == set(expected)

    def depends(name, version):
        return deb_field(found[name, version], "Depends")

    assert depends("cuda-drivers-570", "570.133.20-1") == "nvidia-driver-570 (= 570.133.20-1)"
    assert depends("nvidia-driver-550", "550.144.03-1") == ("nvidia-utils-550 (= 550.144.03-1), libnvidia-compute-550 (= 550.144.03-1), "
                                                            "nvidia-kernel-common-550 (= 550.144.03-1), nvidia-dkms-550 (= 550.144.03-1)")
    assert depends("nvidia-utils-570", "570.124.06-1") == "libnvidia-compute-570 (= 570.124.06-1)"
    assert depends("nvidia-dkms-550", "550.127.08-1") == "nvidia-kernel-common-550 (= 550.127.08-1)"
    assert depends("cuda-toolkit-12-4", "12.4.1-1") == "cuda-nvcc-12-4 (= 12.4.1-1), cuda-cudart-12-4 (= 12.4.1-1), cuda-toolkit-config-common"
    assert depends("nvidia-container-toolkit", "1.17.8-1") == ("nvidia-container-toolkit-base (= 1.17.8-1), "
                                                               "libnvidia-container-tools (= 1.17.8-1)")
    assert depends("libnvidia-container-tools", "1.17.4-1") == "libnvidia-container1 (= 1.17.4-1)"
    for field in ("Provides", "Conflicts", "Replaces"):
        assert deb_field(found["nvidia-driver-570", "570.133.20-1"], field) == "nvidia-driver-binary"
        assert deb_field(found["nvidia-fabricmanager-550", "550.144.03-1"], field) == "nvidia-fabricmanager"

    contents = subprocess.run(["dpkg-deb", "-c", found["nvidia-utils-550", "550.144.03-1"]], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/nvidia-smi" in contents and "root/root" in contents
    extract = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", found["nvidia-utils-550", "550.144.03-1"], str(extract)], check=True)
    baked = (extract / "usr/bin/nvidia-smi").read_text()
    assert baked.startswith("#!/usr/bin/python3\n")
    assert 'DRIVER_VERSION = "550.144.03"' in baked and 'CUDA_VERSION = "12.4"' in baked

    packages = (repodir / "Packages").read_text()
    stanzas = {(re.search(r"^Package: (.+)$", s, re.M).group(1), re.search(r"^Version: (.+)$", s, re.M).group(1))
               for s in packages.strip().split("\n\n")}
    assert stanzas == set(expected)
    assert gzip.decompress((repodir / "Packages.gz").read_bytes()).decode() == packages
    assert "Origin: NVIDIA" in (repodir / "Release").read_text()
    verify = subprocess.run(["gpgv", "--keyring", str(out / "lab-nvidia-sim.gpg"), str(repodir / "InRelease")],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr

    key = (out / "lab-nvidia-sim.gpg").read_bytes()
    again = subprocess.run([PYTHON, script, str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert (again.returncode, again.stdout) == (0, "cached\n")
    shutil.rmtree(repodir)  # outputs missing: rebuilt with the same key
    third = subprocess.run([PYTHON, script, str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert third.returncode == 0 and third.stdout != "cached\n"
    assert (out / "lab-nvidia-sim.gpg").read_bytes() == key


def test_build_repo_usage_error():
    result = subprocess.run([PYTHON, os.path.join(SIM, "build_repo.py")], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "usage" in result.stderr


# ---------------------------------------------------------------- node profiles (shapes of real machines)

def profile_root(tmp_path, gpus, version=V570):
    """A simulation root with these gpus.json entries and the module of version loaded."""
    (tmp_path / "etc/nvidia-sim").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/nvidia-sim/gpus.json").write_text(json.dumps(gpus))
    load_module(tmp_path, version)
    return tmp_path


def parse_with_collection(text):
    """The collection's own parser (module_utils) on the simulator's output."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "build", "collections"))
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia  # pylint: disable=import-outside-toplevel,import-error
    return _nvidia.parse_smi_xml(text)


def test_profile_minor_numbers_differ_from_index(tmp_path):
    root = profile_root(tmp_path, PROFILE_GPUS)
    log = xml_of(root, "-q", "-x")
    assert [g.findtext("minor_number") for g in log.findall("gpu")] == ["1", "0"]
    assert smi(root, "--query-gpu=index,pci.bus_id", "--format=csv,noheader").stdout == "0, 00000000:18:00.0\n1, 00000000:2A:00.0\n"
    data = parse_with_collection(smi(root, "-q", "-x").stdout)
    assert [(g["index"], g["minor_number"]) for g in data["gpus"]] == [(0, 1), (1, 0)]


def test_profile_old_driver_prints_no_architecture(tmp_path):
    gpus = [dict(PROFILE_GPUS[1], print_architecture=False)]
    root = profile_root(tmp_path, gpus)
    log = xml_of(root, "-q", "-x")
    assert log.find("gpu/product_architecture") is None and log.findtext("gpu/pci/pci_device_id") == "1DB510DE"
    gpu = parse_with_collection(smi(root, "-q", "-x").stdout)["gpus"][0]
    assert (gpu["architecture"], gpu["architecture_source"]) == ("Volta", "pci_device_id")


@pytest.mark.parametrize("layout,tags", [("split", ["sram_uncorrectable_parity", "sram_uncorrectable_secded"]),
                                         ("unsplit", ["sram_uncorrectable"]), ("nested", ["single_bit", "double_bit"])])
def test_profile_ecc_layouts_and_uncorrectable_fault(tmp_path, layout, tags):
    root = profile_root(tmp_path, [dict(PROFILE_GPUS[0], ecc_layout=layout, mig_mode="Disabled")])
    (root / "etc/nvidia-sim/faults.json").write_text(json.dumps({"ecc_errors": {"0": {"volatile_uncorrectable": 3, "aggregate_uncorrectable": 5}}}))
    text = smi(root, "-q", "-x").stdout
    for tag in tags:
        assert "<%s>" % tag in text
    gpu = parse_with_collection(text)["gpus"][0]
    assert gpu["ecc_errors"]["volatile"]["uncorrected"] == 3 and gpu["ecc_errors"]["aggregate"]["uncorrected"] == 5
    assert smi(root, "--query-gpu=ecc.errors.uncorrected.volatile.total", "--format=csv,noheader").stdout == "3\n"


def test_profile_v13_layout_from_gpus_json(tmp_path):
    root = profile_root(tmp_path, [dict(PROFILE_GPUS[0], dtd="v13")])
    text = smi(root, "-q", "-x").stdout
    assert "nvsmi_device_v13.dtd" in text and "<instant_power_draw>" in text and "<sram_threshold_exceeded>" in text


def test_profile_graphics_and_comma_named_processes(tmp_path):
    root = profile_root(tmp_path, PROFILE_GPUS)
    register_proc(root, os.getpid(), [0], 1024, name="python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2")
    register_proc(root, os.getppid(), [1], 64, name="/usr/lib/xorg/Xorg", proc_type="G")
    apps = smi(root, "--query-compute-apps=gpu_uuid,pid,used_memory,process_name", "--format=csv,noheader,nounits").stdout
    assert apps == "GPU-3f6a2b1c-9d8e-4f70-8a1b-2c3d4e5f6a01, %d, 1024, python3 -m vllm.entrypoints.openai.api_server --model a,b --tp 2\n" % os.getpid()
    infos = xml_of(root, "-q", "-x").findall("gpu/processes/process_info")
    assert sorted(i.findtext("type") for i in infos) == ["C", "G"]


def test_mig_instances_live_while_the_module_is_loaded(tmp_path):
    root = profile_root(tmp_path, PROFILE_GPUS)
    assert smi(root, "mig", "-lgi").returncode == 6
    created = smi(root, "mig", "-i", "0", "-cgi", "9:0,19:4", "-C")
    assert created.returncode == 0 and "Successfully created GPU instance ID  2 on GPU 0 using profile MIG 1g.10gb (ID 19)" in created.stdout
    assert smi(root, "mig", "-i", "0", "-cgi", "9:0").returncode != 0  # placement taken
    lgi = smi(root, "mig", "-lgi").stdout
    assert re.search(r"\|\s+0  MIG 3g\.40gb\s+9\s+1\s+0:4\s+\|", lgi) and re.search(r"\|\s+0  MIG 1g\.10gb\s+19\s+2\s+4:1\s+\|", lgi)
    lci = smi(root, "mig", "-lci").stdout
    assert re.search(r"\|\s+0\s+1\s+MIG 3g\.40gb\s+2\s+0\s+0:4\s+\|", lci)
    log = xml_of(root, "-q", "-x")
    assert log.findtext("gpu/mig_mode/current_mig") == "Enabled" and len(log.findall("gpu/mig_devices/mig_device")) == 2
    assert "MIG 3g.40gb     Device  0:" in smi(root, "-L").stdout
    # the collection's parsers read the simulator's tables
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "build", "collections"))
    from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _nvidia  # pylint: disable=import-outside-toplevel,import-error
    layout = _nvidia.mig_layout(_nvidia.parse_mig_lgi(lgi), _nvidia.parse_mig_lci(lci))
    assert _nvidia.describe_mig_layout(layout[0]) == "3g.40gb@0 [3g.40gb], 1g.10gb@4 [1g.10gb]"
    # a module unload (the directory goes) loses the instances, the mode stays
    shutil.rmtree(root / "sys/module/nvidia")
    load_module(root, V570)
    assert smi(root, "mig", "-lgi").returncode == 6
    assert xml_of(root, "-q", "-x").findtext("gpu/mig_mode/current_mig") == "Enabled"
    # destroy, disable
    smi(root, "mig", "-i", "0", "-cgi", "19", "-C")
    assert smi(root, "-i", "0", "-mig", "0").returncode == 15
    assert smi(root, "mig", "-i", "0", "-dci").returncode == 0 and smi(root, "mig", "-i", "0", "-dgi").returncode == 0
    assert smi(root, "-i", "0", "-mig", "0").returncode == 0
    assert xml_of(root, "-q", "-x").findtext("gpu/mig_mode/current_mig") == "Disabled"
    assert smi(root, "-i", "1", "-mig", "1").stdout.startswith("Unable to enable MIG Mode")
