# -*- coding: utf-8 -*-
"""Tests of the lab inference server simulation (tests/lab/inference_server/lab_inference_server.py).

Every server runs as a subprocess listening on 127.0.0.1 on a port it picks itself (--port 0, read back
from its log); every wait is bounded and every server is killed in teardown.
"""

# pylint: disable=missing-function-docstring

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "inference_server" / "lab_inference_server.py"
MODEL = "llama-3-8b"
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class LabServer:
    """One lab inference server subprocess."""

    def __init__(self, tmp_path, *args, env=None):
        self.tmp_path = tmp_path
        self.stdout_path = tmp_path / f"server-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        self.args = [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", "0", "--node-name", "gpu-node-1",
                     "--model", MODEL, "--model-version", "2025-11-01", *args]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None

    def start(self, wait=True):
        """Start the process; with wait, block (at most 10 s) until /health answers."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err, env=self.env)  # pylint: disable=consider-using-with
        if wait:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited {self.proc.returncode}: {self.stdout()} {self.stderr()}")
                match = LISTEN_RE.search(self.stdout())
                if match:
                    self.port = int(match.group(1))
                    if self.get("/health")[0] == 200:
                        return self
                time.sleep(0.05)
            raise AssertionError(f"server did not become healthy: {self.stdout()} {self.stderr()}")
        return self

    def stdout(self):
        """What the server printed to stdout so far."""
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self):
        """What the server printed to stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def conn(self, timeout=10):
        """A new HTTP/1.1 connection to the server."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        """GET path on a fresh connection: (status, headers, body)."""
        conn = self.conn()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        except OSError:
            return None, {}, b""
        finally:
            conn.close()

    def post(self, path, body, conn=None):
        """POST a JSON body (or raw bytes): (status, headers, body)."""
        own = conn is None
        conn = conn or self.conn()
        try:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            if own:
                conn.close()

    def running(self):
        """vllm:num_requests_running as an int."""
        body = self.get("/metrics")[2]
        match = re.search(r'^vllm:num_requests_running\{model_name="' + MODEL + r'"\} (\d+)$', body.decode(), re.M)
        assert match, body
        return int(match.group(1))

    def kill(self):
        """Kill the process if it still runs (teardown)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(name="start_server")
def fixture_start_server(tmp_path):
    """Factory: start_server(*args, env=None, wait=True) -> LabServer; all are killed at teardown."""
    servers = []

    def start(*args, env=None, wait=True):
        server = LabServer(tmp_path, *args, env=env)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(name="server")
def fixture_server(start_server):
    """A fast server: 5 tokens, 10 ms apart."""
    return start_server("--tokens", "5", "--token-interval-ms", "10", "--first-token-latency-ms", "20")


def fake_nvidia_smi(tmp_path, body):
    """Write an executable shell script standing in for nvidia-smi."""
    path = tmp_path / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def chat(stream=False, **extra):
    """A chat completion request body."""
    return {"model": MODEL, "messages": [{"role": "user", "content": "who are you"}], "stream": stream, **extra}


def open_stream(server, body, timeout=10):
    """Start a streaming request; return (connection, response) with the headers read."""
    conn = server.conn(timeout=timeout)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    return conn, resp


def read_events(resp, limit=None):
    """Read SSE data payloads until EOF (or `limit` events); 'CUT' is appended on a transport error.

    http.client's readline() reports a chunked body cut mid-stream as a plain EOF: tests that must tell a cut
    from a clean end look at the raw socket or at the missing [DONE].
    """
    events = []
    try:
        while limit is None or len(events) < limit:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("data: "):
                events.append(line[len("data: "):])
    except (http.client.IncompleteRead, ConnectionError, OSError):
        events.append("CUT")
    return events


