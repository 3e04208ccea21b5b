"""Helpers of the site checks (tools/site-checks.sh runs them).

They test the collection the way a site gets it: the tarball `ansible-galaxy collection build` makes,
a fresh `git clone`, an execution environment build context, ansible-runner as AWX uses it.
Tools that must not go into the shared development virtualenv (galaxy-importer pins ansible-lint and
attrs, ansible-builder) come from a separate one, SITE_TOOLS_VENV (default .gi-venv), which
tools/site-checks.sh creates from tests/site/tools-requirements.txt.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The site checks' own lab GPU node (conftest.py lab_node).
NODE = "site-runner-gpu-1"
VENV_BIN = Path(sys.executable).parent


def tool_env(**extra):
    """Environment for ansible commands: the development venv first, no ansible.cfg of the caller."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    for key in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_INVENTORY"):
        env.pop(key, None)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    # Plays on localhost use this interpreter (inventories of remote hosts set their own, which wins).
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    env.update(extra)
    return env


def run(argv, cwd, env=None, timeout=300, check=True):
    """Run argv (a list) and return the CompletedProcess; on failure show what it printed."""
    proc = subprocess.run(argv, cwd=str(cwd), env=env or tool_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} in {cwd} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                             f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


# What a developer's checkout collects besides its files: caches, virtualenvs, build output, the lab.
PLANTED = [
    ".pytest_cache/v/cache/nodeids", ".ansible/tmp/x", ".cache/pip/x", ".hypothesis/examples/x",
    "tests/unit/.hypothesis/examples/x", "tests/unit/.pytest_cache/x", "roles/models/.ansible/x",
    "plugins/modules/__pycache__/gpu_info.cpython-311.pyc", ".venv/bin/python", ".gi-venv/bin/python",
    "build/collections/x", ".lab/repo/x", "tests/output/junit.xml", ".mypy_cache/x",
    "onprem_ai-maintenance-0.0.9.tar.gz",
]


def checkout_copy(dest):
    """Copy the tracked and untracked-but-not-ignored files of this checkout to dest."""
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest
