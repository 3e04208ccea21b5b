"""The collection's proxy / package index settings (docs/proxy.md) reach every download.

Static: every task of roles/ that downloads (pip, get_url, package managers, the NVIDIA and CUDA modules, restic,
model pulls) gets the onprem_ai_* settings, through its own or an enclosing block's environment, or (restic) the
module's env option. On the lab node: the gateway role's pip install goes through the proxy to the package index
it is given - a recording proxy on the node's loopback sees pip's request for the index.
"""

import json
import re
import time

import yaml

from sitelib import NODE, ROOT, VENV_BIN, run, tool_env

DOWNLOADERS = {
    "ansible.builtin.pip", "ansible.builtin.get_url", "ansible.builtin.package", "ansible.builtin.apt",
    "ansible.builtin.dnf", "ansible.builtin.yum", "ansible.builtin.rpm_key", "ansible.builtin.apt_key",
    "ansible.builtin.apt_repository", "ansible.builtin.yum_repository", "ansible.builtin.deb822_repository",
    "ansible.builtin.unarchive", "onprem_ai.maintenance.nvidia_driver", "onprem_ai.maintenance.cuda_toolkit",
    "onprem_ai.maintenance.backup_snapshot", "onprem_ai.maintenance.model_pull",
}
KEYWORDS = {"name", "when", "vars", "register", "environment", "loop", "loop_control", "notify", "tags", "no_log",
            "block", "rescue", "always", "changed_when", "failed_when", "until", "retries", "delay", "become",
            "check_mode", "async", "poll", "delegate_to", "run_once", "ignore_errors", "listen", "throttle"}
NAME = re.compile(r"\b(_*[a-z][a-z0-9_]*)\b")


def _definitions(role):
    """Variables of a role (defaults, vars, set_fact anywhere in its tasks) as text, by name."""
    defs = {}
    for path in [*role.glob("defaults/*.yml"), *role.glob("vars/*.yml")]:
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            defs[key] = defs.get(key, "") + json.dumps(value)
    for path in role.glob("tasks/*.yml"):
        for task in _walk(yaml.safe_load(path.read_text()) or [], ""):
            for key, value in (task[0].get("ansible.builtin.set_fact") or {}).items():
                defs[key] = defs.get(key, "") + json.dumps(value)
    return defs


def _walk(tasks, inherited):
    for task in tasks:
        env = inherited + json.dumps(task.get("environment", ""))
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from _walk(task.get(part) or [], env)
        else:
            yield task, env


def _expand(text, defs, rounds=4):
    for dummy in range(rounds):
        text += "".join(defs.get(n, "") for n in set(NAME.findall(text)))
    return text


def _download_tasks():
    found = []
    for role in sorted((ROOT / "roles").iterdir()):
        defs = _definitions(role)
        for path in sorted(role.glob("tasks/*.yml")):
            for task, env in _walk(yaml.safe_load(path.read_text()) or [], ""):
                action = next((k for k in task if k not in KEYWORDS), None)
                if action in DOWNLOADERS:
                    own = json.dumps({k: v for k, v in task.items() if k not in ("name", "when", "loop")})
                    found.append((f"{path.relative_to(ROOT)}: {task.get('name')}", action, _expand(own + env, defs)))
    return found


def test_every_download_gets_the_proxy_settings():
    tasks = _download_tasks()
    actions = {task[1] for task in tasks}
    assert {"ansible.builtin.pip", "onprem_ai.maintenance.nvidia_driver", "onprem_ai.maintenance.backup_snapshot",
            "ansible.builtin.package"} <= actions, actions
    missing = [name for name, dummy, text in tasks
               if not all(v in text for v in ("onprem_ai_http_proxy", "onprem_ai_https_proxy", "onprem_ai_no_proxy"))]
    assert not missing, f"downloads without the proxy settings (docs/proxy.md): {missing}"
    pip = [name for name, action, text in tasks if action == "ansible.builtin.pip"
           and not all(v in text for v in ("onprem_ai_pip_index_url", "onprem_ai_pip_find_links", "onprem_ai_ca_bundle"))]
    assert not pip, f"pip installs without the package index settings: {pip}"


