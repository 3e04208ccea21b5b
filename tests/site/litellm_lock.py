"""Turn pip's installation report into a lock file with hashes for the litellm_gateway role.

    python3 -m venv /tmp/v
    /tmp/v/bin/pip install --dry-run --ignore-installed --report report.json [--no-index --find-links WHEELS] \
        "litellm[proxy]==VERSION"
    python3 tests/site/litellm_lock.py report.json > roles/litellm_gateway/files/locks/litellm-VERSION.txt

Run pip on the platform the gateway nodes have (same Python minor version and architecture): the report holds
the files pip chose for that platform. The role's locks were made so in a lab node container (Debian 12,
CPython 3.11, x86_64) against the lab wheelhouse (tests/lab/image/wheelhouse.sh), whose wheels are the ones PyPI
publishes (none is built locally), so their hashes are PyPI's.
"""

import json
import sys


def lock_from_report(report):
    env = report["environment"]
    litellm = [i for i in report["install"] if i["metadata"]["name"].lower() == "litellm"]
    if len(litellm) != 1:
        raise SystemExit("the report installs no (or more than one) litellm")
    version = litellm[0]["metadata"]["version"]
    lines = [
        f"# LiteLLM {version} with its proxy extra: every package pinned with its sha256, for",
        "# pip install --require-hashes -r (the litellm_gateway role does so).",
        f"# Resolved by pip for CPython {env['python_version']} on {env['sys_platform']} {env['platform_machine']}"
        " (tests/site/litellm_lock.py).",
    ]
    for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
        name = item["metadata"]["name"].lower().replace("_", "-")
        extras = item.get("requested_extras") or []
        algo, digest = item["download_info"]["archive_info"]["hash"].split("=", 1)
        if algo != "sha256":
            raise SystemExit(f"{name}: hash {algo}, not sha256")
        spec = f"{name}[{','.join(sorted(extras))}]" if extras else name
        lines.append(f"{spec}=={item['metadata']['version']} \\\n    --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def parse_lock(text):
    """{name: (version, [sha256, ...])} of a lock file (continuation lines joined)."""
    entries = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        spec, *opts = line.split()
        name, version = spec.split("==", 1)
        name = name.split("[", 1)[0].lower()
        entries[name] = (version, [o.split("sha256:", 1)[1] for o in opts if o.startswith("--hash=sha256:")])
    return entries


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        sys.stdout.write(lock_from_report(json.load(fh)))
