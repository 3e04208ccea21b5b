"""Fixtures of the site checks; the helpers live in sitelib.py (a unique module name, so that these tests
can run in one pytest session with other test directories)."""

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from sitelib import NODE, PLANTED, ROOT, VENV_BIN, checkout_copy, run, tool_env


@pytest.fixture(scope="session")
def tools_venv():
    """bin/ of the separate tools virtualenv; skipped unless tools/site-checks.sh made it (which requires it)."""
    venv = Path(os.environ.get("SITE_TOOLS_VENV", ROOT / ".gi-venv"))
    if not (venv / "bin" / "ansible-builder").exists():
        if os.environ.get("SITE_CHECKS_STRICT") == "1":
            pytest.fail(f"tools virtualenv {venv} has no ansible-builder (tools/site-checks.sh makes it)")
        pytest.skip(f"tools virtualenv {venv} missing: run tools/site-checks.sh")
    return venv / "bin"


@pytest.fixture(scope="session")
def tarball(tmp_path_factory):
    """The collection tarball built from a copy of this checkout with caches planted in it, and its members."""
    src = checkout_copy(tmp_path_factory.mktemp("src") / "maintenance")
    for name in PLANTED:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("planted by tests/site\n")
    out = tmp_path_factory.mktemp("build")
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(src)], cwd=src)
    tarballs = list(out.glob("onprem_ai-maintenance-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        members = [m.name for m in tar.getmembers()]
    return tarballs[0], members


LAB_IMAGE = "onprem-ai-lab/node:latest"
LAB_NETWORK = "onprem-ai-lab"
LAB_LABEL = "onprem-ai-lab"


def _need_lab():
    reason = None
    if not shutil.which("docker"):
        reason = "no docker client"
    elif subprocess.run(["docker", "image", "inspect", LAB_IMAGE], capture_output=True, check=False).returncode:
        reason = f"lab image {LAB_IMAGE} missing (make lab-image)"
    elif not (ROOT / ".lab/repo/lab-nvidia-sim.gpg").exists():
        reason = "lab repository missing (make lab-repo)"
    if reason:
        if os.environ.get("SITE_CHECKS_STRICT") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _docker(*args, check=True):
    return run(["docker", *args], cwd=ROOT, check=check, timeout=120)


@pytest.fixture(scope="session")
def lab_node(tmp_path_factory):
    """A provisioned lab GPU node of the site checks (tests of several files share it), removed at the end.

    A container of its own (site-runner-gpu-1) from the lab image, provisioned by the lab's tests/lab/provision.yml
    like every lab GPU node (driver 550 loaded), on the lab network; its name is its own, so it can run beside the
    molecule scenarios. Needs the lab image and repository (make lab-image lab-repo). Yields its inventory file."""
    _need_lab()
    tmp = tmp_path_factory.mktemp("lab")
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "gpu_nodes": {"hosts": {NODE: {}}}, "gateways": {"hosts": {}}},
        "vars": {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}}}))
    started = time.monotonic()
    env = tool_env(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    try:
        run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "tests/lab/services.yml"], cwd=ROOT, env=env)
        _docker("rm", "-f", NODE, check=False)
        _docker("run", "-d", "--name", NODE, "--hostname", NODE, "--cap-add", "SYS_ADMIN",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                "--network", LAB_NETWORK, "--label", f"{LAB_LABEL}=node", "--stop-signal", "SIGRTMIN+3",
                LAB_IMAGE, "/sbin/init")
        run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "tests/lab/provision.yml"], cwd=ROOT, env=env,
            timeout=600)
        print(f"lab node {NODE} up and provisioned in {time.monotonic() - started:.0f} s")
        yield inventory
    finally:
        _docker("rm", "-f", NODE, check=False)
