"""Execution environment: `ansible-builder create` makes a build context offline, and the collection's
own dependencies (meta/execution-environment.yml) bring nothing of the development toolchain."""

import shutil

import yaml

from sitelib import ROOT, VENV_BIN, run

DEV_ONLY = ("molecule", "testinfra", "pytest", "openai", "hypothesis", "ansible-lint", "antsibull", "docker")


def test_collection_ee_metadata_names_existing_files():
    meta = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text())
    deps = meta["dependencies"]
    assert set(deps) <= {"python", "system", "ansible_core", "ansible_runner"}
    for key in ("python", "system"):
        assert (ROOT / deps[key]).is_file(), deps[key]


def test_builder_create_and_introspect(tarball, tools_venv, tmp_path):
    """The site example builds a context offline; the builder's own introspection, run on the collection
    installed from the tarball, yields exactly the collection's controller requirements."""
    path = tarball[0]
    shutil.copy(ROOT / "docs/execution-environment.yml", tmp_path / "execution-environment.yml")
    shutil.copy(path, tmp_path / path.name)
    run([str(tools_venv / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
         "--output-filename", "Containerfile"], cwd=tmp_path, timeout=120)
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect" in containerfile
    assert (context / "_build/collections" / path.name).is_file(), "the tarball is not in the build context"
    reqs = yaml.safe_load((context / "_build/requirements.yml").read_text())
    names = [c["name"] for c in reqs["collections"]]
    assert names == [f"collections/{path.name}"], names
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile

    # What the builder's introspection (run inside the build) reads from the installed collection.
    collections = tmp_path / "collections"
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections),
         str(path)], cwd=tmp_path)
    run([str(tools_venv / "python"), str(context / "_build/scripts/introspect.py"), "introspect", "--sanitize",
         str(collections), "--write-pip", str(tmp_path / "pip.txt"), "--write-bindep", str(tmp_path / "bindep.txt")],
        cwd=tmp_path)
    pip = (tmp_path / "pip.txt").read_text()
    bindep = (tmp_path / "bindep.txt").read_text()
    assert "onprem_ai.maintenance" in pip and "jinja2" in pip and "prometheus-client" in pip, pip
    assert "openssh-clients" in bindep, bindep
    lowered = pip.lower()
    leaked = [name for name in DEV_ONLY if name in lowered]
    assert not leaked, f"development tools in the EE requirements: {leaked}\n{pip}"
