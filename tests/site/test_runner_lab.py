"""playbooks/fleet_report.yml through ansible-runner the way AWX runs a job, against a lab GPU node.

AWX hands ansible-runner a private data directory: project/ (the synced project, with the collection
installed from collections/requirements.yml into a separate path), inventory/, env/extravars (the job
template's extra vars and the survey answers), env/envvars, env/settings; it reads artifacts/<id>/ back
(rc, status, stdout, job_events/ - the stats event carries set_stats as the job's artifacts).

The node is the site checks' lab GPU node (site-runner-gpu-1, the lab_node fixture of conftest.py)."""

import json
import shutil

from sitelib import NODE, VENV_BIN, checkout_copy, run, tool_env


def test_fleet_report_as_an_awx_job(lab_node, tmp_path):
    pdd = tmp_path / "job"
    project = checkout_copy(pdd / "project")
    shutil.rmtree(project / "build", ignore_errors=True)
    # The project sync: AWX installs collections/requirements.yml into a path of its own.
    collections = pdd / "requirements_collections"
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
         "--collections-path", str(collections)], cwd=project, env=tool_env(HOME=str(tmp_path)))
    (pdd / "inventory").mkdir()
    shutil.copy(lab_node, pdd / "inventory/hosts.yml")
    (pdd / "env").mkdir()
    # The job template's extra vars and survey defaults, as configure.yml defines them (none for this one),
    # plus a launch variable, as AWX writes them.
    extravars = {"awx_job_template_name": "onprem_ai fleet report"}
    (pdd / "env/extravars").write_text(json.dumps(extravars))
    (pdd / "env/envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(collections),
                                                 "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}))
    (pdd / "env/settings").write_text(json.dumps({"job_timeout": 300, "idle_timeout": 240}))
    env = tool_env(HOME=str(tmp_path))
    proc = run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", "playbooks/fleet_report.yml",
                "--ident", "job-1"], cwd=tmp_path, env=env, timeout=400, check=False)
    artifacts = pdd / "artifacts/job-1"
    stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else proc.stdout
    assert proc.returncode == 0, stdout[-6000:] + proc.stderr[-3000:]
    assert (artifacts / "rc").read_text().strip() == "0"
    assert (artifacts / "status").read_text().strip() == "successful"
    assert f"{NODE} " in stdout and "550.127.08" in stdout, stdout[-4000:]

    events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]
    names = [e.get("event") for e in events]
    assert names[0] == "playbook_on_start" and "playbook_on_stats" in names
    ok = [e for e in events if e.get("event") == "runner_on_ok"
          and e["event_data"].get("task_action") == "onprem_ai.maintenance.gpu_info"]
    assert ok and ok[0]["event_data"]["host"] == NODE
    report = ok[0]["event_data"]["res"]
    assert report["driver"]["loaded_version"] == "550.127.08" and report["gpu_count"] == 2
    stats = next(e for e in events if e.get("event") == "playbook_on_stats")
    # set_stats: what AWX stores as the job's artifacts and passes down a workflow.
    assert stats["event_data"]["artifact_data"] == {"fleet_report_verdicts": {NODE: "ok"}}
    assert stats["event_data"]["failures"] == {} and stats["event_data"]["dark"] == {}
    # The extra vars went to ansible-playbook as AWX's do (-e @env/extravars).
    command = json.loads((artifacts / "command").read_text())["command"]
    assert any(arg.endswith("env/extravars") for arg in command), command
