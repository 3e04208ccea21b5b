# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read-only checks of an OpenAI-compatible inference endpoint: the gate of every update strategy.

Three kinds of check, each a `CheckResult` (name, kind, target, passed, reason, figures):
- functional: the expected models are listed (`GET /v1/models`), a chat completion answers with a well-formed
  result, plain and streamed (SSE), optionally matching a regex or a JSON schema;
- integration: every backend of a model group answers directly, and through the gateway (the gateway says which
  backend answered in LiteLLM's `x-litellm-model-id` / `x-litellm-model-api-base` response headers), so that a
  backend the gateway cannot reach is named;
- performance: a bounded run (count, concurrency, time limit) measuring time to first token, p50 / p95 / p99
  latency, tokens/s and error rate, optionally saved as a baseline (JSON, 0600) or compared with one.

Entry point: `run_checks(with_defaults(url=..., model=..., checks=[...]), check_mode=False)` -> the result dict
documented in plugins/modules/inference_check.py's RETURN (`passed`, `checks`, `failed_checks`, `figures`, ...);
`InferenceError` (error_kind options / unreadable / write / missing_library) when the checks cannot run at all.
ARGUMENT_SPEC is the module's argument spec, so a Python caller and the module share every default.
Unknown is never none: an answer that cannot be read is a failed check whose reason says what could not be read.
HTTP only, standard library (urllib); no secret in any reason: every text that leaves passes `Redactor`.

Engine differences handled here (one OpenAI API, four servers):
- vLLM checks `Authorization: Bearer <key>` (`--api-key`) only under /v1 and friends; `/health` is open
  (vllm-project/vllm docs/usage/security.md). It sends `usage` in a stream only when asked with
  `stream_options.include_usage` (then in a last chunk with `choices: []`).
- Ollama's OpenAI API (`/v1/chat/completions`, `/v1/models`) needs no key: a key is "required but ignored"
  (ollama/ollama docs/openai.md); model names carry a tag (`llama3:8b`); it has no `/health` (GET / answers
  "Ollama is running").
- llama.cpp's `llama-server`: `--api-key` checked as `Authorization: Bearer` (or `X-Api-Key`), `/health` answers
  503 while the model loads and 200 `{"status": "ok"}` after (ggml-org/llama.cpp tools/server/README.md); the model
  name is the alias or file name and any name is accepted in a request.
- LiteLLM proxy: the master key or a virtual key as `Authorization: Bearer` (or `x-litellm-api-key`); its `/health`
  needs a key and calls every model, `/health/liveliness` and `/health/readiness` need none (BerriAI/litellm
  docs/my-website/docs/proxy/health.md); it names the deployment that answered in `x-litellm-model-id` and
  `x-litellm-model-api-base` (docs/my-website/docs/proxy/response_headers.md). Backends in its config.yaml are
  `litellm_params.model` with a provider prefix (`openai/`, `hosted_vllm/`, `ollama_chat/`): the backend's own
  model name is what follows the first `/`.
So this module's readiness probe is `GET /v1/models` (every engine has it, with the key), never `/health`.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._state import write_json

try:
    import jsonschema  # optional: used for expected_json_schema when installed, else the documented subset
    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover - depends on the target's Python
    jsonschema = None
    HAS_JSONSCHEMA = False

try:
    import yaml  # only to read a LiteLLM config.yaml (gateway_config)
    HAS_YAML = True
except ImportError:  # pragma: no cover
    yaml = None
    HAS_YAML = False

CHECKS = ('functional', 'integration', 'performance')
BASELINE_MODES = ('none', 'save', 'compare')
MASK = '********'
SNIPPET = 200
MAX_BODY = 4 * 1024 * 1024
# Ranges of the numeric options (the argument spec has no ranges: they are checked here, documented in the module).
RANGES = {
    'timeout': (1, 3600),
    'max_tokens': (1, 4096),
    'gateway_attempts': (1, 1000),
    'count': (1, 10000),
    'concurrency': (1, 64),
    'time_limit': (1, 3600),
    'p50_ratio': (1.0, 100.0),
    'p99_ratio': (1.0, 100.0),
    'ttft_ratio': (1.0, 100.0),
    'min_tokens_per_s_ratio': (0.0, 1.0),
    'max_error_rate': (0.0, 1.0),
    'latency_slack_ms': (0, 60000),
}
PROVIDER_PREFIX = re.compile(r'^[a-z_]+/')


class InferenceError(OnpremError):
    """The checks could not be run at all (bad options, an unreadable gateway config, a baseline not written)."""

    error_kind = 'inference'


class RequestFailed(Exception):
    """One HTTP exchange failed; `reason` is already redacted. `truncated`: a stream cut before its end."""

    def __init__(self, reason, truncated=False, status=None):
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated
        self.status = status


# ----- secrets ---------------------------------------------------------------------------------------------------
def url_secrets(url):
    """What to mask of a URL's user info: the password (`http://user:pw@host/`), or the user part when it stands alone
    (`https://TOKEN@host/`, a token as user name)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return []
    if parts.password:
        return [parts.password]
    return [parts.username] if parts.username else []


def safe_url(url):
    """The URL without user info, query or fragment: what may be shown."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname or ''
        if ':' in host:
            host = '[%s]' % host
        netloc = host + (':%d' % parts.port if parts.port else '')
    except ValueError:
        return '(unparsable URL)'
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, '', ''))


