"""The backup role's restore progress reader (roles/backup/files/restore_progress.py) against a real restic
restore on this machine: a local repository, a restore slowed down with --limit-download, progress read while
it runs (bytes written by restic against the snapshot's restore size) and after it ends."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from sitelib import ROOT

READER = ROOT / "roles/backup/files/restore_progress.py"


def test_progress_of_a_running_restore(tmp_path):
    if not shutil.which("restic"):
        pytest.skip("no restic on this machine")
    env = dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / "repo"), RESTIC_PASSWORD="site-progress", LC_ALL="C")
    subprocess.run(["restic", "init", "-q"], env=env, check=True, timeout=60)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/model.bin").write_bytes(os.urandom(48 * 1024 * 1024))
    subprocess.run(["restic", "backup", "-q", str(tmp_path / "src")], env=env, check=True, timeout=120)
    size = subprocess.run([sys.executable, str(READER), "size", "latest"], input=json.dumps(
        {"RESTIC_REPOSITORY": env["RESTIC_REPOSITORY"], "RESTIC_PASSWORD": env["RESTIC_PASSWORD"]}),
        capture_output=True, text=True, check=True, timeout=120)
    total = json.loads(size.stdout)["total_size"]
    assert total == 48 * 1024 * 1024
    target = str(tmp_path / "out")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"started": 1, "finished": 0}))  # Ansible's async placeholder
    started = time.time()
    restore = subprocess.Popen(["restic", "restore", "latest", "--target", target, "-q", "--limit-download", "8192"],
                               env=env)
    try:
        states = []
        for dummy in range(30):  # bounded: a few seconds at 8 MiB/s
            proc = subprocess.run([sys.executable, str(READER), "progress", "--target", target, "--started",
                                   str(started), "--total", str(total), "--wait", "1", "--file",
                                   str(tmp_path / "progress.json"), "--job", str(job)],
                                  capture_output=True, text=True, check=True, timeout=60)
            states.append(json.loads(proc.stdout))
            if restore.poll() is not None:
                break
    finally:
        restore.wait(timeout=120)
    running = [s for s in states if s["phase"] == "restoring"]
    assert running, states
    assert 0 < running[0]["bytes"] < total and running[0]["rate"] > 0 and running[0]["eta_seconds"] is not None
    assert " of 48.0 MiB (" in running[0]["message"] and "ETA" in running[0]["message"]
    assert json.loads((tmp_path / "progress.json").read_text())["target"] == target
    # Once the job's results file holds the module's result, the reader returns at once.
    job.write_text(json.dumps({"changed": True}))
    begun = time.monotonic()
    proc = subprocess.run([sys.executable, str(READER), "progress", "--target", target, "--started", str(started),
                           "--total", str(total), "--wait", "30", "--job", str(job)], check=True, timeout=60,
                          capture_output=True, text=True)
    assert time.monotonic() - begun < 10
    assert json.loads(proc.stdout)["phase"] == "finished"
