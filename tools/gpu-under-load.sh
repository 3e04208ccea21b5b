#!/usr/bin/env bash
# make demo: run playbooks/gpu.yml (or $DEMO_PLAYBOOK, e.g. playbooks/site.yml) on the lab while the lab's OpenAI client load
# (tests/lab/load_client/gateway_load.py) sends streamed and plain requests through the lab gateway,
# then print what the clients saw. Exits non-zero when the playbook failed or a request failed or was cut.
# Only the lab gateway container is contacted. Usage: tools/gpu-under-load.sh <ansible-playbook args...>
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'touch "$work/stop"; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ip=$(docker inspect -f '{{ (index .NetworkSettings.Networks "onprem-ai-lab").IPAddress }}' lab-gateway-1)
echo "gpu-rollout" > "$work/phase"
LAB_GATEWAY_KEY=$(.venv/bin/python -c 'import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))["litellm_gateway_env"]["LITELLM_MASTER_KEY"])' \
  inventories/lab/group_vars/gateways.yml) \
  .venv/bin/python tests/lab/load_client/gateway_load.py --base-url "http://$ip:4000/v1" --api-key-env LAB_GATEWAY_KEY \
    --model llama-3.1-8b-instruct --phase-file "$work/phase" --stop-file "$work/stop" --max-seconds 1800 \
    --report "$work/report.json" --live "$work/live.json" > "$work/table.txt" 2>&1 &
client=$!
rc=0
# the run's report counts the requests that failed meanwhile from the clients' live counts (maintenance_load_counts)
ansible-playbook "${DEMO_PLAYBOOK:-playbooks/gpu.yml}" -e maintenance_load_counts="$work/live.json" "$@" || rc=$?
touch "$work/stop"
client_rc=0
wait "$client" || client_rc=$?
echo "== what four OpenAI clients saw through the gateway meanwhile (streamed answers cut short count as truncated)"
cat "$work/table.txt"
[ "$rc" -eq 0 ] || exit "$rc"
exit "$client_rc"