class Redactor(object):
    """Masks every known secret (longest first) in any text; every reason and message passes through it."""

    def __init__(self, secrets=()):
        self.secrets = set()
        self.add(*secrets)

    def add(self, *secrets):
        for secret in secrets:
            if isinstance(secret, str) and len(secret.strip()) >= 3:
                self.secrets.update((secret, secret.strip()))

    def __call__(self, text):
        text = str(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def snippet(self, data):
        """A short, redacted, printable piece of a body (bytes or str)."""
        if isinstance(data, bytes):
            data = data.decode('utf-8', 'replace')
        text = self(data).strip().replace('\n', ' ')
        return text[:SNIPPET] + ('...' if len(text) > SNIPPET else '')


# ----- HTTP ------------------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """An inference API does not redirect; following one would send the key elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, 'redirect to %s not followed' % safe_url(newurl), headers, fp)


def api_base(url):
    """`http://h:8000`, `http://h:8000/` and `http://h:8000/v1` all give `http://h:8000/v1`."""
    url = str(url or '').strip().rstrip('/')
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a bad port
    except ValueError:
        raise InferenceError('not an http(s) URL: %s' % safe_url(url), error_kind='options') from None
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise InferenceError('not an http(s) URL: %s' % safe_url(url), error_kind='options')
    url = safe_url(url).rstrip('/')  # user info is never sent (give api_key), query and fragment have no place here
    return url if url.endswith('/v1') else url + '/v1'


class Endpoint(object):
    """One OpenAI-compatible endpoint (a backend or the gateway): its /v1 base, key, timeouts."""

    def __init__(self, url, api_key=None, api_key_header='Authorization', timeout=30, validate_certs=True,
                 use_proxy=True, redact=None, name=None):
        self.base = api_base(url)
        self.name = name or safe_url(self.base)
        self.redact = redact or Redactor()
        self.redact.add(api_key, *url_secrets(url))
        self.timeout = timeout
        self.headers = {'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream',
                        'User-Agent': 'onprem_ai.maintenance inference_check'}
        if api_key:
            key = str(api_key).strip()
            self.headers[api_key_header] = 'Bearer %s' % key if api_key_header.lower() == 'authorization' else key
        handlers = [_NoRedirect()]
        if not use_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        if self.base.startswith('https:'):
            context = ssl.create_default_context()
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def open(self, method, path, body=None, timeout=None):
        """Send one request; the open response (2xx) or RequestFailed with a redacted reason."""
        data = json.dumps(body).encode('utf-8') if body is not None else None
        url = self.base + path
        request = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            return self.opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read(MAX_BODY) if exc.fp else b''
            except (OSError, http.client.HTTPException):
                text = b''
            detail = ': %s' % self.redact.snippet(text) if text else ' (%s)' % self.redact(exc.reason)
            raise RequestFailed('%s %s answered HTTP %s%s' % (method, path, exc.code, detail), status=exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise RequestFailed('%s %s failed: %s' % (method, self.name + path, self.redact(reason))) from None

    def get_json(self, path):
        """GET a JSON document: (object, headers)."""
        response = self.open('GET', path)
        with response:
            raw = _read(response, self.redact, 'GET %s' % path)
            return _json(raw, self.redact, 'GET %s' % path), dict(response.headers.items())

    def post_json(self, path, body):
        """POST, answer read whole as JSON: (object, headers, seconds)."""
        start = time.monotonic()
        response = self.open('POST', path, body)
        with response:
            raw = _read(response, self.redact, 'POST %s' % path)
        return _json(raw, self.redact, 'POST %s' % path), dict(response.headers.items()), time.monotonic() - start


def _read(response, redact, what):
    try:
        raw = response.read(MAX_BODY + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise RequestFailed('%s: the answer was cut while reading it: %s' % (what, redact(exc)), truncated=True) from None
    if len(raw) > MAX_BODY:
        raise RequestFailed('%s: the answer is larger than %d bytes' % (what, MAX_BODY))
    return raw


def _json(raw, redact, what):
    try:
        return json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        raise RequestFailed('%s: the answer is not JSON: %s' % (what, redact.snippet(raw) or '(empty)')) from None


# ----- one chat completion ---------------------------------------------------------------------------------------
def chat_body(model, prompt, max_tokens, stream, include_usage=True):
    body = {'model': model, 'messages': [{'role': 'user', 'content': prompt}], 'max_tokens': max_tokens,
            'temperature': 0, 'stream': bool(stream)}
    if stream and include_usage:
        body['stream_options'] = {'include_usage': True}
    return body


def _usage(obj, what):
    """Usage figures when given (None when absent), or RequestFailed when given but unreadable."""
    usage = obj.get('usage')
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise RequestFailed('%s: usage is not an object' % what)
    figures = {}
    for key in ('prompt_tokens', 'completion_tokens', 'total_tokens'):
        value = usage.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestFailed('%s: usage.%s is not a count: %r' % (what, key, value))
        figures[key] = value
    return figures


def _reasoning(message):
    """Reasoning text of a message or delta: `reasoning_content` (vLLM, llama.cpp, LiteLLM) or `reasoning` (Ollama)."""
    value = message.get('reasoning_content')
    return value if value is not None else message.get('reasoning')


def _error_in(obj, redact, what):
    if isinstance(obj, dict) and obj.get('error') is not None:
        raise RequestFailed('%s: the server answered an error: %s' % (what, redact.snippet(json.dumps(obj['error']))))


def chat_plain(endpoint, model, prompt, max_tokens):
    """One non-streamed chat completion, checked: a dict of what was read, or RequestFailed."""
    what = 'chat completion'
    obj, headers, seconds = endpoint.post_json('/chat/completions', chat_body(model, prompt, max_tokens, False))
    if not isinstance(obj, dict):
        raise RequestFailed('%s: the answer is not a JSON object' % what)
    _error_in(obj, endpoint.redact, what)
    choices = obj.get('choices')
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RequestFailed('%s: no choices in the answer' % what)
    message = choices[0].get('message')
    content = message.get('content') if isinstance(message, dict) else None
    if content is None and isinstance(message, dict) and isinstance(_reasoning(message), str):
        content = ''  # a reasoning model that used max_tokens for its reasoning (vLLM's reasoning parsers)
    if not isinstance(content, str):
        raise RequestFailed('%s: choices[0].message.content is missing or not text' % what)
    finish = choices[0].get('finish_reason')
    if not isinstance(finish, str) or not finish:
        raise RequestFailed('%s: choices[0].finish_reason is missing' % what)
    return {'content': content, 'finish_reason': finish, 'usage': _usage(obj, what),
            'latency_s': seconds, 'ttft_s': None, 'headers': headers}


def chat_stream(endpoint, model, prompt, max_tokens, include_usage=True):
    """One streamed chat completion read as SSE, checked. A stream that ends without `[DONE]` or without a
    finish_reason, or that is cut, raises RequestFailed(truncated=True)."""
    what = 'streamed chat completion'
    start = time.monotonic()
    response = endpoint.open('POST', '/chat/completions', chat_body(model, prompt, max_tokens, True, include_usage))
    headers = dict(response.headers.items())
    content, finish, usage, ttft, done, chunks, size = [], None, None, None, False, 0, 0
    with response:
        while True:
            try:
                line = response.readline(65536)
            except (OSError, http.client.HTTPException) as exc:
                raise RequestFailed('%s: truncated, the stream was cut after %d chunks (%s)' % (
                    what, chunks, endpoint.redact(type(exc).__name__)), truncated=True) from None
            if not line:
                break
            if time.monotonic() - start > endpoint.timeout:
                raise RequestFailed('%s: truncated, the stream did not end within the timeout (%s s)' % (what, endpoint.timeout),
                                    truncated=True)
            size += len(line)
            if size > MAX_BODY:
                raise RequestFailed('%s: the stream is larger than %d bytes' % (what, MAX_BODY))
            text = line.decode('utf-8', 'replace').strip()
            if not text.startswith('data:'):
                continue  # blank separators, `: comments`, `event:` / `id:` lines
            data = text[5:].strip()
            if data == '[DONE]':
                done = True
                break
            try:
                obj = json.loads(data)
            except ValueError:
                raise RequestFailed('%s: a chunk is not JSON: %s' % (what, endpoint.redact.snippet(data))) from None
            if not isinstance(obj, dict):
                raise RequestFailed('%s: a chunk is not a JSON object' % what)
            _error_in(obj, endpoint.redact, what)
            chunks += 1
            usage = _usage(obj, what) or usage
            choices = obj.get('choices')
            if not isinstance(choices, list):
                raise RequestFailed('%s: a chunk has no choices list' % what)
            for choice in choices:
                if not isinstance(choice, dict):
                    raise RequestFailed('%s: a chunk choice is not an object' % what)
                delta = choice.get('delta') or {}
                piece = delta.get('content') if isinstance(delta, dict) else None
                if piece is not None and not isinstance(piece, str):
                    raise RequestFailed('%s: delta.content is not text' % what)
                if ttft is None and isinstance(delta, dict) and _reasoning(delta):
                    ttft = time.monotonic() - start  # reasoning tokens are the first tokens too
                if piece:
                    if ttft is None:
                        ttft = time.monotonic() - start
                    content.append(piece)
                if choice.get('finish_reason'):
                    finish = str(choice['finish_reason'])
    if not done:
        raise RequestFailed('%s: truncated, the stream ended without [DONE] after %d chunks' % (what, chunks),
                            truncated=True)
    if finish is None:
        raise RequestFailed('%s: truncated, the stream ended without a finish_reason' % what, truncated=True)
    return {'content': ''.join(content), 'finish_reason': finish, 'usage': usage, 'latency_s': time.monotonic() - start,
            'ttft_s': ttft, 'headers': headers, 'chunks': chunks}


# ----- results ---------------------------------------------------------------------------------------------------
def check(name, kind, target, passed, reason, **figures):
    """One check's result; `reason` says why it passed or failed (with the figures that decided it)."""
    result = {'name': name, 'kind': kind, 'target': target, 'passed': bool(passed), 'reason': reason}
    if figures:
        result['figures'] = figures
    return result


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 1)


# ----- content checks --------------------------------------------------------------------------------------------
_TYPES = {'object': dict, 'array': list, 'string': str, 'boolean': bool, 'null': type(None)}


def _subset_errors(value, schema, where='$'):
    """The documented JSON-schema subset (type, required, properties, items, enum, additionalProperties: false)."""
    if not isinstance(schema, dict):
        return ['%s: the schema is not an object' % where]
    errors = []
    expected = schema.get('type')
    if expected is not None:
        types = expected if isinstance(expected, list) else [expected]
        ok = False
        for name in types:
            if name == 'integer':
                ok = ok or (isinstance(value, int) and not isinstance(value, bool))
            elif name == 'number':
                ok = ok or (isinstance(value, (int, float)) and not isinstance(value, bool))
            elif name in _TYPES:
                ok = ok or isinstance(value, _TYPES[name]) and not (name != 'boolean' and isinstance(value, bool))
            else:
                return ['%s: unsupported type %r in the schema' % (where, name)]
        if not ok:
            return ['%s: expected %s' % (where, '/'.join(str(t) for t in types))]
    if 'enum' in schema and value not in schema['enum']:
        errors.append('%s: not one of the allowed values' % where)
    if isinstance(value, dict):
        for key in schema.get('required') or []:
            if key not in value:
                errors.append('%s: %r is required' % (where, key))
        properties = schema.get('properties') or {}
        for key, sub in properties.items():
            if key in value:
                errors.extend(_subset_errors(value[key], sub, '%s.%s' % (where, key)))
        if schema.get('additionalProperties') is False:
            errors.extend('%s: unexpected property %r' % (where, k) for k in value if k not in properties)
    if isinstance(value, list) and isinstance(schema.get('items'), dict):
        for index, item in enumerate(value):
            errors.extend(_subset_errors(item, schema['items'], '%s[%d]' % (where, index)))
    return errors


def schema_errors(text, schema):
    """Why `text` (a model's answer) is not JSON matching `schema`; [] when it is."""
    stripped = text.strip()
    fence = re.match(r'^```(?:json)?\s*(.*?)\s*```$', stripped, re.S)  # models like to fence JSON
    try:
        value = json.loads(fence.group(1) if fence else stripped)
    except ValueError:
        return ['the answer is not JSON']
    if HAS_JSONSCHEMA:
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            return ['%s: %s' % ('/'.join(str(p) for p in e.absolute_path) or '$', e.message)
                    for e in validator.iter_errors(value)][:5]
        except jsonschema.exceptions.SchemaError as exc:
            return ['the schema is invalid: %s' % exc.message]
    return _subset_errors(value, schema)[:5]


def content_problems(answer, params):
    problems = []
    pattern = params.get('expected_content')
    if pattern and not re.search(pattern, answer['content'], re.S):
        problems.append('the answer does not match expected_content')
    if params.get('expected_json_schema') is not None:
        problems.extend(schema_errors(answer['content'], params['expected_json_schema']))
    return problems


# ----- functional ------------------------------------------------------------------------------------------------
def listed_models(endpoint):
    """Model ids of GET /v1/models, or RequestFailed naming what could not be read."""
    obj, _headers = endpoint.get_json('/models')
    data = obj.get('data') if isinstance(obj, dict) else None
    if not isinstance(data, list):
        raise RequestFailed('GET /models: no `data` list in the answer')
    ids = [m.get('id') for m in data if isinstance(m, dict) and isinstance(m.get('id'), str)]
    if len(ids) != len(data):
        raise RequestFailed('GET /models: an entry of `data` has no id')
    return ids


def models_check(endpoint, expected, name='models listed'):
    try:
        ids = listed_models(endpoint)
    except RequestFailed as exc:
        return check(name, 'functional', endpoint.name, False, 'could not read the model list: %s' % exc.reason)
    missing = [m for m in expected if m not in ids]
    if missing:
        return check(name, 'functional', endpoint.name, False, 'not listed: %s (listed: %s)' % (
            ', '.join(missing), ', '.join(ids[:20]) or 'none'), listed=ids[:50])
    return check(name, 'functional', endpoint.name, True, 'listed: %s' % ', '.join(expected), listed=ids[:50])


def completion_check(endpoint, params, stream, kind='functional', name=None, model=None):
    model = model or params['model']
    name = name or ('chat completion (streamed)' if stream else 'chat completion')
    try:
        if stream:
            answer = chat_stream(endpoint, model, params['prompt'], params['max_tokens'], params['stream_include_usage'])
        else:
            answer = chat_plain(endpoint, model, params['prompt'], params['max_tokens'])
    except RequestFailed as exc:
        return check(name, kind, endpoint.name, False, exc.reason, model=model, truncated=exc.truncated), None
    figures = {'model': model, 'latency_ms': _ms(answer['latency_s']), 'finish_reason': answer['finish_reason'],
               'usage': answer['usage'], 'content_sample': endpoint.redact(answer['content'][:SNIPPET])}
    if stream:
        figures['ttft_ms'] = _ms(answer['ttft_s'])
    problems = content_problems(answer, params)
    if problems:
        return check(name, kind, endpoint.name, False, '; '.join(endpoint.redact(p) for p in problems), **figures), answer
    return check(name, kind, endpoint.name, True, 'well-formed answer, finish_reason %s' % answer['finish_reason'],
                 **figures), answer


def functional(endpoint, params):
    results = []
    if params['models']:
        results.append(models_check(endpoint, params['models']))
    modes = {'both': (False, True), 'plain': (False,), 'stream': (True,)}[params['streaming']]
    for stream in modes:
        results.append(completion_check(endpoint, params, stream)[0])
    return results


# ----- integration -----------------------------------------------------------------------------------------------
def backends_from_config(path, model_group):
    """The deployments of `model_group` in a LiteLLM config.yaml: [{name, url, model}] (keys are never read)."""
    if not HAS_YAML:
        raise InferenceError('reading gateway_config needs PyYAML on the host that runs the check', error_kind='missing_library')
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise InferenceError('cannot read the gateway config %s: %s' % (path, getattr(exc, 'strerror', None) or type(exc).__name__),
                             error_kind='unreadable') from None
    models = config.get('model_list') if isinstance(config, dict) else None
    if not isinstance(models, list):
        raise InferenceError('the gateway config %s has no model_list' % path, error_kind='unreadable')
    backends = []
    for index, entry in enumerate(models):
        if not isinstance(entry, dict) or entry.get('model_name') != model_group:
            continue
        params = entry.get('litellm_params') if isinstance(entry.get('litellm_params'), dict) else {}
        info = entry.get('model_info') if isinstance(entry.get('model_info'), dict) else {}
        if not isinstance(params.get('api_base'), str) or not isinstance(params.get('model'), str):
            raise InferenceError('model_list[%d] of %s (%s) has no api_base or model: its backend cannot be checked'
                                 % (index, path, model_group), error_kind='unreadable')
        backends.append({'name': str(info.get('id') or safe_url(params['api_base'])), 'url': params['api_base'],
                         'model': PROVIDER_PREFIX.sub('', params['model'], count=1), 'id': info.get('id')})
    if not backends:
        raise InferenceError('the gateway config %s has no deployment of model group %s' % (path, model_group),
                             error_kind='unreadable')
    return backends


def _same_base(a, b):
    try:
        return api_base(a).rstrip('/') == api_base(b).rstrip('/')
    except InferenceError:
        return False


def _answered_by(headers, backends):
    """The backend that a gateway's answer names (LiteLLM response headers), None when not said or unknown."""
    lower = {k.lower(): v for k, v in headers.items()}
    model_id, base = lower.get('x-litellm-model-id'), lower.get('x-litellm-model-api-base')
    for backend in backends:
        if model_id and backend.get('id') and model_id == backend['id']:
            return backend['name']
        if base and _same_base(base, backend['url']):
            return backend['name']
    if model_id or base:
        return '(unknown: %s)' % (model_id or safe_url(base))
    return None


def _targeted(gateway, params, backend, backends):
    """Ask the gateway for one deployment by its id: (reached, reason). LiteLLM routes a request whose `model` is a
    deployment's `model_info.id` to that deployment (litellm/router.py, _common_checks_available_deployment, 1.108.7)."""
    try:
        answer = chat_plain(gateway, backend['id'], params['prompt'], params['max_tokens'])
    except RequestFailed as exc:
        return False, 'asked for by its deployment id %s: %s' % (backend['id'], exc.reason)
    by = _answered_by(answer['headers'], backends)
    if by not in (None, backend['name']):
        return False, 'asked for by its deployment id %s, the gateway answered from %s' % (backend['id'], by)
    return True, 'reached when asked for by its deployment id %s' % backend['id']


def integration(gateway, params, backends, redact):
    """Each backend directly, the model group through the gateway (sampled until every backend answered, at most
    gateway_attempts requests), and each backend not seen in the sample asked for by its deployment id."""
    results = []
    direct_ok = {}
    for backend in backends:
        endpoint = Endpoint(backend['url'], backend.get('api_key') or params['backend_api_key'], params['api_key_header'],
                            params['timeout'], params['validate_certs'], params['use_proxy'], redact, name=backend['name'])
        result = completion_check(endpoint, params, False, 'integration', 'backend %s direct' % backend['name'],
                                  model=backend.get('model') or params['model'])[0]
        direct_ok[backend['name']] = result['passed']
        results.append(result)
    seen, errors, unattributed, sent = {}, [], 0, 0
    while sent < params['gateway_attempts'] and len([n for n in seen if n in direct_ok]) < len(backends):
        sent += 1
        try:
            answer = chat_plain(gateway, params['model'], params['prompt'], params['max_tokens'])
        except RequestFailed as exc:
            errors.append(exc.reason)
            continue
        name = _answered_by(answer['headers'], backends)
        if name is None:
            unattributed += 1
        else:
            seen[name] = seen.get(name, 0) + 1
    group = 'model group %s through gateway' % params['model']
    if errors:
        results.append(check(group, 'integration', gateway.name, False, '%d of %d requests failed; last: %s' % (
            len(errors), sent, errors[-1]), requests=sent, errors=len(errors), answered_by=dict(seen)))
    else:
        results.append(check(group, 'integration', gateway.name, True, '%d requests answered' % sent, requests=sent,
                             errors=0, answered_by=dict(seen)))
    for backend in backends:
        name = backend['name']
        label = 'backend %s through gateway' % name
        if seen.get(name):
            results.append(check(label, 'integration', gateway.name, True, 'answered %d of %d requests through the gateway'
                                 % (seen[name], sent), requests=sent, answered=seen[name]))
            continue
        reasons = []
        if backend.get('id'):
            reached, why = _targeted(gateway, params, backend, backends)
            if reached:
                results.append(check(label, 'integration', gateway.name, True, '%s (not among the %d answers of the model '
                                     'group)' % (why, sent), requests=sent + 1, answered=1))
                continue
            reasons.append(why)
        if unattributed and not seen:
            reasons.insert(0, 'the gateway answered %d requests without saying which backend answered (no '
                              'x-litellm-model-id or x-litellm-model-api-base header): cannot tell whether %s is reachable'
                           % (unattributed, name))
        else:
            why = 'not reached through the gateway in %d requests' % sent
            if direct_ok.get(name):
                why += ', although it answers directly: the gateway cannot reach it (or routes nothing to it)'
            reasons.insert(0, why)
        results.append(check(label, 'integration', gateway.name, False, '; '.join(reasons), requests=sent, answered=0,
                             answered_by=dict(seen)))
    return results


# ----- performance -----------------------------------------------------------------------------------------------
def percentile(values, fraction):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def run_load(endpoint, params, perf):
    """A bounded run: at most `count` requests, `concurrency` at a time, none started after `time_limit` s."""
    lock = threading.Lock()
    state = {'next': 0, 'latencies': [], 'ttfts': [], 'tokens': 0, 'errors': [], 'truncated': 0, 'token_source': set()}
    deadline = time.monotonic() + perf['time_limit']

    def worker():
        while True:
            with lock:
                if state['next'] >= perf['count'] or time.monotonic() >= deadline:
                    return
                state['next'] += 1
            try:
                if perf['stream']:
                    answer = chat_stream(endpoint, params['model'], params['prompt'], params['max_tokens'],
                                         params['stream_include_usage'])
                else:
                    answer = chat_plain(endpoint, params['model'], params['prompt'], params['max_tokens'])
            except RequestFailed as exc:
                with lock:
                    state['errors'].append(exc.reason)
                    state['truncated'] += int(exc.truncated)
                continue
            usage = answer['usage'] or {}
            with lock:
                state['latencies'].append(answer['latency_s'])
                if answer['ttft_s'] is not None:
                    state['ttfts'].append(answer['ttft_s'])
                if 'completion_tokens' in usage:
                    state['tokens'] += usage['completion_tokens']
                    state['token_source'].add('usage')
                elif perf['stream']:
                    state['tokens'] += answer.get('chunks', 0)
                    state['token_source'].add('chunks')

    started = time.monotonic()
    threads = [threading.Thread(target=worker, name='inference-check-%d' % i, daemon=True) for i in range(perf['concurrency'])]
    for thread in threads:
        thread.start()
    for thread in threads:
        # every request ends within its timeout (streams: per read), so this join is bounded
        thread.join()
    wall = time.monotonic() - started
    done = len(state['latencies']) + len(state['errors'])
    lat, ttft = state['latencies'], state['ttfts']
    figures = {
        'requests': done, 'ok': len(lat), 'errors': len(state['errors']), 'truncated': state['truncated'],
        'not_started': perf['count'] - done, 'wall_s': round(wall, 3),
        'error_rate': round(len(state['errors']) / done, 4) if done else None,
        'latency_p50_ms': _ms(percentile(lat, 0.50)), 'latency_p95_ms': _ms(percentile(lat, 0.95)),
        'latency_p99_ms': _ms(percentile(lat, 0.99)), 'ttft_p50_ms': _ms(percentile(ttft, 0.50)),
        'ttft_p95_ms': _ms(percentile(ttft, 0.95)), 'ttft_p99_ms': _ms(percentile(ttft, 0.99)),
        'completion_tokens': state['tokens'], 'tokens_per_s': round(state['tokens'] / wall, 2) if wall > 0 and lat else None,
        'token_source': '+'.join(sorted(state['token_source'])) or None,
        'settings': {'count': perf['count'], 'concurrency': perf['concurrency'], 'time_limit': perf['time_limit'],
                     'stream': perf['stream'], 'max_tokens': params['max_tokens']},
    }
    return figures, state['errors'][-3:]


def load_baseline(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise RequestFailed('no baseline at %s (capture one with baseline=save before the update)' % path) from None
    except (OSError, ValueError) as exc:
        raise RequestFailed('cannot read the baseline %s: %s' % (path, getattr(exc, 'strerror', None) or type(exc).__name__)) from None
    figures = data.get('figures') if isinstance(data, dict) else None
    if not isinstance(figures, dict):
        raise RequestFailed('the baseline %s holds no figures' % path)
    return data


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compare(figures, baseline, tol):
    """One check per figure compared with the baseline; a figure missing on either side fails (unknown is never none)."""
    base = baseline['figures']
    results = []
    slack = tol['latency_slack_ms']
    for key, ratio_key in (('latency_p50_ms', 'p50_ratio'), ('latency_p99_ms', 'p99_ratio'), ('ttft_p95_ms', 'ttft_ratio')):
        now, before = figures.get(key), base.get(key)
        name = 'performance %s' % key
        if key.startswith('ttft') and before is None and now is None and not figures['settings']['stream']:
            continue  # plain requests have no first token, in the baseline and now
        if not _number(now) or not _number(before):
            results.append(check(name, 'performance', 'baseline', False, 'cannot compare %s: now %s, baseline %s' % (
                key, now, before), now=now, baseline=before))
            continue
        limit = max(before * tol[ratio_key], before + slack)
        results.append(check(name, 'performance', 'baseline', now <= limit, '%s %.1f ms, baseline %.1f ms, limit %.1f ms '
                             '(x%s or +%s ms)' % (key, now, before, limit, tol[ratio_key], slack), now=now, baseline=before,
                             limit=round(limit, 1)))
    now, before = figures.get('tokens_per_s'), base.get('tokens_per_s')
    if not _number(now) or not _number(before):
        results.append(check('performance tokens_per_s', 'performance', 'baseline', False,
                             'cannot compare tokens/s: now %s, baseline %s' % (now, before), now=now, baseline=before))
    else:
        floor = min(before * tol['min_tokens_per_s_ratio'], _noisy_floor(before, base, slack))
        results.append(check('performance tokens_per_s', 'performance', 'baseline', now >= floor,
                             'tokens/s %.2f, baseline %.2f, floor %.2f (x%s, or the latencies\' +%s ms per request)' % (
                                 now, before, floor, tol['min_tokens_per_s_ratio'], slack), now=now, baseline=before,
                             limit=round(floor, 2)))
    return results


def _noisy_floor(before, base, slack_ms):
    """The tokens/s the baseline run would have had with every request latency_slack_ms slower: the same noise
    allowance as the latencies get (a short run of a small model on a busy host swings tokens/s as much as its
    latencies). The baseline's tokens/s when its run's wall time or settings are unknown."""
    wall, settings = base.get('wall_s'), base.get('settings') or {}
    count, concurrency = settings.get('count'), settings.get('concurrency')
    if not _number(wall) or wall <= 0 or not isinstance(count, int) or not isinstance(concurrency, int) or concurrency < 1:
        return before
    rows = -(-count // concurrency)  # requests one after the other per client
    return before * wall / (wall + rows * slack_ms / 1000.0)


def performance(endpoint, params, check_mode):
    perf = params['performance']
    figures, last_errors = run_load(endpoint, params, perf)
    tol = params['tolerances']
    results = []
    rate = figures['error_rate']
    if rate is None:
        results.append(check('performance error_rate', 'performance', endpoint.name, False,
                             'no request was completed within the time limit', **{'requests': 0}))
    else:
        why = 'error rate %.4f (%d of %d), at most %s' % (rate, figures['errors'], figures['requests'], tol['max_error_rate'])
        if last_errors and rate > tol['max_error_rate']:
            why += '; last error: %s' % last_errors[-1]
        results.append(check('performance error_rate', 'performance', endpoint.name, rate <= tol['max_error_rate'], why,
                             error_rate=rate, errors=figures['errors'], truncated=figures['truncated']))
    baseline = {'mode': params['baseline'], 'path': params['baseline_path']}
    if params['baseline'] == 'save':
        ok = figures['error_rate'] == 0 and figures['ok'] > 0
        if not ok:
            # a baseline of a failing run would make every later comparison meaningless
            results.append(check('baseline saved', 'performance', params['baseline_path'], False,
                                 'not saved: the run had errors or no answer'))
        elif check_mode:
            baseline['saved'] = False
            results.append(check('baseline saved', 'performance', params['baseline_path'], True, 'would be saved (check mode)'))
        else:
            save_baseline(params['baseline_path'], endpoint, params, figures)
            baseline['saved'] = True
            results.append(check('baseline saved', 'performance', params['baseline_path'], True, 'saved'))
    elif params['baseline'] == 'compare':
        try:
            data = load_baseline(params['baseline_path'])
        except RequestFailed as exc:
            results.append(check('baseline read', 'performance', params['baseline_path'], False, exc.reason))
        else:
            baseline['captured'] = data.get('captured')
            baseline['figures'] = data['figures']
            results.extend(compare(figures, data, tol))
    return results, figures, baseline


def save_baseline(path, endpoint, params, figures):
    data = {'captured': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'url': safe_url(endpoint.base),
            'model': params['model'], 'figures': figures}
    directory = os.path.dirname(path) or '.'
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        write_json(path, data, mode=0o600)
    except OSError as exc:
        raise InferenceError('cannot write the baseline %s: %s' % (path, exc.strerror or exc), error_kind='write') from None


# ----- options and the entry point -------------------------------------------------------------------------------
# The module's argument spec (plugins/modules/inference_check.py documents it), here so that Python callers (the
# strategies' benchmark, other modules) get the same defaults: run_checks(with_defaults(url=..., model=...)).
ARGUMENT_SPEC = dict(
    url=dict(type='str', required=True),
    api_key=dict(type='str', no_log=True),
    api_key_header=dict(type='str', default='Authorization', no_log=False),
    model=dict(type='str'),
    models=dict(type='list', elements='str', default=[]),
    checks=dict(type='list', elements='str', choices=['functional', 'integration', 'performance'], default=['functional']),
    prompt=dict(type='str', default='Say OK.'),
    max_tokens=dict(type='int', default=16, no_log=False),
    streaming=dict(type='str', choices=['both', 'plain', 'stream'], default='both'),
    stream_include_usage=dict(type='bool', default=True),
    expected_content=dict(type='str'),
    expected_json_schema=dict(type='dict'),
    timeout=dict(type='int', default=30),
    validate_certs=dict(type='bool', default=True),
    use_proxy=dict(type='bool', default=True),
    backends=dict(type='list', elements='dict', options=dict(
        name=dict(type='str'), id=dict(type='str'), url=dict(type='str', required=True), model=dict(type='str'),
        api_key=dict(type='str', no_log=True))),
    backend_api_key=dict(type='str', no_log=True),
    gateway_config=dict(type='path'),
    gateway_attempts=dict(type='int', default=20),
    performance=dict(type='dict', options=dict(
        count=dict(type='int', default=20), concurrency=dict(type='int', default=4),
        time_limit=dict(type='int', default=60), stream=dict(type='bool', default=True))),
    baseline=dict(type='str', choices=['none', 'save', 'compare'], default='none'),
    baseline_path=dict(type='path'),
    tolerances=dict(type='dict', options=dict(
        p50_ratio=dict(type='float', default=1.5), p99_ratio=dict(type='float', default=1.5),
        ttft_ratio=dict(type='float', default=1.5), min_tokens_per_s_ratio=dict(type='float', default=0.5, no_log=False),
        max_error_rate=dict(type='float', default=0.0), latency_slack_ms=dict(type='int', default=50))),
    fail_on_failed_check=dict(type='bool', default=True),
)

DEFAULT_PERFORMANCE = dict((k, o['default']) for k, o in ARGUMENT_SPEC['performance']['options'].items())
DEFAULT_TOLERANCES = dict((k, o['default']) for k, o in ARGUMENT_SPEC['tolerances']['options'].items())


def with_defaults(**given):
    """Every option of ARGUMENT_SPEC with its default, sub-option defaults of given dicts filled, then `given`."""
    params = {}
    for name, spec in ARGUMENT_SPEC.items():
        value = given.get(name, spec.get('default'))
        if isinstance(value, list):
            value = list(value)
        if isinstance(value, dict) and spec.get('options'):
            value = dict(dict((k, o.get('default')) for k, o in spec['options'].items()), **value)
        params[name] = value
    unknown = sorted(set(given) - set(ARGUMENT_SPEC))
    if unknown:
        raise InferenceError('unknown option(s): %s' % ', '.join(unknown), error_kind='options')
    return params


def _in_range(name, value, integer=True):
    low, high = RANGES[name]
    if value is None or isinstance(value, bool) or not _number(value) or (integer and int(value) != value) \
            or not low <= value <= high:
        kind = 'a whole number' if integer else 'a number'
        raise InferenceError('%s must be %s from %s to %s, got %r' % (name, kind, low, high, value), error_kind='options')


def validate(params):
    """Check the options the argument spec cannot (ranges, combinations); fill derived values. Returns params."""
    params = dict(params)
    if not re.match(r'^[A-Za-z0-9-]+$', str(params.get('api_key_header') or '')):
        raise InferenceError('api_key_header must be a header name (letters, digits, -)', error_kind='options')
    keys = [('api_key', params.get('api_key')), ('backend_api_key', params.get('backend_api_key'))]
    keys += [('backends[].api_key', b.get('api_key')) for b in params.get('backends') or [] if isinstance(b, dict)]
    for name, key in keys:
        # a control character would make urllib quote the header, the key with it, in a form no mask matches
        if key is not None and (not isinstance(key, str) or re.search(r'[\x00-\x1f\x7f]', key.strip())):
            raise InferenceError('%s holds a control character (the value is not shown)' % name, error_kind='options')
    for name in ('timeout', 'max_tokens', 'gateway_attempts'):
        _in_range(name, params[name])
    checks = params['checks'] or []
    unknown = [c for c in checks if c not in CHECKS]
    if unknown or not checks:
        raise InferenceError('checks must be a non-empty list of %s' % ', '.join(CHECKS), error_kind='options')
    if not params.get('model'):
        if not params.get('models'):
            raise InferenceError('give model (or models, whose first one is used)', error_kind='options')
        params['model'] = params['models'][0]
    params['models'] = params.get('models') or []
    if params.get('expected_content'):
        try:
            re.compile(params['expected_content'])
        except re.error as exc:
            raise InferenceError('expected_content is not a regular expression: %s' % exc, error_kind='options') from None
    if params.get('expected_json_schema') is not None and not isinstance(params['expected_json_schema'], dict):
        raise InferenceError('expected_json_schema must be a JSON schema object', error_kind='options')
    perf = dict(DEFAULT_PERFORMANCE)
    perf.update((k, v) for k, v in (params.get('performance') or {}).items() if v is not None)
    for name in ('count', 'concurrency', 'time_limit'):
        _in_range(name, perf[name])
    params['performance'] = perf
    tol = dict(DEFAULT_TOLERANCES)
    tol.update({k: v for k, v in (params.get('tolerances') or {}).items() if v is not None})
    for name in DEFAULT_TOLERANCES:
        _in_range(name, tol[name], integer=(name == 'latency_slack_ms'))
    params['tolerances'] = tol
    if params['baseline'] != 'none':
        if 'performance' not in checks:
            raise InferenceError('baseline=%s needs the performance check in checks' % params['baseline'], error_kind='options')
        if not params.get('baseline_path'):
            raise InferenceError('baseline=%s needs baseline_path' % params['baseline'], error_kind='options')
    if 'integration' in checks and not (params.get('backends') or params.get('gateway_config')):
        raise InferenceError('the integration check needs backends or gateway_config', error_kind='options')
    for backend in params.get('backends') or []:
        api_base(backend['url'])
    return params


def run_checks(params, check_mode=False, redact=None):
    """Run the chosen checks: the module's result without `msg`. Raises InferenceError when they cannot run at all."""
    redact = redact or Redactor()
    redact.add(params.get('api_key'), params.get('backend_api_key'), *url_secrets(params.get('url')))
    for backend in params.get('backends') or []:
        redact.add(backend.get('api_key'), *url_secrets(backend.get('url')))
    params = validate(params)
    endpoint = Endpoint(params['url'], params['api_key'], params['api_key_header'], params['timeout'],
                        params['validate_certs'], params['use_proxy'], redact)
    results, figures, baseline = [], None, None
    if 'functional' in params['checks']:
        results.extend(functional(endpoint, params))
    if 'integration' in params['checks']:
        backends = [dict(b, name=b.get('name') or b.get('id') or safe_url(b['url'])) for b in params.get('backends') or []]
        if not backends:
            backends = backends_from_config(params['gateway_config'], params['model'])
        results.extend(integration(endpoint, params, backends, redact))
    if 'performance' in params['checks']:
        perf_results, figures, baseline = performance(endpoint, params, check_mode)
        results.extend(perf_results)
    failed = [r['name'] for r in results if not r['passed']]
    result = {'passed': not failed, 'checks': results, 'failed_checks': failed, 'url': safe_url(endpoint.base),
              'model': params['model'], 'figures': figures, 'baseline': baseline,
              'changed': bool(baseline and baseline.get('saved')),
              'unreachable_through_gateway': [r['name'][len('backend '):-len(' through gateway')] for r in results
                                              if not r['passed'] and r['name'].startswith('backend ')
                                              and r['name'].endswith(' through gateway')]}
    return result
