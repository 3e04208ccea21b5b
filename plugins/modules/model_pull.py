#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: model_pull
short_description: Pull a pinned model version into a versioned store, switch to it atomically, roll back
version_added: 0.1.0
description:
  - Keeps every version of a model in its own directory C(<dest_root>/<name>/<version>/) with a C(.manifest.json)
    (files, sizes, sha256, content digest), and a stable C(<dest_root>/<name>/current) symlink that the serving
    engine uses (for example C(vllm serve /var/lib/onprem_ai/models/llama/current)).
  - Pins every file by its sha256. Files are downloaded into C(<name>/.staging/<version>/) as C(.partial) files,
    resumed after a cut connection, within the run and across runs, only with HTTP C(Range) plus C(If-Range) carrying
    the strong ETag (or Last-Modified date) of the response that started the partial (recorded next to it in
    C(<file>.partial.meta), mode 0600, URL without credentials or query). A changed ETag restarts from byte 0.
  - One lock per model (C(<dest_root>/.<name>.lock), flock) is held for the whole run, so two runs of the same model
    never write the same files; a second run waits up to O(lock_timeout), then finds the version already verified.
  - What is verified before C(current) moves - the sha256 of the file as read back from the file system (a thread
    reads the file back behind the writer, from its first byte, also for a resumed part), after fsync, and the size
    on disk equal to the bytes hashed and to the expected size. A file that does not match is discarded and never
    becomes current.
  - With a known size (O(files[].size), or announced by the server), writing stops at that size and more bytes are an
    error. When the disk fills up (ENOSPC) the C(.partial) is removed, to free the space, and the run fails.
  - Only C(http://) and C(https://) URLs. Credentials (O(token), O(headers)) are sent to the origin (scheme, host,
    port) of the given URL only and dropped for the rest of a redirect chain that leaves it; a redirect from https to
    plain http is refused. User info and query strings of URLs (presigned URLs) are removed from the manifest,
    messages and results.
  - Model and version names are directory names next to C(current), C(state.json) and C(.staging), so they are
    whitelisted - 1 to 128 letters, digits, C(.), C(_), C(+) or C(-), starting with a letter or digit, not C(current)
    or C(state), not ending in C(.json), C(.partial), C(.meta), C(.tmp) or C(.lock).
  - Checks the free disk space against the sizes the source announces before any byte is written.
  - Switches C(current) only after verification, atomically (a new symlink renamed over the old one), keeps
    O(keep) previous versions and removes older ones; O(state=previous) switches back to the version that was
    current before.
  - A version already present is recognised from its manifest (file presence and sizes) without re-hashing;
    O(verify=full) re-hashes every file.
author:
  - onprem_ai maintenance engineers (@onprem-ai)
extends_documentation_fragment:
  - onprem_ai.maintenance.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be pulled (RV(files), RV(bytes_to_transfer)) after the disk-space check, and changes nothing.
  diff_mode:
    support: none
