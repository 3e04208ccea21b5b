"""README "Using it on your site", followed literally in a fresh `git clone` and on the built tarball.

The steps are read from the README's fenced blocks after `<!-- site-steps:... -->`, so the README cannot drift
from what works. Only what this machine cannot do is changed: the clone URL is this checkout, `pip install`
is checked against the development virtualenv instead of run, and ansible-playbook only syntax-checks (the
example hosts do not exist). Nothing comes from Galaxy. A checkout with uncommitted changes is tested with
them: its tracked and untracked-not-ignored files are copied over the clone."""

import re
import shutil
import subprocess

import yaml

from sitelib import ROOT, VENV_BIN, checkout_copy, run, tool_env

README = (ROOT / "README.md").read_text()


def site_steps(name):
    m = re.search(r"<!-- site-steps:%s\b[^>]*-->\s*```sh\n(.*?)\n```" % re.escape(name), README, re.S)
    assert m, f"README has no site-steps:{name} block"
    return m.group(1).replace("\\\n", " ").splitlines()


def adapt(line, url=None, tarball=None):
    """The README's line as this machine runs it (see the module docstring)."""
    if url:
        line = re.sub(r"git clone \S+", f"git clone -q {url}", line)
    if tarball:
        line = re.sub(r"\S*onprem_ai-maintenance-[0-9.]+\.tar\.gz", str(tarball), line)
    if line.startswith("python3 -m pip install "):
        pins = re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s]*)", line.split("#")[0])
        assert pins, line
        checks = [f"python -m pip show -q {name} | grep -x 'Version: {version}'" for name, version in pins]
        return " && ".join(checks) + f"   # was: {line}"
    if line.startswith("ansible-playbook "):
        line = line.split("#")[0].rstrip() + " --syntax-check"
    return line


def run_steps(lines, cwd, tmp_path, extra=""):
    script = "set -euxo pipefail\n" + "\n".join(lines) + "\n" + extra
    env = tool_env(HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)
    proc = subprocess.run(["bash", "-c", script], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, f"README steps failed\n--- script\n{script}\n--- stdout\n{proc.stdout[-6000:]}" \
                                 f"\n--- stderr\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


CHECKS = """
ansible-inventory -i inventories/mysite --graph | grep gpu_nodes
ansible-inventory -i inventories/mysite --graph | grep gateways
ansible-inventory -i inventories/mysite --graph | grep backup
for p in gpu gateway dr; do ansible-playbook -i inventories/mysite onprem_ai.maintenance.$p --syntax-check; done
for r in gpu_stack models litellm_gateway backup rollout; do ansible-doc -t role onprem_ai.maintenance.$r >/dev/null; done
"""


def test_from_a_fresh_clone(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    lines = [adapt(line, url=str(ROOT)) for line in site_steps("clone")]
    clone_dir = re.search(r"git clone \S+ \S+ (\S+)", lines[0]).group(1)
    # A dirty checkout: overlay its current files on the clone right after `git clone`.
    first = lines[0].split("&&")
    overlay = f"cp -a {tmp_path}/overlay/. {clone_dir}/"
    checkout_copy(tmp_path / "overlay")
    lines[0] = " && ".join([first[0].strip(), overlay] + [p.strip() for p in first[1:]])
    out = run_steps(lines, site, tmp_path, CHECKS)
    clone = site / clone_dir
    installed = clone / "build/collections/ansible_collections/onprem_ai/maintenance"
    assert (installed / "MANIFEST.json").is_file() and not installed.is_symlink(), out[-3000:]
    assert not (installed / "tests/lab").exists() and not (installed / "molecule").exists()
    assert "onprem_ai/maintenance/playbooks/fleet_report.yml" in out, out[-3000:]
    assert "GPU" in out  # ansible-doc of gpu_info rendered


def test_from_the_tarball(tarball, tmp_path):
    path = tarball[0]
    site = tmp_path / "site"
    site.mkdir()
    lines = [adapt(line, tarball=path) for line in site_steps("tarball")]
    out = run_steps(lines, site, tmp_path, CHECKS)
    assert (site / "collections/ansible_collections/onprem_ai/maintenance/MANIFEST.json").is_file()
    assert "onprem_ai/maintenance/playbooks/fleet_report.yml" in out, out[-3000:]


def test_awx_project_sync(tmp_path):
    """What an AWX project sync runs (ansible-galaxy in the project directory, into a separate path) brings
    the collection, so a job template's playbooks/*.yml resolve onprem_ai.maintenance.*."""
    project = checkout_copy(tmp_path / "project")
    req = yaml.safe_load((project / "collections/requirements.yml").read_text())
    assert req["collections"][0] == {"name": ".", "type": "dir"}
    dest = tmp_path / "requirements_collections"
    env = tool_env(HOME=str(tmp_path), ANSIBLE_COLLECTIONS_PATH=str(dest))
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
         "--collections-path", str(dest)], cwd=project, env=env)
    assert (dest / "ansible_collections/onprem_ai/maintenance/plugins/modules/gpu_info.py").is_file()
    shutil.rmtree(project / "build", ignore_errors=True)
    for playbook in sorted((project / "playbooks").glob("*.yml")):
        run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "inventories/example",
             str(playbook.relative_to(project))], cwd=project,
            env=tool_env(HOME=str(tmp_path), ANSIBLE_COLLECTIONS_PATH=str(dest)))
