"""Fixtures of the site checks; the helpers live in sitelib.py (a unique module name, so that these tests
can run in one pytest session with other test directories)."""

from sitelib import tarball, tools_venv  # noqa: F401 - fixtures