options:
  name:
    description:
      - Name of the model in the store (a directory name, see the naming rule above).
    type: str
    required: true
  version:
    description:
      - Version name, a directory name of your choice (a release, a date, a commit; see the naming rule above). Versions
        are immutable; the same version with other files or checksums is refused.
      - Required with O(state=present). With O(state=absent), the version to remove; without it the whole model.
    type: str
  source:
    description:
      - Where the files come from.
      - V(http) plain HTTP(S) files pinned by sha256 (O(url) and O(sha256), or O(files)).
      - V(hf) a Hugging Face Hub repository (O(model)) at a commit (O(revision)) through C(huggingface_hub) on the
        target, into the versioned store; every file is checked against the sha256 (LFS) or git blob id the Hub lists.
      - V(ollama) a model pulled by the Ollama server of the node through its HTTP API (O(ollama_url)). Versions are the
        tags C(<name>:<version>), the serving name is C(<name>:<serving_tag>) (switched with C(/api/copy)); the pulled
        tag is copied to a backup tag before the pull (Ollama overwrites a tag in place) and restored when the pull fails
        or the digest (O(digest)) does not match. The record lives under O(dest_root).
    type: str
    choices: [http, hf, ollama]
    default: http
  model:
    description:
      - V(hf) the repository id (C(org/name)). V(ollama) the model to pull (C(llama3.1:8b)).
    type: str
  revision:
    description:
      - V(hf) the commit sha to pin (a branch or tag name is resolved now, with a warning).
    type: str
  allow_patterns:
    description:
      - V(hf) only files matching one of these glob patterns.
    type: list
    elements: str
  ignore_patterns:
    description:
      - V(hf) leave out files matching one of these glob patterns.
    type: list
    elements: str
  endpoint:
    description:
      - V(hf) the Hub endpoint, for a private mirror (what C(HF_ENDPOINT) sets). Default C(https://huggingface.co) or C(HF_ENDPOINT) on the target.
      - V(hf) downloads go through C(huggingface_hub) (C(requests)), which drops C(Authorization) when a redirect changes
        the host or goes from https to http.
    type: str
  max_workers:
    description:
      - V(hf) parallel file downloads (1 to 64).
    type: int
    default: 8
  digest:
    description:
      - V(ollama) the expected manifest digest (as C(/api/tags) reports it). A pulled model with another digest is discarded.
    type: str
  ollama_url:
    description:
      - V(ollama) base URL of the Ollama API on the node.
    type: str
    default: http://127.0.0.1:11434
  serving_tag:
    description:
      - V(ollama) the tag of the stable serving name C(<name>:<serving_tag>).
    type: str
    default: latest
  ollama_models_dir:
    description:
      - V(ollama) where Ollama keeps its blobs (C(OLLAMA_MODELS)), for the disk-space check with O(size).
    type: path
    default: /usr/share/ollama/.ollama/models
  size:
    description:
      - V(ollama) the size in bytes of the model, for the disk-space check (the Ollama API announces none before a pull).
    type: int
  url:
    description:
      - URL of a single-file model (with O(sha256)), C(http://) or C(https://). Use O(files) for several files.
    type: str
  sha256:
    description:
      - sha256 of the file at O(url) (64 hex digits, optionally prefixed C(sha256:)).
    type: str
  files:
    description:
      - Files of the model.
    type: list
    elements: dict
    suboptions:
      url:
        description: URL of the file.
        type: str
        required: true
      sha256:
        description: sha256 of the file.
        type: str
        required: true
      path:
        description: Path of the file inside the version directory; the last URL component by default.
        type: str
      size:
        description: Size in bytes, when the server does not announce it (used by the disk-space check).
        type: int
  dest_root:
    description:
      - Root of the model store.
    type: path
    default: /var/lib/onprem_ai/models
  keep:
    description:
      - How many previous versions to keep besides the current one (0 to 1000); older ones are removed after a switch.
    type: int
    default: 1
  state:
    description:
      - V(present) ensures O(version) is in the store and (with O(activate)) current.
      - V(previous) switches C(current) back to the version that was current before the last switch.
      - V(absent) removes O(version) (never the current one), or the whole model without O(version).
    type: str
    choices: [present, previous, absent]
    default: present
  activate:
    description:
      - Switch C(current) to O(version) once it is verified. V(false) only stages the version.
    type: bool
    default: true
  verify:
    description:
      - V(quick) recognises a present version from its manifest (files present with the recorded sizes).
      - V(full) re-hashes every file of the version.
    type: str
    choices: [quick, full]
    default: quick
  free_space_margin:
    description:
      - MiB that must remain free after the download (0 or more).
    type: int
    default: 256
  headers:
    description:
      - Extra HTTP headers, a dict (a JSON object string or C(k=v k2=v2) string is parsed by the module, and its values are
        masked once parsed). Not logged; values with control characters are refused. Sent to the first origin only.
    type: raw
  token:
    description:
      - Bearer token sent as C(Authorization). Not logged, and removed from error messages.
      - Leading and trailing white space (a newline from a file lookup) is removed; a control character inside the token
        is refused with a message that does not quote it.
    type: str
  validate_certs:
    description:
      - Verify TLS certificates.
    type: bool
    default: true
  ca_path:
    description:
      - An extra CA bundle (PEM file on the target) trusted besides the system's certificates, for a site mirror or a
        TLS-inspecting proxy (the collection-wide C(onprem_ai_ca_bundle)). V(hf) is given a bundle of both.
    type: path
  http_proxy:
    description:
      - Proxy for C(http://) URLs (C(http://[user:password@]host:port)). When any of O(http_proxy), O(https_proxy) or
        O(no_proxy) is given, they replace the C(http_proxy), C(https_proxy) and C(no_proxy) environment of the target;
        otherwise that environment applies (urllib's rules).
      - The proxy's credentials are sent to the proxy only (C(Proxy-Authorization), on the C(CONNECT) of an https
        tunnel) and masked in every message and result. Credentials of the source (O(token), O(headers)) still go to the
        origin of the URL given only.
    type: str
  https_proxy:
    description:
      - Proxy for C(https://) URLs (an https tunnel through C(CONNECT)); see O(http_proxy).
    type: str
  no_proxy:
    description:
      - Comma-separated host names, domains or addresses reached without the proxy; see O(http_proxy).
    type: str
  progress_file:
    description:
      - A JSON file where the run writes its progress (state V(running), V(done) or V(failed), phase, bytes done and
        total, rate, ETA and a C(line) for people), atomically, mode C(0600), every O(progress_interval) seconds and
        at each phase. It holds the model name, version and phase, never a URL or a credential.
      - For long pulls run with C(async); the C(onprem_ai.maintenance.models) role polls it and prints the progress.
      - Also written in check mode and on failure (V(failed)).
    type: path
  progress_interval:
    description:
      - Seconds between two writes of O(progress_file) (1 to 3600).
    type: int
    default: 5
  timeout:
    description:
      - Seconds to wait for the server on each request (1 to 86400).
    type: int
    default: 60
  retries:
    description:
      - How many times an interrupted transfer is resumed within one run (0 to 100).
    type: int
    default: 3
  lock_timeout:
    description:
      - Seconds to wait for the lock of the model held by another run (0 to 604800); then the run fails and changes nothing.
    type: int
    default: 3600
notes:
  - Sources V(http) and V(ollama) need no Python library beyond the standard library on the target.
requirements:
  - huggingface_hub on the target for O(source=hf).
seealso:
  - module: onprem_ai.maintenance.nvidia_driver
'''

EXAMPLES = r'''
- name: Pull a pinned GGUF file and make it current
  onprem_ai.maintenance.model_pull:
    name: qwen2.5-7b-instruct
    version: "2026-11-01"
    url: https://models.example.internal/qwen2.5-7b-instruct-q4_k_m.gguf
    sha256: 0b4fa2a8f5e0e4d3b1f6c0c65ec6b8a1e14f61a2bdf1f8b0d0c9d6b2a7d4e9f1
  register: model

- name: A model made of several files, behind a token
  onprem_ai.maintenance.model_pull:
    name: llama-3-8b
    version: r2
    token: "{{ vault_model_mirror_token }}"
    files:
      - url: https://mirror.example.internal/llama-3-8b/r2/config.json
        sha256: "{{ llama_sha.config }}"
      - url: https://mirror.example.internal/llama-3-8b/r2/model.safetensors
        sha256: "{{ llama_sha.weights }}"

- name: Roll back to the version current before
  onprem_ai.maintenance.model_pull:
    name: llama-3-8b
    state: previous

- name: A Hugging Face model pinned to a commit, from a private mirror
  onprem_ai.maintenance.model_pull:
    name: qwen2.5-7b-instruct
    version: a09a3545
    source: hf
    model: Qwen/Qwen2.5-7B-Instruct
    revision: a09a35458c702b33eeacc393d103063234e8bc28
    allow_patterns: ["*.json", "*.safetensors", "tokenizer*"]
    endpoint: https://hf-mirror.example.internal
    token: "{{ vault_hf_token }}"

- name: A long pull through the site proxy, with progress for an async poll loop
  onprem_ai.maintenance.model_pull:
    name: llama-3-70b
    version: r1
    url: https://mirror.example.internal/llama-3-70b/r1/model.gguf
    sha256: "{{ llama70_sha }}"
    https_proxy: http://proxy.example.internal:3128
    no_proxy: localhost,127.0.0.1,.example.internal
    ca_path: /etc/pki/site-ca.pem
    progress_file: /var/lib/onprem_ai/models/.progress-llama-3-70b.json
  async: 86400
  poll: 0

- name: An Ollama model under a versioned tag, served as llama3-prod:latest
  onprem_ai.maintenance.model_pull:
    name: llama3-prod
    version: "2026-11-01"
    source: ollama
    model: llama3.1:8b
    size: 4920753328
'''

RETURN = r'''
source:
  description: Source of the version.
  returned: always
  type: str
  sample: http
name:
  description: The model name.
  returned: always
  type: str
version:
  description: The version ensured (or rolled back to).
  returned: always
  type: str
  sample: r2
digest:
  description: Content digest of the version (sha256 over the sorted C(path sha256) lines of its files).
  returned: success
  type: str
revision:
  description: Source revision (Hugging Face commit), when the source has one.
  returned: success
  type: str
size:
  description: Total bytes of the version's files.
  returned: success
  type: int
model_path:
  description:
    - Directory of the version (V(ollama) its tag). Not called C(path), so that Ansible adds no file attributes
      (C(size), C(mode), ...) over the module's own values.
  returned: always
  type: str
  sample: /var/lib/onprem_ai/models/llama-3-8b/r2
current_path:
  description: The stable symlink to the current version, for the serving engine (V(ollama) the serving tag).
  returned: success
  type: str
previous_version:
  description: The version current before this run's switch (what O(state=previous) goes back to).
  returned: always
  type: str
bytes_transferred:
  description: Bytes downloaded by this run.
  returned: always
  type: int
bytes_to_transfer:
  description: Bytes that had to be (or in check mode would be) downloaded, after what was already staged.
  returned: when O(state=present)
  type: int
files:
  description: Files of the version with size and sha256.
  returned: success
  type: list
  elements: dict
removed_versions:
  description: Old versions garbage-collected by this run.
  returned: success
  type: list
  elements: str
error_kind:
  description:
    - Why the run failed, for automation - V(invalid) (an option), V(refused) (contradicts the store, e.g. an immutable
      version), V(corrupt) (a checksum or size mismatch, a damaged version), V(network), V(no_space), V(busy) (another
      run holds the lock), V(unreadable) / V(unwritable) (the record), V(io), V(missing_library), V(internal) (a bug).
  returned: failure
  type: str
  sample: corrupt
duration:
  description: Seconds the run took.
  returned: always
  type: float
'''

import os

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import failure
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._http_transfer import Progress, Redactor
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._models import ModelPull, client_for, model_secrets
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._module import OnpremModule


class ModelPullModule(OnpremModule):
    def extra_secrets(self, params):
        return model_secrets(params)

    def fail_json(self, msg, **kwargs):
        # also when ansible-core refuses the arguments, before main() runs: the role's poll loop ends on it
        params = self.params if isinstance(getattr(self, 'params', None), dict) else {}
        if isinstance(params.get('progress_file'), str) and not os.path.exists(params['progress_file']):
            Progress(params['progress_file'], 5, str(params.get('name')), str(params.get('version'))).finish(ok=False)
        super().fail_json(msg, **kwargs)


def main():
    module = ModelPullModule(
        argument_spec=dict(
            token=dict(type='str', no_log=True),
            headers=dict(type='raw', no_log=True),
            name=dict(type='str', required=True),
            version=dict(type='str'),
            source=dict(type='str', default='http', choices=['http', 'hf', 'ollama']),
            url=dict(type='str'),
            sha256=dict(type='str'),
            files=dict(type='list', elements='dict', options=dict(
                url=dict(type='str', required=True),
                sha256=dict(type='str', required=True),
                path=dict(type='str'),
                size=dict(type='int'),
            )),
            model=dict(type='str'),
            revision=dict(type='str'),
            allow_patterns=dict(type='list', elements='str'),
            ignore_patterns=dict(type='list', elements='str'),
            endpoint=dict(type='str'),
            max_workers=dict(type='int', default=8),
            digest=dict(type='str'),
            ollama_url=dict(type='str', default='http://127.0.0.1:11434'),
            serving_tag=dict(type='str', default='latest'),
            ollama_models_dir=dict(type='path', default='/usr/share/ollama/.ollama/models'),
            size=dict(type='int'),
            dest_root=dict(type='path', default='/var/lib/onprem_ai/models'),
            keep=dict(type='int', default=1),
            state=dict(type='str', default='present', choices=['present', 'previous', 'absent']),
            activate=dict(type='bool', default=True),
            verify=dict(type='str', default='quick', choices=['quick', 'full']),
            free_space_margin=dict(type='int', default=256),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            http_proxy=dict(type='str'),
            https_proxy=dict(type='str'),
            no_proxy=dict(type='str'),
            timeout=dict(type='int', default=60),
            retries=dict(type='int', default=3),
            lock_timeout=dict(type='int', default=3600),
            progress_file=dict(type='path'),
            progress_interval=dict(type='int', default=5),
        ),
        required_if=[('state', 'present', ['version'])],
        required_by={'sha256': 'url'},
        mutually_exclusive=[('url', 'files')],
        supports_check_mode=True,
    )
    params = module.params
    redact = Redactor(module.extra_secrets(params))
    module.no_log_values.update(redact.values)
    puller = None
    progress = Progress(params['progress_file'], params['progress_interval'], params['name'], params['version'])
    try:
        client, params = client_for(params, redact, progress)
        module.no_log_values.update(redact.values)
        puller = ModelPull(params, check_mode=module.check_mode, http_client=client)
        result = puller.run()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # an OnpremError gives its message and error_kind; anything else is reported without a traceback (which could
        # quote a header or a URL); every known secret is masked
        for warning in (puller.warnings if puller else []):
            module.warn(warning)
        progress.finish(ok=False)  # the role's poll loop ends on it, whatever failed
        module.no_log_values.update(redact.values)
        module.fail_json(**failure(exc, redact, 'model_pull'))
    for warning in result.pop('warnings'):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
