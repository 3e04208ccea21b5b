"""Fixtures of the site checks; the helpers live in sitelib.py (a unique module name, so that these tests
can run in one pytest session with other test directories)."""

import os
import tarfile
from pathlib import Path

import pytest

from sitelib import PLANTED, ROOT, VENV_BIN, checkout_copy, run


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
