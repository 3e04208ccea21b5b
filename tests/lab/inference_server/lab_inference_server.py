# -*- coding: utf-8 -*-
# onprem_ai.maintenance test lab: LAB SIMULATION of a vLLM-like OpenAI-compatible inference server.
#
# This is NOT an inference server. It loads no model and uses no GPU. It answers the OpenAI HTTP API
# (/health, /v1/models, /v1/chat/completions, /v1/completions, /metrics) with canned text that says
# which node, model and model version answered, with configurable latencies, so that rolling
# maintenance (drain, stop, update, restart, health-check, re-enable in LiteLLM) can be exercised and
# observed in a lab without GPUs. Python 3.11 standard library only; started as
#     python3 lab_inference_server.py --config /etc/onprem-ai-lab/inference-server.json
# See README.md beside this file.
"""Lab simulation of a vLLM-like OpenAI-compatible inference server (standard library only)."""

import argparse
import http.server
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SERVER_NAME = "lab-inference-server"
# The engine version answered by GET /version (like vLLM's): "lab" when run as this file; the packaged wheels
# (build_wheels.py) set their own version before main().
ENGINE_VERSION = "lab"
OWNED_BY = "onprem-ai-lab"
MAX_BODY_BYTES = 10 * 1024 * 1024
PAUSE_SLICE_S = 0.05
NO_DRIVER_MESSAGE = ("RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU "
                     "and installed a driver from http://www.nvidia.com/Download/index.aspx")
NO_GPU_MESSAGE = "RuntimeError: No CUDA GPUs are available"

DEFAULTS = {
    "host": "0.0.0.0",
    "port": 8000,
    "model": "llama-3-8b",
    "model_version": "1",
    "node_name": None,  # socket.gethostname() at startup
    "first_token_latency_ms": 50,
    "tokens": 16,
    "token_interval_ms": 20,
    "max_model_len": 8192,
    "require_gpu": False,
    "gpu_memory_mib": 20480,
    "nvidia_smi": "nvidia-smi",
    "metrics": "vllm",
    "error_percent": 0,
    "api_key": None,
}
# What GET /metrics answers: vLLM's text (vllm), the same with a timestamp on every sample (timestamps), the text cut
# off in the middle of a label set (malformed), 500 (error), or 404 like an engine without metrics, e.g. Ollama (absent).
METRICS_MODES = ("vllm", "timestamps", "malformed", "error", "absent")
INT_KEYS = ("port", "first_token_latency_ms", "tokens", "token_interval_ms", "max_model_len", "gpu_memory_mib",
            "error_percent")
STR_KEYS = ("host", "model", "model_version", "node_name", "nvidia_smi", "metrics")


class ConfigError(Exception):
    """Invalid command line or configuration file."""


class GpuError(Exception):
    """nvidia-smi failed or found no GPU (the message is what a real server would print)."""


