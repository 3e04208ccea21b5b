#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection under .build/sanity/ansible_collections/...
# Works offline: the pip bootstrap script ansible-test would download is replaced by a stand-in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
py=${PYTHON_VERSION:-3.11}
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for v in 24_2 25_0 25_3; do cp "$root/tools/get_pip_standin.py" "$cache/get_pip_$v.py"; done
dest=$("$root/tools/collection-tree.sh" copy)
cd "$dest"
for f in tests/sanity/ignore-*.txt; do
  [ -s "$f" ] && { echo "$f has entries: fix the code instead" >&2; exit 1; }
done
exec ansible-test sanity --local --python "$py" --color no "$@"
