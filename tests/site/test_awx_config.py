"""AWX as code (playbooks/awx): the data configure.yml sends to AWX, checked without an AWX.

Every playbook has a job template; every survey list variable is accepted as JSON or comma-separated text
(rendered by Ansible exactly as a job launched from the template would render it); schedules are valid
rrules of the weekly, monthly and quarterly windows; credential types inject the inventory's vault_* names."""

import json
import re

import pytest
import yaml

from sitelib import ROOT, VENV_BIN, run, tool_env


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
VARS = yaml.load((ROOT / "playbooks/awx/vars.yml").read_text(), Loader=_Loader)
TEMPLATES = VARS["awx_job_templates"]
AWX_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def role_list_options():
    """Variables that some role's argument_specs declares as type list."""
    names = set()
    for spec_file in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            for name, opt in (entry.get("options") or {}).items():
                if opt.get("type") == "list":
                    names.add(name)
    return names


def test_every_playbook_has_a_job_template():
    playbooks = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yml"))
    assert sorted(TEMPLATES) == playbooks
    for key, jt in TEMPLATES.items():
        assert jt["playbook"] == f"playbooks/{key}.yml"
        assert "machine" in jt["credentials"]


def test_surveys_are_valid_and_lists_go_through_text():
    lists = role_list_options()
    for key, jt in TEMPLATES.items():
        variables = [q["variable"] for q in jt["survey"]]
        assert len(variables) == len(set(variables)), key
        for q in jt["survey"]:
            assert q["type"] in AWX_TYPES, q
            assert {"question_name", "variable", "required"} <= set(q), q
            assert q["variable"] not in lists, f"{key}: list variable {q['variable']} asked directly: AWX sends text"
            if "list_of" in q:
                assert q["type"] in ("text", "textarea") and q["variable"] == q["list_of"] + "_text", q
                assert q["list_of"] in lists, f"{q['list_of']} is no role's list option"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The job templates' extra_vars and survey specs as configure.yml renders them, and the list variables
    as a job renders them from several survey answers."""
    tmp = tmp_path_factory.mktemp("awx")
    answers = {"csv": "vllm.service, triton.service", "json": '["vllm.service", "triton.service"]',
               "one": "vllm.service", "empty": "", "spaces": " a ,, b "}
    play = [{
        "name": "Render the AWX objects",
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [str(ROOT / "playbooks/awx/vars.yml")],
        "tasks": [{
            "name": "Write what configure.yml would send",
            "ansible.builtin.copy": {"dest": str(tmp / "{{ item.key }}.json"), "mode": "0600",
                                     "content": "{{ {'extra_vars': ev, 'spec': spec} | to_json }}"},
            "loop": "{{ awx_job_templates | dict2items }}",
            "vars": _configure_task_vars(),
        }],
    }]
    (tmp / "render.yml").write_text(yaml.safe_dump(play))
    run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp / "render.yml")], cwd=tmp)
    out = {p.stem: json.loads(p.read_text()) for p in tmp.glob("*.json")}

    # A job: the template's extra_vars (as AWX stores them) plus a survey answer, read by a play.
    jobs = {}
    for name, text in answers.items():
        extravars = dict(out["gpu"]["extra_vars"])
        extravars.update({"gpu_stack_stop_services_text": text, "gpu_stack_cuda_versions_text": "12.8,12.4"})
        (tmp / f"extravars-{name}.json").write_text(json.dumps(extravars))
        job = [{"name": "A job", "hosts": "localhost", "gather_facts": False, "tasks": [{
            "name": "Write the variables as the play sees them",
            "ansible.builtin.copy": {"dest": str(tmp / f"job-{name}.out"), "mode": "0600",
                                     "content": "{{ {'s': gpu_stack_stop_services,"
                                                " 'c': gpu_stack_cuda_versions} | to_json }}"}}]}]
        (tmp / f"job-{name}.yml").write_text(yaml.safe_dump(job))
        run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
             f"@{tmp / f'extravars-{name}.json'}", str(tmp / f"job-{name}.yml")], cwd=tmp)
        jobs[name] = json.loads((tmp / f"job-{name}.out").read_text())
    return out, jobs


def _configure_task_vars():
    """The vars of configure.yml's job template task (read from the playbook, not copied)."""
    plays = yaml.safe_load((ROOT / "playbooks/awx/configure.yml").read_text())
    task = next(t for t in plays[0]["tasks"] if "awx.awx.job_template" in t)
    v = task["vars"]
    return {"ev": v["awx_job_template_extra_vars"], "spec": v["awx_survey_spec"]}


def test_rendered_surveys_have_only_awx_keys(rendered):
    out = rendered[0]
    assert sorted(out) == sorted(TEMPLATES)
    for key, data in out.items():
        for q in data["spec"]["spec"]:
            assert "list_of" not in q
            assert set(q) <= {"variable", "type", "question_name", "question_description", "required",
                              "default", "min", "max", "choices"}, q
    assert set(out["gpu"]["extra_vars"]) == {"gpu_stack_stop_services", "gpu_stack_cuda_versions"}
    assert out["fleet_report"]["extra_vars"] == {}