def log(message, stream=None):
    """Print one log line (stdout goes to the journal under systemd)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    print(f"{stamp} {SERVER_NAME}: {message}", file=stream or sys.stdout, flush=True)


def parse_args(argv):
    """Parse the command line; every option defaults to None so that a config file can fill it."""
    parser = argparse.ArgumentParser(prog="lab_inference_server.py",
                                     description="onprem_ai lab inference server (simulation of a vLLM OpenAI-compatible server)")
    parser.add_argument("--config", help="JSON file with the same keys in snake_case (the command line wins)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--model", help="served model name")
    parser.add_argument("--model-version", help="model version reported to clients (read once at startup)")
    parser.add_argument("--node-name", help="name reported to clients (default: the host name)")
    parser.add_argument("--first-token-latency-ms", type=int)
    parser.add_argument("--tokens", type=int, help="default (and maximum) generation length in tokens")
    parser.add_argument("--token-interval-ms", type=int)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--require-gpu", action=argparse.BooleanOptionalAction, default=None,
                        help="fail at startup unless nvidia-smi lists a GPU; register as a simulated GPU process")
    parser.add_argument("--gpu-memory-mib", type=int, help="used_memory_mib in the simulated GPU process record")
    parser.add_argument("--nvidia-smi", help="nvidia-smi binary to run for --require-gpu")
    parser.add_argument("--metrics", choices=METRICS_MODES,
                        help="what GET /metrics answers (default vllm; absent: 404 like Ollama)")
    parser.add_argument("--error-percent", type=int,
                        help="answer this share (0-100) of completions with a 500, spread evenly (fault injection)")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer <key>' under /v1 like vLLM's --api-key")
    return parser.parse_args(argv)


def load_config(args):
    """Merge defaults < JSON config file < command line into one validated dict."""
    config = dict(DEFAULTS)
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                from_file = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config file {args.config}: {exc}") from exc
        if not isinstance(from_file, dict):
            raise ConfigError(f"config file {args.config} must hold a JSON object")
        unknown = sorted(set(from_file) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown key(s) in {args.config}: {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}")
        config.update(from_file)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    if config["node_name"] in (None, ""):
        config["node_name"] = socket.gethostname()
    validate_config(config)
    return config


def validate_config(config):
    """Raise ConfigError unless every value has the right type and range."""
    for key in INT_KEYS:
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {config[key]!r}")
    for key in STR_KEYS:
        if not isinstance(config[key], str) or not config[key]:
            raise ConfigError(f"{key} must be a non-empty string, got {config[key]!r}")
    if not isinstance(config["require_gpu"], bool):
        raise ConfigError(f"require_gpu must be true or false, got {config['require_gpu']!r}")
    if config["metrics"] not in METRICS_MODES:
        raise ConfigError(f"metrics must be one of {', '.join(METRICS_MODES)}, got {config['metrics']!r}")
    if config["error_percent"] > 100:
        raise ConfigError(f"error_percent must be from 0 to 100, got {config['error_percent']}")
    if config["api_key"] is not None and (not isinstance(config["api_key"], str) or not config["api_key"]):
        raise ConfigError("api_key must be a non-empty string")
    if config["tokens"] < 1:
        raise ConfigError("tokens must be at least 1")
    if config["port"] > 65535:
        raise ConfigError(f"port out of range: {config['port']}")


def query_gpus(nvidia_smi):
    """Return the GPU indexes nvidia-smi lists, or raise GpuError with the message a real server would print."""
    cmd = [nvidia_smi, "--query-gpu=index,uuid", "--format=csv,noheader"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise GpuError(f"{nvidia_smi}: not found\n{NO_DRIVER_MESSAGE}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuError(f"{nvidia_smi}: {exc}\n{NO_DRIVER_MESSAGE}") from exc
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        detail = output or f"exit status {proc.returncode}"
        raise GpuError(f"{detail}\nRuntimeError: nvidia-smi failed (exit status {proc.returncode}): {detail}")
    indexes = []
    for line in proc.stdout.splitlines():
        first = line.split(",")[0].strip()
        if first.isdigit():
            indexes.append(int(first))
    if not indexes:
        raise GpuError(f"nvidia-smi listed no GPU ({output or 'empty output'})\n{NO_GPU_MESSAGE}")
    return indexes


def gpu_proc_path(pid):
    """Path of the simulated GPU compute process record; NVIDIA_SIM_ROOT is a prefix (default /)."""
    root = os.environ.get("NVIDIA_SIM_ROOT") or "/"
    return os.path.join(root, "run", "nvidia-sim", "procs", f"{pid}.json")


def register_gpu_process(gpus, used_memory_mib):
    """Atomically write run/nvidia-sim/procs/<pid>.json; return its path."""
    pid = os.getpid()
    path = gpu_proc_path(pid)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    record = {"pid": pid, "name": SERVER_NAME, "gpus": gpus, "used_memory_mib": used_memory_mib}
    fd, tmp = tempfile.mkstemp(prefix=f".{pid}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def unregister_gpu_process(path):
    """Remove the GPU process record (ignore it if already gone)."""
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class LabState:  # pylint: disable=too-many-instance-attributes
    """Configuration, metrics and shutdown state shared by all request threads."""

    def __init__(self, config):
        self.config = config
        self.started = int(time.time())
        self.lock = threading.Lock()
        self.running = 0
        self.success = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.stopping = threading.Event()
        self.connections = set()
        self.completions = 0

    def inject_error(self):
        """True for error_percent of the completions, spread evenly (the n-th fails when floor(n*p/100) steps up)."""
        percent = self.config.get("error_percent") or 0
        with self.lock:
            self.completions += 1
            n = self.completions
        return (n * percent) // 100 > ((n - 1) * percent) // 100

    def request_started(self):
        """Count one more in-flight completion."""
        with self.lock:
            self.running += 1

    def request_ended(self, ok, prompt_tokens, generation_tokens):
        """Count one in-flight completion less; count it as a success if it finished."""
        with self.lock:
            self.running -= 1
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generation_tokens
            if ok:
                self.success += 1

    def add_connection(self, conn):
        """Track a client socket so that a shutdown can cut it; False if already stopping."""
        with self.lock:
            if self.stopping.is_set():
                return False
            self.connections.add(conn)
            return True

    def drop_connection(self, conn):
        """Forget a client socket."""
        with self.lock:
            self.connections.discard(conn)

    def cut_connections(self):
        """Shut down every client socket, as the kernel does when a server process dies."""
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def metrics_text(self):
        """Prometheus text exposition with vLLM's metric names (as the metrics mode has it: timestamps, malformed)."""
        model = self.config["model"]
        mode = self.config.get("metrics", "vllm")
        with self.lock:
            running, success = self.running, self.success
            prompt_tokens, generation_tokens = self.prompt_tokens, self.generation_tokens
        label = f'model_name="{model}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {running}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} 0",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{finished_reason="stop",{label}}} {success}',
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} {prompt_tokens}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{label}}} {generation_tokens}",
            "# HELP lab:model_info Lab simulation: node and model version loaded at startup.",
            "# TYPE lab:model_info gauge",
            f'lab:model_info{{{label},model_version="{self.config["model_version"]}",node="{self.config["node_name"]}"}} 1',
        ]
        if mode == "timestamps":
            stamp = int(time.time() * 1000)
            lines = [line if line.startswith("#") else f"{line} {stamp}" for line in lines]
        elif mode == "malformed":
            # cut off in the middle of the in-flight gauge's label set, as a body truncated on the way
            text = "\n".join(lines)
            return text[:text.index("vllm:num_requests_running{") + len("vllm:num_requests_running{model_na")]
        return "\n".join(lines) + "\n"


