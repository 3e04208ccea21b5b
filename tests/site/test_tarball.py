"""The built collection tarball: what a site or Galaxy gets, no test lab, no caches; galaxy-importer accepts it."""

import fnmatch
import json
import os
import tarfile

from sitelib import PLANTED, ROOT, run

# Paths (or path prefixes) that only develop or test the collection.
NOT_SHIPPED = [
    "tests/lab", "tests/site", "tests/output", "molecule", "extensions", "tools", ".config", ".ci",
    "inventories/lab", "Makefile", "requirements.txt", "benchmarks", "build", ".venv", ".gi-venv", ".lab",
    "ansible.cfg", "pytest.ini", "bindep.txt", ".gitignore", ".ansible-lint", "collections", "playbooks/awx",
]
# Caches, at any depth.
NO_CACHE = ["*.pyc", "__pycache__", ".pytest_cache", ".ansible", ".cache", ".hypothesis", ".mypy_cache", "*.tar.gz"]


def test_ships_the_collection(tarball):
    members = tarball[1]
    must = ["MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
            "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
            "inventories/example/hosts.yml", "docs/execution-environment.yml", "changelogs/changelog.yaml"]
    must += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "plugins").rglob("*.py")) if "__pycache__" not in p.parts]
    must += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "playbooks").glob("*.yml"))]
    for role in sorted((ROOT / "roles").iterdir()):
        must += [f"roles/{role.name}/README.md", f"roles/{role.name}/meta/main.yml", f"roles/{role.name}/tasks/main.yml"]
    missing = [m for m in must if m not in members]
    assert not missing, f"missing from the tarball: {missing}"


def test_no_test_lab_no_caches(tarball):
    members = tarball[1]
    lab = [m for m in members for p in NOT_SHIPPED if m == p or m.startswith(p + "/")]
    assert not lab, f"development-only files in the tarball: {lab}"
    caches = [m for m in members for part in m.split("/") for pat in NO_CACHE if fnmatch.fnmatch(part, pat)]
    assert not caches, f"caches in the tarball: {caches}"
    planted = [p for p in PLANTED if p in members]
    assert not planted, planted


def test_files_json_lists_every_member(tarball):
    path, members = tarball
    with tarfile.open(path) as tar:
        files = json.load(tar.extractfile("FILES.json"))["files"]
    listed = {f["name"] for f in files} - {"."}
    assert listed == set(members) - {"MANIFEST.json", "FILES.json"}


def test_galaxy_importer_accepts_it(tarball, tools_venv, tmp_path):
    """galaxy-importer as Galaxy runs it (offline: ansible-lint offline, no ansible-test container)."""
    path = tarball[0]
    env = dict(os.environ)
    env["PATH"] = f"{tools_venv}:/usr/local/bin:/usr/bin:/bin"
    env["GALAXY_IMPORTER_CONFIG"] = str(ROOT / "tests/site/galaxy-importer.cfg")
    env["HOME"] = str(tmp_path)
    for key in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH"):
        env.pop(key, None)
    proc = run([str(tools_venv / "python"), "-m", "galaxy_importer.main", "--print-result", str(path)],
               cwd=tmp_path, env=env, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Importer processing completed successfully" in out, out[-8000:]
    # Galaxy shows warnings (ansible-lint findings, a missing changelog) on the collection's page: none.
    warnings = [line for line in out.splitlines() if line.startswith("WARNING") or "WARNING:" in line]
    assert not warnings, "\n".join(warnings)
