#!/usr/bin/env bash
# The prepared node image: a lab node as tests/lab/provision.yml leaves it (driver 550 and CUDA 12.4
# installed from the simulated NVIDIA repository, the lab programs and units in place), committed once
# and cached by a hash of its inputs like the node image. A scenario's GPU nodes start from it
# (tests/lab/tasks/node_containers.yml) and the provisioning that follows only writes what is each
# node's own (its simulated GPUs, the inference server's settings), instead of installing the stack
# again in every scenario.
#
#   tests/lab/image/prepared.sh          build it unless cached (needs the node image and the lab repo)
#   tests/lab/image/prepared.sh --tag    print its tag when it is built for the current inputs, else
#                                        nothing (then the nodes start from the plain node image)
#
# Inputs: this script and its playbook, the node image, the kernel release (the simulated DKMS modules
# are built for it), the simulated repository's index and signing key, and every lab file the
# provisioning copies or reads.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
repo=onprem-ai-lab/node-prepared
base=${LAB_IMAGE:-onprem-ai-lab/node:latest}
lab=$root/tests/lab
repo_dir=$root/.lab/repo

key() {
  local base_id
  base_id=$(docker image inspect --format '{{.Id}}' "$base" 2>/dev/null) || return 1
  compgen -G "$repo_dir/debian12/*/Packages" >/dev/null || return 1
  [ -f "$repo_dir/lab-nvidia-sim.gpg" ] || return 1
  {
    echo "$base_id $(uname -r)"
    cat "$here/prepared.sh" "$here/prepared.yml" "$repo_dir"/debian12/*/Packages "$repo_dir/lab-nvidia-sim.gpg"
    find "$lab/provision.yml" "$lab/vars" "$lab/templates" "$lab/nvidia_sim" "$lab/inference_server" \
      -type f ! -name '*.pyc' ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 cat
  } | sha256sum | cut -c1-12
}

if [ "${1:-}" = --tag ]; then
  k=$(key) || exit 0
  if docker image inspect "$repo:$k" >/dev/null 2>&1; then echo "$repo:$k"; fi
  exit 0
fi

k=$(key) || { echo "prepared node image: needs $base and the lab repository (make lab-image lab-repo)" >&2; exit 1; }
mkdir -p "$root/.lab"
exec 9>"$root/.lab/prepared.lock"
flock 9  # two builders at once: one builds, the other finds it cached
if docker image inspect "$repo:$k" >/dev/null 2>&1; then
  echo "prepared node image $repo:$k is up to date (cached)"
  exit 0
fi

builder=onprem-ai-lab-prepare-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/onprem-ai-lab-prepare.XXXXXX")
cleanup() {
  docker rm -f "$builder" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "building prepared node image $repo:$k (a lab node provisioned once, about a minute)"
cat >"$work/inventory.yml" <<INV
all:
  children:
    gpu_nodes:
      hosts:
        $builder:
          ansible_connection: community.docker.docker
          ansible_python_interpreter: /usr/bin/python3
INV
# The lab's own definitions: services, the node container, the provisioning.
ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$root/ansible.cfg} ansible-playbook -i "$work/inventory.yml" \
  -e "lab_root=$root" -e "lab_prepared_builder=$builder" \
  "$here/prepared.yml" "$lab/provision.yml" >"$work/provision.log" 2>&1 \
  || { tail -n 40 "$work/provision.log" >&2; echo "prepared node image: provisioning failed" >&2; exit 1; }
# Nothing of the builder's own: an empty machine-id (each node makes its own at boot, as with the node
# image); the node is stopped cleanly (systemd's stop signal) before it is committed.
docker exec "$builder" sh -c ': >/etc/machine-id'
docker stop -t 60 "$builder" >/dev/null
docker commit -m "onprem-ai lab node, provisioned (tests/lab/image/prepared.sh) $k" "$builder" "$repo:$k" >/dev/null
# Older prepared images are not used any more (one still used by a container stays).
docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -vxF "$repo:$k" \
  | xargs -r docker rmi >/dev/null 2>&1 || true
echo "built prepared node image $repo:$k"