def test_health_and_models(server):
    status, headers, body = server.get("/health")
    assert status == 200 and body == b""
    assert headers["X-Lab-Node"] == "gpu-node-1" and headers["X-Lab-Model-Version"] == "2025-11-01"
    status, dummy, body = server.get("/v1/models")
    assert status == 200
    models = json.loads(body)
    assert models["object"] == "list" and len(models["data"]) == 1
    card = models["data"][0]
    assert card["id"] == MODEL and card["object"] == "model" and card["owned_by"] == "onprem-ai-lab"
    assert card["root"] == MODEL and isinstance(card["created"], int) and card["max_model_len"] > 0


def test_chat_completion_non_streaming_and_keep_alive(server):
    conn = server.conn()
    try:
        for dummy in range(3):  # one keep-alive connection, several requests
            status, headers, body = server.post("/v1/chat/completions", chat(max_tokens=3), conn=conn)
            assert status == 200
            assert headers["X-Lab-Node"] == "gpu-node-1" and headers["X-Lab-Model-Version"] == "2025-11-01"
            assert int(headers["Content-Length"]) == len(body)
            obj = json.loads(body)
            assert obj["object"] == "chat.completion" and obj["model"] == MODEL
            assert obj["system_fingerprint"] == "gpu-node-1/2025-11-01"
            message = obj["choices"][0]["message"]
            assert message["role"] == "assistant"
            assert message["content"] == "[node=gpu-node-1 model=llama-3-8b version=2025-11-01] tok tok tok"
            assert obj["choices"][0]["finish_reason"] == "stop"
            assert obj["usage"]["completion_tokens"] == 3
            assert obj["usage"]["total_tokens"] == obj["usage"]["prompt_tokens"] + 3
        # max_tokens above the configured length is capped to it (5)
        body = server.post("/v1/chat/completions", chat(max_tokens=100), conn=conn)[2]
        assert json.loads(body)["usage"]["completion_tokens"] == 5
    finally:
        conn.close()
    assert '"POST /v1/chat/completions" 200' in server.stdout()


def test_text_completion(server):
    status, dummy, body = server.post("/v1/completions", {"model": MODEL, "prompt": "hello", "max_tokens": 2})
    assert status == 200
    obj = json.loads(body)
    assert obj["object"] == "text_completion"
    assert obj["choices"][0]["text"] == "[node=gpu-node-1 model=llama-3-8b version=2025-11-01] tok tok"


def test_unknown_model_and_bad_json(server):
    status, headers, body = server.post("/v1/chat/completions", dict(chat(), model="no-such-model"))
    assert status == 404
    assert headers["X-Lab-Node"] == "gpu-node-1"
    err = json.loads(body)["error"]
    assert err["type"] == "NotFoundError" and err["code"] == 404 and err["param"] is None
    assert "no-such-model" in err["message"]
    status, dummy, body = server.post("/v1/chat/completions", b"{not json")
    assert status == 400
    err = json.loads(body)["error"]
    assert err["type"] == "BadRequestError" and err["code"] == 400
    status = server.get("/no/such/path")[0]
    assert status == 404