def test_list_answers_as_text_or_json(rendered):
    jobs = rendered[1]
    assert jobs["csv"]["s"] == ["vllm.service", "triton.service"]
    assert jobs["json"]["s"] == ["vllm.service", "triton.service"]
    assert jobs["one"]["s"] == ["vllm.service"]
    assert jobs["empty"]["s"] == []
    assert jobs["spaces"]["s"] == ["a", "b"]
    assert jobs["csv"]["c"] == ["12.8", "12.4"]


RRULE = re.compile(r"^DTSTART:\d{8}T\d{6}Z RRULE:FREQ=(WEEKLY|MONTHLY);INTERVAL=(\d+)(;[A-Z]+=[-+0-9A-Z,]+)*$")


def test_schedules_cover_the_windows():
    windows = set()
    for s in VARS["awx_schedules"]:
        m = RRULE.match(s["rrule"])
        assert m, s["rrule"]
        freq, interval = m.group(1), int(m.group(2))
        windows.add({("WEEKLY", 1): "weekly", ("MONTHLY", 1): "monthly", ("MONTHLY", 3): "quarterly"}[(freq, interval)])
        assert s["template"] in TEMPLATES
        survey = {q["variable"]: q for q in TEMPLATES[s["template"]]["survey"]}
        # A schedule answers the template's required questions (an empty default would fail the launch).
        for var, q in survey.items():
            if q["required"] and not str(q.get("default", "")):
                assert var in s["extra_data"], f"{s['name']}: required {var} has no value"
        assert set(s["extra_data"]) <= set(survey), s["name"]
    assert windows == {"weekly", "monthly", "quarterly"}


def test_credential_types_inject_the_inventory_vault_names():
    example = (ROOT / "inventories/example/group_vars/all/vault.example.yml").read_text()
    vault_names = set(re.findall(r"^(vault_\w+):", example, re.M))
    injected = set()
    for ct in VARS["awx_credential_types"]:
        fields = {f["id"] for f in ct["inputs"]["fields"]}
        for var, value in ct["injectors"]["extra_vars"].items():
            assert re.fullmatch(r"\{\{ (\w+) \}\}", value).group(1) in fields
            injected.add(var)
        assert all(f.get("secret") for f in ct["inputs"]["fields"] if "key" in f["id"] and "key_id" not in f["id"]
                   or "password" in f["id"] or "token" in f["id"])
    assert injected == vault_names
    names = {ct["name"] for ct in VARS["awx_credential_types"]}
    for key, jt in TEMPLATES.items():
        known = {c["name"] for c in VARS["awx_credentials"]} | {"machine"}
        assert set(jt["credentials"]) <= known, key
    assert {c["credential_type"] for c in VARS["awx_credentials"]} <= names


def test_configure_playbook_syntax():
    run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
         str(ROOT / "playbooks/awx/configure.yml")], cwd=ROOT)


def test_configure_tasks_pass_awx_argument_checks(tmp_path):
    """Every task of configure.yml, run against a closed port: awx.awx validates its arguments before it
    connects, so each must fail only for the connection (no unsupported or missing parameter)."""
    plays = yaml.load((ROOT / "playbooks/awx/configure.yml").read_text(), Loader=_Loader)
    tasks = []
    for number, task in enumerate(plays[0]["tasks"]):
        task = dict(task)
        task.pop("no_log", None)  # the test's fake secrets only; the real task keeps no_log
        task.pop("when", None)
        task.update({"ignore_errors": True, "register": f"awx_task_{number}"})
        tasks.append(task)
    names = [f"awx_task_{n}" for n in range(len(tasks))]
    tasks.append({"name": "Results", "ansible.builtin.copy": {
        "dest": str(tmp_path / "results.json"), "mode": "0600",
        "content": "{{ %s | to_json }}" % ("[" + ", ".join(names) + "]")}})
    plays[0]["tasks"] = tasks
    plays[0]["vars_files"] = [str(ROOT / "playbooks/awx/vars.yml")]
    (tmp_path / "configure.yml").write_text(yaml.safe_dump(plays))
    secrets = {"awx_litellm_master_key": "test-master", "awx_restic_password": "test-restic",
               "awx_hf_token": "test-hf", "awx_execution_environment_image": "registry.example.internal/ee:1"}
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    env = dict(tool_env(), CONTROLLER_HOST="http://127.0.0.1:9", CONTROLLER_OAUTH_TOKEN="test-token",
               CONTROLLER_VERIFY_SSL="false")
    run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'secrets.json'}",
         str(tmp_path / "configure.yml")], cwd=tmp_path, env=env, timeout=300)
    results = json.loads((tmp_path / "results.json").read_text())
    messages = []
    for result in results:
        for item in result.get("results", [result]):
            assert item.get("failed"), item
            messages.append(item.get("msg", ""))
    bad = [m for m in messages if re.search(r"[Uu]nsupported param|missing required|not a valid|must be one of", m)]
    assert not bad, bad
    assert all(re.search(r"[Cc]onnection refused|[Ff]ailed to|Errno 111", m) for m in messages), messages
    assert len(messages) >= 1 + 1 + 1 + 1 + 3 + 3 + 4 + 4
