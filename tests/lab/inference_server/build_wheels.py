# -*- coding: utf-8 -*-
# onprem_ai.maintenance test lab: package the LAB SIMULATION inference server as wheels.
"""Build the lab inference server (lab_inference_server.py beside this file) as pure-Python wheels, one per version,
so that the model_server role's engine upgrade and rollback go through real pip, virtualenvs and systemd in the lab.

    python3 build_wheels.py OUTDIR                 # the versions in VERSIONS below
    python3 build_wheels.py OUTDIR 1.0.0 1.1.0     # only these

Each wheel, lab_inference_server-<version>-py3-none-any.whl, holds the server module unchanged and a small
`lab_vllm` package whose console script is named `vllm` and takes the subset of vLLM's command line the role
renders (`vllm serve MODEL --host --port --served-model-name --max-model-len --gpu-memory-utilization
--tensor-parallel-size`, `vllm --version`, the API key from VLLM_API_KEY). It answers GET /version with the wheel's
version. It is a SIMULATION: nothing is loaded, nothing computed (see README.md).

A version listed in FAULTS is built broken on purpose, as an engine release that cannot start on this fleet: it
prints a vLLM-like start-up error and exits 1 (the rollback test). Standard library only: the wheels are written
with zipfile (no setuptools, no network), byte for byte the same on every build (fixed timestamps, sorted entries).
"""

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

NAME = "lab-inference-server"
DIST = "lab_inference_server"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
# Broken on purpose: what the engine prints when it fails at start-up, then exit status 1.
FAULTS = {
    "1.2.0": ("RuntimeError: Engine core initialization failed. See root cause above. "
              "Failed core proc(s): {'EngineCore_0': 1} (SIMULATED: lab-inference-server 1.2.0 is a broken release)"),
}
ZIP_DATE = (2026, 1, 1, 0, 0, 0)
HERE = Path(__file__).resolve().parent

SHIM = '''# -*- coding: utf-8 -*-
# onprem_ai.maintenance test lab: SIMULATED `vllm` command (lab inference server {version}). NOT vLLM.
"""`vllm serve MODEL ...` of the lab inference server (a simulation, see lab_inference_server.py)."""

import argparse
import json
import os
import sys

import lab_inference_server

__version__ = "{version}"
FAULT = {fault!r}
# The lab node's own settings (node name, latencies, GPU check), as the lab's provisioning writes them.
LAB_CONFIG = os.environ.get("LAB_INFERENCE_CONFIG", "/etc/onprem-ai-lab/inference-server.json")


def main(argv=None):
    """Entry point of the console script `vllm`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-v", "version"):
        print(__version__)
        return 0
    parser = argparse.ArgumentParser(prog="vllm")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name")
    serve.add_argument("--max-model-len", type=int)
    serve.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    serve.add_argument("--tensor-parallel-size", type=int, default=1)
    serve.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
    args = parser.parse_args(argv)
    print("INFO vllm (SIMULATED lab inference server %s) serve %s" % (__version__, args.model), flush=True)
    if FAULT:
        print(FAULT, file=sys.stderr, flush=True)
        return 1
    if not 0.0 < args.gpu_memory_utilization <= 1.0:
        print("ValueError: GPU memory utilization must be within (0, 1]. Got %s." % args.gpu_memory_utilization,
              file=sys.stderr, flush=True)
        return 1
    if args.model.startswith("/") and not os.path.isdir(args.model):
        print("OSError: %s is not a local folder and is not a valid model identifier" % args.model,
              file=sys.stderr, flush=True)
        return 1
    server_argv = []
    if os.path.isfile(LAB_CONFIG):
        server_argv += ["--config", LAB_CONFIG]
    server_argv += ["--host", args.host, "--port", str(args.port),
                    "--model", args.served_model_name or args.model]
    if args.max_model_len:
        server_argv += ["--max-model-len", str(args.max_model_len)]
    if args.api_key:
        server_argv += ["--api-key", args.api_key]
    lab_inference_server.ENGINE_VERSION = __version__
    return lab_inference_server.main(server_argv)


if __name__ == "__main__":
    sys.exit(main())
'''


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_files(version):
    """The files of one wheel, as (archive name, bytes), dist-info last."""
    info = f"{DIST}-{version}.dist-info"
    files = [
        ("lab_inference_server.py", (HERE / "lab_inference_server.py").read_bytes()),
        ("lab_vllm/__init__.py", SHIM.format(version=version, fault=FAULTS.get(version)).encode()),
        (f"{info}/METADATA", (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n"
                              "Summary: SIMULATED OpenAI-compatible inference server of the onprem_ai lab (not vLLM)\n"
                              "Requires-Python: >=3.9\n").encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: onprem-ai-lab build_wheels.py\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\nvllm = lab_vllm:main\n"),
        (f"{info}/top_level.txt", b"lab_inference_server\nlab_vllm\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files) + f"{info}/RECORD,,\n"
    return files + [(f"{info}/RECORD", record.encode())]


def build(outdir, version):
    """Write one wheel into outdir; return its path."""
    path = Path(outdir) / f"{DIST}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in wheel_files(version):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
    return path


def main(argv=None):
    """Build the wheels named on the command line (default: VERSIONS) into OUTDIR."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(f"usage: {Path(sys.argv[0]).name} OUTDIR [VERSION...]", file=sys.stderr)
        return 2
    outdir = Path(argv[0])
    outdir.mkdir(parents=True, exist_ok=True)
    for version in argv[1:] or VERSIONS:
        path = build(outdir, version)
        state = "BROKEN on purpose (fails at start-up)" if version in FAULTS else "ok"
        print(f"{path.name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
