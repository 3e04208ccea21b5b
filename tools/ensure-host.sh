#!/usr/bin/env bash
# Host set-up for the lab and the tests on a fresh Debian 12 machine (run as root):
# installs the Docker engine, debootstrap and the packaging tools when missing, and starts dockerd
# when it is not running. Idempotent and quick when everything is there.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v apt-ftparchive >/dev/null 2>&1 || need+=(apt-utils)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg-dev)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
# The real Alertmanager the alertmanager_silence tests start on a free loopback port (not as a service).
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# promtool (Debian 12: in the prometheus package) for the monitoring role's rule tests (not as a service).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# llama.cpp's llama-server, the lab's real engine, is built from source (tests/lab/image/llama_server.sh).
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# Debian's python3 needs python3-venv for `python3 -m venv` (the Makefile's virtualenv).
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing host packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "installing host packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's package enables (and under systemd starts) its own service on :9093; the tests never use it.
for unit in prometheus-alertmanager prometheus; do  # prometheus: also on :9090, also never used by the tests
  if [ -e "/etc/systemd/system/multi-user.target.wants/$unit.service" ] && [ "$(id -u)" = 0 ]; then
    if [ -d /run/systemd/system ]; then  # systemd is the init: stop it too (is-system-running fails on 'degraded')
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    else
      systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
  fi
done
if ! command -v docker >/dev/null 2>&1; then
  echo "docker client missing after install" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker
  else
    mkdir -p /var/log
    # setsid: dockerd must outlive the shell (and process group) that started it
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; tail -n 20 /var/log/dockerd.log >&2 || true; exit 1; }
fi
echo "host ready: $(docker version --format 'docker engine {{.Server.Version}}')"
