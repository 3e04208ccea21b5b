"""Supply chain of the litellm_gateway role, on the site checks' lab node (conftest.py lab_node).

- a refused version (1.82.7) fails the role before it touches anything, in check mode too: no package, user,
  directory or file changed on the node;
- a planted .pth file in a virtualenv fails the role's .pth check (tasks/verify_venv.yml), naming the file;
  the allowed ones pass;
- the shipped lock files match the lab wheelhouse (tests/lab/image/wheelhouse.sh) that the lab installs from.
"""

import hashlib
import json

import pytest
import yaml

from litellm_lock import parse_lock
from sitelib import NODE, ROOT, VENV_BIN, run, tool_env

LOCKS = ROOT / "roles/litellm_gateway/files/locks"


def playbook(lab_node, tmp_path, plays, *extra, check=False):
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = tool_env(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    return run([str(VENV_BIN / "ansible-playbook"), "-i", str(lab_node), str(tmp_path / "play.yml"), *extra],
               cwd=ROOT, env=env, timeout=300, check=check)


def node(*argv, check=True):
    return run(["docker", "exec", NODE, *argv], cwd=ROOT, timeout=120, check=check)


def test_refused_version_changes_nothing(lab_node, tmp_path):
    node("touch", "/tmp/site-refusal-marker")
    play = [{"name": "gateway", "hosts": NODE, "gather_facts": True,
             "roles": [{"role": "litellm_gateway", "litellm_gateway_version": "1.82.7"}]}]
    for mode in ([], ["--check"]):
        proc = playbook(lab_node, tmp_path, play, *mode)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert "Refusing to install LiteLLM 1.82.7" in out and "credential stealer" in out, out[-3000:]
        assert "Nothing was changed on the node" in out
        # The refusal is the first task that runs (after the role's argument check).
        tasks = [line for line in proc.stdout.splitlines() if line.startswith("TASK [")]
        assert len(tasks) <= 4 and "Refuse LiteLLM versions known to be compromised" in tasks[-1], tasks
    changed = node("find", "/etc", "/opt", "/usr", "/var/lib", "-xdev", "-newer", "/tmp/site-refusal-marker",
                   "-not", "-path", "/var/lib/systemd/*").stdout.split()
    assert changed == [], changed
    assert node("test", "-e", "/opt/litellm", check=False).returncode == 1
    assert node("getent", "passwd", "litellm", check=False).returncode == 2
    assert node("dpkg", "-s", "haproxy", check=False).returncode != 0


def test_planted_pth_fails_the_install_check(lab_node, tmp_path):
    site = "/tmp/site-pth/venv/lib/python3.11/site-packages"
    node("sh", "-c", f"rm -rf /tmp/site-pth && mkdir -p {site}/pkg && echo 'import _distutils_hack' >"
                     f" {site}/distutils-precedence.pth && touch {site}/pkg/__init__.py")
    verify = {"ansible.builtin.include_role": {"name": "litellm_gateway", "tasks_from": "verify_venv"},
              "vars": {"__litellm_gateway_verify_venv": "/tmp/site-pth/venv"}}
    play = [{"name": "pth check", "hosts": NODE, "gather_facts": False, "tasks": [
        dict(verify, name="A virtualenv with only the allowed .pth files passes"),
        {"name": "Plant a .pth file", "ansible.builtin.copy": {
            "content": "import os; os.system('true')\n", "dest": f"{site}/litellm_init.pth", "mode": "0644"}},
        {"name": "The check again", "block": [dict(verify, name="Check the planted virtualenv")],
         "rescue": [{"name": "Report", "ansible.builtin.debug": {
             "msg": "CAUGHT {{ ansible_failed_result.msg }}"}}]},
        {"name": "It failed", "ansible.builtin.assert": {"that": "ansible_failed_result is defined"}},
    ]}]
    proc = playbook(lab_node, tmp_path, play, check=True)
    assert f"CAUGHT /tmp/site-pth/venv on {NODE} holds unexpected .pth file(s): {site}/litellm_init.pth." \
        in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert "distutils-precedence.pth," not in proc.stdout


def _wheelhouse():
    current = ROOT / ".lab/wheelhouse/current"
    if not current.exists():
        pytest.skip("no lab wheelhouse (make lab-wheelhouse)")
    return ROOT / ".lab/wheelhouse" / current.read_text().strip()


def test_locks_match_the_lab_wheelhouse():
    wheels = _wheelhouse()
    served = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in wheels.glob("*.whl")}
    installed = [line.split("==", 1)[1] for line in (wheels / "versions.txt").read_text().splitlines()
                 if line.startswith("litellm")]
    assert installed
    for version in installed:
        lock = LOCKS / f"litellm-{version}.txt"
        assert lock.exists(), f"the lab installs LiteLLM {version}: no {lock.relative_to(ROOT)}"
        entries = parse_lock(lock.read_text())
        assert entries["litellm"][0] == version
        for name, (pinned, hashes) in entries.items():
            assert hashes, f"{lock.name}: {name} has no hash"
            assert any(h in served for h in hashes), f"{lock.name}: {name}=={pinned} is not what the lab serves"


def test_every_shipped_lock_is_complete():
    locks = sorted(LOCKS.glob("litellm-*.txt"))
    assert locks
    defaults = yaml.safe_load((ROOT / "roles/litellm_gateway/defaults/main.yml").read_text())
    assert (LOCKS / f"litellm-{defaults['litellm_gateway_version']}.txt").exists()
    for lock in locks:
        entries = parse_lock(lock.read_text())
        assert entries["litellm"][0] == lock.stem.split("-", 1)[1]
        assert all(len(h) == 64 for entry in entries.values() for h in entry[1])
        assert all(entry[1] for entry in entries.values()), lock.name
        refused = set(defaults["litellm_gateway_refused_versions"])
        assert entries["litellm"][0] not in refused
    assert json.dumps(defaults["litellm_gateway_refused_versions"]) == '["1.82.7", "1.82.8"]'