def error_body(message, err_type, code):
    """OpenAI-style error object."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


class RequestError(Exception):
    """A client error to answer with an OpenAI error object."""

    def __init__(self, status, message, err_type):
        super().__init__(message)
        self.status = status
        self.err_type = err_type


def count_prompt_tokens(body, kind):
    """Rough prompt size in words (the simulation has no tokenizer)."""
    if kind == "chat":
        parts = []
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(item.get("text", "")) for item in content if isinstance(item, dict))
        text = " ".join(parts)
    else:
        prompt = body.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(str(item) for item in prompt) if isinstance(prompt, list) else ""
    return max(1, len(text.split()))


class LabHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler for the simulated OpenAI API."""

    protocol_version = "HTTP/1.1"
    server_version = "lab-inference-server/1.0"

    def version_string(self):
        return self.server_version

    # ----- plumbing -------------------------------------------------------------------------------
    @property
    def lab(self):
        """The shared LabState."""
        return self.server.lab

    def setup(self):
        super().setup()
        if not self.lab.add_connection(self.connection):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish(self):
        self.lab.drop_connection(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self):
        self._t0 = time.monotonic()  # pylint: disable=attribute-defined-outside-init
        self._status = None  # pylint: disable=attribute-defined-outside-init
        self._note = ""  # pylint: disable=attribute-defined-outside-init
        try:
            super().handle_one_request()
        except (ConnectionError, OSError) as exc:
            self.close_connection = True
            if self._status is not None and not self._note:
                self._note = f"client-gone ({exc.__class__.__name__})"  # pylint: disable=attribute-defined-outside-init
        if self._status is not None:
            duration = time.monotonic() - self._t0
            note = f" {self._note}" if self._note else ""
            log(f'{self.client_address[0]} "{self.command} {self.path}" {self._status} {duration:.3f}s{note}')

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """Silence the default access log; handle_one_request prints one line per request."""

    def send_response(self, code, message=None):
        self._status = code  # pylint: disable=attribute-defined-outside-init
        super().send_response(code, message)
        self.send_header("X-Lab-Node", self.lab.config["node_name"])
        self.send_header("X-Lab-Model-Version", self.lab.config["model_version"])

    def _send_bytes(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status, obj):
        self._send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    raise RequestError(413, "request body too large", "BadRequestError")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, "request body too large", "BadRequestError")
        return self.rfile.read(length) if length > 0 else b""

    def _pause(self, seconds):
        """Sleep; False as soon as the server is stopping or the client has gone away."""
        deadline = time.monotonic() + seconds
        while True:
            if self.lab.stopping.is_set() or self._client_gone():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self.lab.stopping.wait(min(remaining, PAUSE_SLICE_S)):
                return False

    def _client_gone(self):
        try:
            readable = select.select([self.connection], [], [], 0)[0]
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # ----- routes ---------------------------------------------------------------------------------
    def _unauthorized(self, path):
        """With api_key set, answer 401 under /v1 without the right bearer token (as vLLM's --api-key); True if so."""
        key = self.lab.config.get("api_key")
        if not key or not path.startswith("/v1"):
            return False
        if self.headers.get("Authorization", "") == f"Bearer {key}":
            return False
        self._send_json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self):  # pylint: disable=invalid-name
        """GET /health, /version, /v1/models, /metrics."""
        path = self.path.split("?", 1)[0]
        if self._unauthorized(path):
            return
        if path == "/health":
            self._send_bytes(200, b"", "application/json")
        elif path == "/version":
            self._send_json(200, {"version": ENGINE_VERSION})
        elif path == "/v1/models":
            cfg = self.lab.config
            card = {"id": cfg["model"], "object": "model", "created": self.lab.started, "owned_by": OWNED_BY,
                    "root": cfg["model"], "parent": None, "max_model_len": cfg["max_model_len"], "permission": []}
            self._send_json(200, {"object": "list", "data": [card]})
        elif path == "/metrics" and self.lab.config["metrics"] == "absent":
            self._send_bytes(404, b"404 page not found", "text/plain")  # what Ollama answers (no metrics endpoint)
        elif path == "/metrics" and self.lab.config["metrics"] == "error":
            self._send_bytes(500, b"Internal Server Error", "text/plain; charset=utf-8")
        elif path == "/metrics":
            self._send_bytes(200, self.lab.metrics_text().encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8")
        elif path in ("/v1/chat/completions", "/v1/completions"):
            self._send_json(405, {"detail": "Method Not Allowed"})
        else:
            self._send_json(404, {"detail": "Not Found"})

    def do_HEAD(self):  # pylint: disable=invalid-name
        """HEAD is GET without a body."""
        self.do_GET()

    def do_POST(self):  # pylint: disable=invalid-name
        """POST /v1/chat/completions and /v1/completions."""
        path = self.path.split("?", 1)[0]
        kinds = {"/v1/chat/completions": "chat", "/v1/completions": "text"}
        try:
            raw = self._read_body()
            if self._unauthorized(path):
                return
            if path not in kinds:
                if path in ("/health", "/version", "/v1/models", "/metrics"):
                    self._send_json(405, {"detail": "Method Not Allowed"})
                else:
                    self._send_json(404, {"detail": "Not Found"})
                return
            body = self._parse_request(raw, kinds[path])
            if self.lab.inject_error():
                raise RequestError(500, "lab fault injection: internal server error (error_percent)", "InternalServerError")
        except RequestError as exc:
            self._send_json(exc.status, error_body(str(exc), exc.err_type, exc.status))
            return
        except ValueError as exc:
            self.close_connection = True
            self._send_json(400, error_body(f"bad request framing: {exc}", "BadRequestError", 400))
            return
        self._complete(body, kinds[path])

    def _parse_request(self, raw, kind):
        cfg = self.lab.config
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(400, f"Invalid JSON in request body: {exc}", "BadRequestError") from exc
        if not isinstance(body, dict):
            raise RequestError(400, "Request body must be a JSON object", "BadRequestError")
        model = body.get("model", cfg["model"])
        if model != cfg["model"]:
            raise RequestError(404, f"The model `{model}` does not exist.", "NotFoundError")
        if kind == "chat":
            if not isinstance(body.get("messages"), list) or not body["messages"]:
                raise RequestError(400, "'messages' must be a non-empty list", "BadRequestError")
        elif not isinstance(body.get("prompt"), (str, list)):
            raise RequestError(400, "'prompt' must be a string or a list", "BadRequestError")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise RequestError(400, f"max_tokens must be a positive integer, got {max_tokens!r}", "BadRequestError")
        body["_tokens"] = min(max_tokens or cfg["tokens"], cfg["tokens"])
        return body

    # ----- the simulated generation ---------------------------------------------------------------
    def _complete(self, body, kind):
        cfg = self.lab.config
        n_tokens = body["_tokens"]
        prompt_tokens = count_prompt_tokens(body, kind)
        prefix = f"[node={cfg['node_name']} model={cfg['model']} version={cfg['model_version']}]"
        meta = {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": cfg["model"],
            "system_fingerprint": f"{cfg['node_name']}/{cfg['model_version']}",
        }
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens, "total_tokens": prompt_tokens + n_tokens}
        self.lab.request_started()
        ok = False
        sent = 0
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                ok, sent = self._stream(kind, meta, prefix, n_tokens, usage if include_usage else None)
            else:
                ok = self._pause(cfg["first_token_latency_ms"] / 1000.0 + n_tokens * cfg["token_interval_ms"] / 1000.0)
                if ok:
                    text = prefix + " tok" * n_tokens
                    if kind == "chat":
                        choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                                  "logprobs": None, "finish_reason": "stop", "stop_reason": None}
                        obj = {"id": meta["id"], "object": "chat.completion", "created": meta["created"], "model": meta["model"],
                               "choices": [choice], "usage": usage, "system_fingerprint": meta["system_fingerprint"]}
                    else:
                        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
                        obj = {"id": meta["id"], "object": "text_completion", "created": meta["created"], "model": meta["model"],
                               "choices": [choice], "usage": usage, "system_fingerprint": meta["system_fingerprint"]}
                    self._send_json(200, obj)
                    sent = n_tokens
                else:
                    self.close_connection = True
                    self._status = 499  # pylint: disable=attribute-defined-outside-init
                    self._note = "cut (server stopping)" if self.lab.stopping.is_set() else "client-gone"  # pylint: disable=attribute-defined-outside-init
        finally:
            self.lab.request_ended(ok, prompt_tokens if ok else 0, sent)

    def _stream(self, kind, meta, prefix, n_tokens, usage):
        """Send SSE chunks; return (finished, tokens sent). On shutdown the stream is cut without [DONE]."""
        cfg = self.lab.config
        chunked = self.request_version != "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()

        def write(data):
            payload = data.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload) if chunked else payload)

        def chunk(delta_text, role=False, finish=None):
            if kind == "chat":
                delta = {"role": "assistant", "content": delta_text} if role else ({"content": delta_text} if delta_text else {})
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                obj_type = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": delta_text, "logprobs": None, "finish_reason": finish}
                obj_type = "text_completion"
            obj = {"id": meta["id"], "object": obj_type, "created": meta["created"], "model": meta["model"],
                   "system_fingerprint": meta["system_fingerprint"], "choices": [choice]}
            write(f"data: {json.dumps(obj)}\n\n")

        def cut():
            self.close_connection = True
            self._note = "cut (server stopping)" if self.lab.stopping.is_set() else "client-gone"  # pylint: disable=attribute-defined-outside-init

        if not self._pause(cfg["first_token_latency_ms"] / 1000.0):
            cut()
            return False, 0
        chunk(prefix, role=True)
        for sent in range(n_tokens):
            if not self._pause(cfg["token_interval_ms"] / 1000.0):
                cut()
                return False, sent
            chunk(" tok")
        if self.lab.stopping.is_set():
            cut()
            return False, n_tokens
        chunk("", finish="stop")
        if usage is not None:
            obj = {"id": meta["id"], "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                   "created": meta["created"], "model": meta["model"], "system_fingerprint": meta["system_fingerprint"],
                   "choices": [], "usage": usage}
            write(f"data: {json.dumps(obj)}\n\n")
        write("data: [DONE]\n\n")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return True, n_tokens


class LabHTTPServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP server (daemon threads) that keeps quiet about clients that went away."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, lab):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.lab = lab
        super().__init__(address, LabHandler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.lab.stopping.is_set():
            return
        super().handle_error(request, client_address)


def main(argv=None):
    """Run the server until SIGTERM/SIGINT; return the exit status."""
    try:
        config = load_config(parse_args(argv))
    except ConfigError as exc:
        log(f"error: {exc}", sys.stderr)
        return 2
    lab = LabState(config)

    def on_signal(signum, _frame):
        if not lab.stopping.is_set():
            log(f"received {signal.Signals(signum).name}, shutting down (open streams are cut)")
        lab.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    proc_file = None
    server = None
    try:
        gpus = []
        if config["require_gpu"]:
            try:
                gpus = query_gpus(config["nvidia_smi"])
            except GpuError as exc:
                print(str(exc), file=sys.stderr, flush=True)
                log("error: no usable GPU, exiting with status 1", sys.stderr)
                return 1
            proc_file = register_gpu_process(gpus, config["gpu_memory_mib"])
        try:
            server = LabHTTPServer((config["host"], config["port"]), lab)
        except OSError as exc:
            log(f"error: cannot listen on {config['host']}:{config['port']}: {exc}", sys.stderr)
            return 1
        port = server.server_address[1]
        log(f"SIMULATION started pid={os.getpid()} node={config['node_name']} model={config['model']} "
            f"version={config['model_version']} engine={ENGINE_VERSION} gpus={gpus} listening on http://{config['host']}:{port}")
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="serve", daemon=True)
        serving.start()
        while not lab.stopping.wait(0.5):
            pass
        server.shutdown()
        server.server_close()
        lab.cut_connections()
        log("stopped")
        return 0
    finally:
        if server is not None:
            lab.stopping.set()
            lab.cut_connections()
        unregister_gpu_process(proc_file)


if __name__ == "__main__":
    sys.exit(main())
