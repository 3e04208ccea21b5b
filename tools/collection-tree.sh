#!/usr/bin/env bash
# Make this checkout usable as the collection onprem_ai.maintenance:
#   link  -> build/collections/ansible_collections/onprem_ai/maintenance is a link to the checkout
#            (what ansible.cfg's collections_path points at: playbooks, molecule, demo);
#   copy  -> build/sanity/ansible_collections/onprem_ai/maintenance is a copy of the tracked and
#            untracked-but-not-ignored files (ansible-test needs a real tree of that name).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-link}
case "$mode" in
  link)
    dir="$root/build/collections/ansible_collections/onprem_ai"
    mkdir -p "$dir"
    ln -sfn ../../../.. "$dir/maintenance"
    ;;
  copy)
    dest="$root/build/sanity/ansible_collections/onprem_ai/maintenance"
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$root" && git ls-files -co --exclude-standard -z) |
      rsync -a --ignore-missing-args --from0 --files-from=- "$root/" "$dest/"
    # The copy lies inside this (git-ignored) checkout: give it a repository of its own, or
    # ansible-test lists its files through the outer repository and finds none.
    git -C "$dest" init -q
    git -C "$dest" add -A
    echo "$dest"
    ;;
  *) echo "usage: $0 link|copy" >&2; exit 2 ;;
esac
