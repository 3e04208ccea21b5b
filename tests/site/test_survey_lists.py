"""AWX surveys pass list answers as text: gpu_stack's list settings accept a JSON list or comma-separated text
(or a list), normalised once at the start of the role (tasks/normalise.yml) and accepted by its argument spec.
Runs on localhost, with the answers given as extra vars, as AWX gives them."""

import json

import pytest
import yaml

from sitelib import ROOT, VENV_BIN, run, tool_env

SPEC = ROOT / "roles/gpu_stack/meta/argument_specs.yml"


@pytest.mark.parametrize("stop, cuda, want_stop, want_cuda", [
    ('["vllm.service", "triton.service"]', "[12.8, \"12.4\"]", ["vllm.service", "triton.service"], ["12.8", "12.4"]),
    ("vllm.service, triton.service", "12.8", ["vllm.service", "triton.service"], ["12.8"]),
    ("", "", [], []),
    (["vllm.service"], ["12.8"], ["vllm.service"], ["12.8"]),
])
def test_list_settings_from_survey_text(tmp_path, stop, cuda, want_stop, want_cuda):
    play = [{"name": "normalise", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "The role's argument spec accepts the answers",
         "ansible.builtin.validate_argument_spec": {
             "argument_spec": yaml.safe_load(SPEC.read_text())["argument_specs"]["main"]["options"],
             "provided_arguments": {"gpu_stack_stop_services": "{{ gpu_stack_stop_services }}",
                                    "gpu_stack_cuda_versions": "{{ gpu_stack_cuda_versions }}"}}},
        {"name": "Normalise", "ansible.builtin.include_role": {"name": "gpu_stack", "tasks_from": "normalise"}},
        {"name": "Result", "ansible.builtin.copy": {
            "content": "{{ {'stop': __gpu_stack_stop_services, 'cuda': __gpu_stack_cuda_versions | map('string') | list}"
                       " | to_json }}",
            "dest": str(tmp_path / "out.json"), "mode": "0644"}},
    ]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    extra = json.dumps({"gpu_stack_stop_services": stop, "gpu_stack_cuda_versions": cuda})
    run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"),
         "-e", extra], cwd=ROOT, env=tool_env(ANSIBLE_ROLES_PATH=str(ROOT / "roles")), timeout=120)
    assert json.loads((tmp_path / "out.json").read_text()) == {"stop": want_stop, "cuda": want_cuda}


def test_role_reads_only_the_normalised_lists():
    """The rollback's service restart loop and the module calls use the normalised names."""
    tasks = (ROOT / "roles/gpu_stack/tasks/main.yml").read_text()
    assert "include_tasks: normalise.yml" in tasks.split("block:")[0]
    for name in ("gpu_stack_stop_services", "gpu_stack_cuda_versions"):
        assert f"{{{{ {name}" not in tasks and f" {name} |" not in tasks, name
    assert 'loop: "{{ __gpu_stack_stop_services }}"' in tasks