def test_streaming(server):
    conn, resp = open_stream(server, chat(stream=True, max_tokens=4, stream_options={"include_usage": True}))
    try:
        assert resp.getheader("X-Lab-Node") == "gpu-node-1"
        events = read_events(resp)
    finally:
        conn.close()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["system_fingerprint"] == "gpu-node-1/2025-11-01" for chunk in chunks)
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["content"] == "[node=gpu-node-1 model=llama-3-8b version=2025-11-01]"
    token_chunks = [c for c in chunks[1:] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(token_chunks) == 4
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop"]
    assert len(finals) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_metrics_counts_in_flight_streams(start_server):
    server = start_server("--tokens", "20", "--token-interval-ms", "50", "--first-token-latency-ms", "0")
    text = server.get("/metrics")[2].decode()
    for needle in ("# TYPE vllm:num_requests_running gauge", f'vllm:num_requests_waiting{{model_name="{MODEL}"}} 0',
                   "# TYPE vllm:request_success_total counter",
                   f'vllm:request_success_total{{finished_reason="stop",model_name="{MODEL}"}} 0'):
        assert needle in text
    assert server.running() == 0
    results = []

    def stream():
        conn, resp = open_stream(server, chat(stream=True))
        try:
            results.append(read_events(resp))
        finally:
            conn.close()

    threads = [threading.Thread(target=stream, daemon=True) for dummy in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3
    seen = 0
    while time.monotonic() < deadline and seen != 2:
        seen = server.running()
        time.sleep(0.05)
    assert seen == 2
    for thread in threads:
        thread.join(timeout=5)
    assert [events[-1] for events in results] == ["[DONE]", "[DONE]"]
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and server.running() != 0:
        time.sleep(0.05)
    assert server.running() == 0
    assert f'vllm:request_success_total{{finished_reason="stop",model_name="{MODEL}"}} 2' in server.get("/metrics")[2].decode()


def test_client_disconnect_ends_request(start_server):
    server = start_server("--tokens", "40", "--token-interval-ms", "100", "--first-token-latency-ms", "0")
    conn, resp = open_stream(server, chat(stream=True))
    assert len(read_events(resp, limit=2)) == 2
    assert server.running() == 1
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and server.running() != 0:
        time.sleep(0.05)
    assert server.running() == 0
    assert f'vllm:request_success_total{{finished_reason="stop",model_name="{MODEL}"}} 0' in server.get("/metrics")[2].decode()


def test_require_gpu_registers_gpu_process(start_server, tmp_path):
    smi = fake_nvidia_smi(tmp_path, 'echo "0, GPU-aaaa"\necho "1, GPU-bbbb"\n')
    root = tmp_path / "simroot"
    server = start_server("--require-gpu", "--nvidia-smi", smi, "--gpu-memory-mib", "1234", env={"NVIDIA_SIM_ROOT": str(root)})
    record_path = root / "run" / "nvidia-sim" / "procs" / f"{server.proc.pid}.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record == {"pid": server.proc.pid, "name": "lab-inference-server", "gpus": [0, 1], "used_memory_mib": 1234}
    assert os.listdir(record_path.parent) == [record_path.name]  # no temp files left behind


def test_sigterm_cuts_stream_and_unregisters(start_server, tmp_path):
    smi = fake_nvidia_smi(tmp_path, 'echo "0, GPU-aaaa"\necho "1, GPU-bbbb"\n')
    root = tmp_path / "simroot"
    server = start_server("--require-gpu", "--nvidia-smi", smi, "--tokens", "40", "--token-interval-ms", "100",
                          "--first-token-latency-ms", "0", env={"NVIDIA_SIM_ROOT": str(root)})
    record_path = root / "run" / "nvidia-sim" / "procs" / f"{server.proc.pid}.json"
    assert json.loads(record_path.read_text(encoding="utf-8"))["gpus"] == [0, 1]
    # A raw socket shows exactly what went over the wire: the chunked body must end without its terminator.
    body = json.dumps(chat(stream=True)).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        received = b""
        while received.count(b"data: ") < 3:
            data = sock.recv(65536)
            assert data, received
            received += data
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        assert time.monotonic() - sent < 1.5
    assert received.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in received
    assert b"[DONE]" not in received and not received.endswith(b"0\r\n\r\n")
    assert received.count(b'"content": " tok"') < 40
    assert server.proc.wait(timeout=3) == 0
    assert time.monotonic() - sent < 1.5
    assert not record_path.exists()
    assert "SIGTERM" in server.stdout() and "cut (server stopping)" in server.stdout()
    assert "Traceback" not in server.stderr()


def test_require_gpu_driver_mismatch_exits_1(start_server, tmp_path):
    smi = fake_nvidia_smi(tmp_path, 'echo "Failed to initialize NVML: Driver/library version mismatch"\nexit 18\n')
    root = tmp_path / "simroot"
    server = start_server("--require-gpu", "--nvidia-smi", smi, env={"NVIDIA_SIM_ROOT": str(root)}, wait=False)
    assert server.proc.wait(timeout=10) == 1
    assert "Driver/library version mismatch" in server.stderr()
    assert "RuntimeError" in server.stderr()
    assert not (root / "run" / "nvidia-sim" / "procs").exists() or not os.listdir(root / "run" / "nvidia-sim" / "procs")


def test_require_gpu_without_nvidia_smi_exits_1(start_server, tmp_path):
    server = start_server("--require-gpu", "--nvidia-smi", str(tmp_path / "missing-nvidia-smi"), wait=False)
    assert server.proc.wait(timeout=10) == 1
    assert "Found no NVIDIA driver on your system" in server.stderr()


def test_config_file_and_cli_precedence(start_server, tmp_path):
    config = tmp_path / "inference-server.json"
    config.write_text(json.dumps({"model_version": "from-file", "tokens": 2, "token_interval_ms": 1, "first_token_latency_ms": 0,
                                  "max_model_len": 4096}), encoding="utf-8")
    # LabServer passes --model-version 2025-11-01 on the command line: it wins over the file.
    server = start_server("--config", str(config))
    status, headers, body = server.post("/v1/chat/completions", chat())
    assert status == 200 and headers["X-Lab-Model-Version"] == "2025-11-01"
    assert json.loads(body)["usage"]["completion_tokens"] == 2
    assert json.loads(server.get("/v1/models")[2])["data"][0]["max_model_len"] == 4096
    config.write_text(json.dumps({"tokenz": 3}), encoding="utf-8")
    bad = start_server("--config", str(config), wait=False)
    assert bad.proc.wait(timeout=10) == 2
    assert "tokenz" in bad.stderr()


def test_metrics_modes(start_server, tmp_path):
    """metrics (config key or --metrics): what /metrics answers, for drains that must not read "cannot tell" as idle."""
    config = tmp_path / "inference-server.json"
    config.write_text(json.dumps({"metrics": "absent"}), encoding="utf-8")
    absent = start_server("--config", str(config))
    status, headers, body = absent.get("/metrics")
    assert (status, body) == (404, b"404 page not found")  # as Ollama answers
    assert absent.post("/v1/chat/completions", chat())[0] == 200  # everything else serves as usual

    assert start_server("--metrics", "error").get("/metrics")[0] == 500

    malformed = start_server("--metrics", "malformed")
    status, headers, body = malformed.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert body.decode().endswith('vllm:num_requests_running{model_na')  # cut off inside the label set

    stamped = start_server("--metrics", "timestamps", "--tokens", "20", "--token-interval-ms", "50", "--first-token-latency-ms", "0")
    conn, resp = open_stream(stamped, chat(stream=True))
    try:
        read_events(resp, limit=1)
        text = stamped.get("/metrics")[2].decode()
        match = re.search(r'^vllm:num_requests_running\{model_name="' + MODEL + r'"\} 1 (\d{13})$', text, re.M)
        assert match, text
        assert abs(int(match.group(1)) / 1000 - time.time()) < 60
        assert all(line.startswith("#") or re.search(r" \d{13}$", line) for line in text.splitlines())
    finally:
        conn.close()

    config.write_text(json.dumps({"metrics": "none"}), encoding="utf-8")
    bad = start_server("--config", str(config), wait=False)
    assert bad.proc.wait(timeout=10) == 2
    assert "metrics must be one of" in bad.stderr()


def test_openai_client(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="lab", timeout=10, max_retries=0)
    try:
        assert [m.id for m in client.models.list()] == [MODEL]
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert answer.choices[0].message.content == "[node=gpu-node-1 model=llama-3-8b version=2025-11-01] tok tok tok"
        assert answer.system_fingerprint == "gpu-node-1/2025-11-01"
        stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "[node=gpu-node-1 model=llama-3-8b version=2025-11-01] tok tok tok"
        assert chunks[-1].usage.completion_tokens == 3
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    finally:
        client.close()