def test_proxy_settings_are_documented_once():
    doc = (ROOT / "docs/proxy.md").read_text()
    names = ["onprem_ai_http_proxy", "onprem_ai_https_proxy", "onprem_ai_no_proxy", "onprem_ai_ca_bundle",
             "onprem_ai_pip_index_url", "onprem_ai_pip_find_links"]
    example = yaml.safe_load((ROOT / "inventories/example/group_vars/all/main.yml").read_text())
    for name in names:
        assert f"`{name}`" in doc
        assert example[name] == ""
    assert "docs/proxy.md" in (ROOT / "README.md").read_text()
    assert "proxy.md" in (ROOT / "docs/site.md").read_text()


def test_pip_goes_through_the_proxy_to_the_index(lab_node, tmp_path):
    """The role's pip install (tasks/venv.yml, after supply_chain.yml) on the lab node, with the proxy set to a
    recorder on the node's loopback (python3 -m http.server: it logs the request and answers 404, so pip fails)."""
    # The pip module needs python3-packaging, which the role's OS package step installs (without the proxy here).
    run(["docker", "exec", NODE, "sh", "-c", "rm -rf /tmp/site-proxy && mkdir -p /tmp/site-proxy/rec && "
         "{ python3 -c 'import packaging' 2>/dev/null || { apt-get update -qq && "
         "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-packaging >/dev/null; }; }"],
        cwd=ROOT, timeout=300)
    run(["docker", "exec", "-d", NODE, "sh", "-c", "cd /tmp/site-proxy/rec && echo $$ > ../pid && "
         "exec python3 -u -m http.server 3129 --bind 127.0.0.1 > ../log 2>&1"], cwd=ROOT, timeout=60)
    index = "http://pypi.site-test.invalid/simple/"
    play = [{"name": "pip through the proxy", "hosts": NODE, "gather_facts": False,
             "vars": {"litellm_gateway_install_dir": "/tmp/site-proxy/opt",
                      "onprem_ai_http_proxy": "http://127.0.0.1:3129",
                      "onprem_ai_https_proxy": "http://127.0.0.1:3129",
                      "onprem_ai_pip_index_url": index},
             "tasks": [
                 {"name": "Recorder up", "ansible.builtin.wait_for": {"port": 3129, "host": "127.0.0.1", "timeout": 30}},
                 {"name": "Lock", "ansible.builtin.include_role": {"name": "litellm_gateway",
                                                                   "tasks_from": "supply_chain"}},
                 {"name": "Install", "block": [{"name": "Virtualenv", "ansible.builtin.include_role": {
                     "name": "litellm_gateway", "tasks_from": "venv"}}],
                  "rescue": [{"name": "Report", "ansible.builtin.debug": {
                      "msg": "CAUGHT {{ ansible_failed_result.cmd | default('') }} {{ ansible_failed_result.msg | default('') }}"}}]}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = tool_env(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    try:
        proc = run([str(VENV_BIN / "ansible-playbook"), "-i", str(lab_node), str(tmp_path / "play.yml")],
                   cwd=ROOT, env=env, timeout=300)
        log = ""
        for dummy in range(20):  # the recorder's log is written by another process: bounded wait for its line
            log = run(["docker", "exec", NODE, "cat", "/tmp/site-proxy/log"], cwd=ROOT, timeout=60).stdout
            if index in log:
                break
            time.sleep(0.5)
    finally:
        run(["docker", "exec", NODE, "sh", "-c", "kill $(cat /tmp/site-proxy/pid)"], cwd=ROOT, timeout=60,
            check=False)
    assert "CAUGHT" in proc.stdout and "--require-hashes" in proc.stdout, proc.stdout[-3000:]
    assert re.search(r'"GET http://pypi\.site-test\.invalid/simple/[a-z0-9-]+/ HTTP/1\.[01]" 404', log), \
        f"recorder log: {log[-2000:]!r}\n{proc.stdout[-4000:]}"
