#!/usr/bin/env bash
# The collection as a site gets it (tests/site): the built tarball (no test lab, no caches) accepted by
# galaxy-importer offline, an execution environment build context from ansible-builder, the README's site
# steps in a fresh clone and from the tarball, AWX as code (playbooks/awx), and fleet_report.yml through
# ansible-runner as AWX runs it against a lab GPU node of its own.
#   tools/site-checks.sh                                          everything (needs make lab-image lab-repo)
#   tools/site-checks.sh --ignore=tests/site/test_runner_lab.py   everything but the lab
# galaxy-importer and ansible-builder go into a separate virtualenv (SITE_TOOLS_VENV, default .gi-venv) made
# here from tests/site/tools-requirements.txt: galaxy-importer pins ansible-lint and attrs below the
# development toolchain's versions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
venv=${SITE_TOOLS_VENV:-$root/.gi-venv}
reqs=tests/site/tools-requirements.txt
if ! cmp -s "$reqs" "$venv/.installed" 2>/dev/null; then
  echo "site-checks: installing galaxy-importer and ansible-builder into $venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$reqs"
  cp "$reqs" "$venv/.installed"
fi
export SITE_TOOLS_VENV="$venv" SITE_CHECKS_STRICT=1
exec python -m pytest -q -p no:cacheprovider tests/site "$@"
