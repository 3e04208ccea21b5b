# -*- coding: utf-8 -*-
"""Tests of the lab model source simulation (tests/lab/model_sources/model_source_server.py), in-process on 127.0.0.1."""

# pylint: disable=missing-function-docstring

import hashlib
import http.client
import importlib.util
import json
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "model_sources" / "model_source_server.py"
SPEC = importlib.util.spec_from_file_location("model_source_server", SERVER)
mss = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mss)

DATA = bytes(range(256)) * 4096  # 1 MiB
COMMIT = "a" * 40


@pytest.fixture
def root(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "model.bin").write_bytes(DATA)
    repo = tmp_path / "hf" / "lab-org" / "tiny-model" / COMMIT
    repo.mkdir(parents=True)
    (repo / "config.json").write_text('{"x": 1}')
    (repo / "weights").mkdir()
    (repo / "weights" / "model.safetensors").write_bytes(DATA)
    (tmp_path / "ollama").mkdir()
    (tmp_path / "ollama" / "catalog.json").write_text(json.dumps({"llama3:8b": {"size": 4096}}))
    return tmp_path


@pytest.fixture
def server(root):
    srv = mss.start_in_background(root)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
        resp = conn.getresponse()
        try:
            data = resp.read()
        except http.client.IncompleteRead as exc:
            data = exc.partial
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def test_plain_file_range_and_etag(server):
    status, headers, data = request(server, "HEAD", "/files/model.bin")
    assert status == 200 and int(headers["Content-Length"]) == len(DATA) and not data
    etag = headers["ETag"]
    assert etag == '"%s"' % hashlib.sha256(DATA).hexdigest()
    status, headers, data = request(server, "GET", "/files/model.bin", headers={"Range": "bytes=1000-", "If-Range": etag})
    assert status == 206 and data == DATA[1000:] and headers["Content-Range"] == "bytes 1000-%d/%d" % (len(DATA) - 1, len(DATA))
    status, headers, data = request(server, "GET", "/files/model.bin", headers={"Range": "bytes=1000-", "If-Range": '"other"'})
    assert status == 200 and data == DATA
    assert request(server, "GET", "/files/model.bin", headers={"Range": "bytes=%d-" % len(DATA)})[0] == 416
    assert request(server, "GET", "/files/nope.bin")[0] == 404
    assert request(server, "GET", "/files/../ollama/catalog.json")[0] == 404


def test_cut_once(root):
    srv = mss.start_in_background(root, cut_once=5000)
    try:
        status, dummy, data = request(srv, "GET", "/files/model.bin")
        assert status == 200 and len(data) == 5000
        assert request(srv, "GET", "/files/model.bin")[2] == DATA
    finally:
        srv.shutdown()
        srv.server_close()


def test_slow(root):
    srv = mss.start_in_background(root, slow=0.5)  # 1 MiB file: about half a second
    try:
        start = time.monotonic()
        assert request(srv, "GET", "/files/model.bin")[2] == DATA
        assert time.monotonic() - start >= 0.45
    finally:
        srv.shutdown()
        srv.server_close()


def test_token(root):
    srv = mss.start_in_background(root, token="t0ken")
    try:
        status, headers, data = request(srv, "GET", "/files/model.bin", headers={"Authorization": "Bearer bad"})
        assert status == 401 and b"t0ken" not in data
        assert request(srv, "GET", "/files/model.bin", headers={"Authorization": "Bearer t0ken"})[0] == 200
        assert request(srv, "GET", "/api/models/lab-org/tiny-model/revision/main")[0] == 401
    finally:
        srv.shutdown()
        srv.server_close()


def test_hub_revision_and_resolve(server):
    status, dummy, data = request(server, "GET", "/api/models/lab-org/tiny-model/revision/main")
    info = json.loads(data)
    assert status == 200 and info["sha"] == COMMIT
    assert [s["rfilename"] for s in info["siblings"]] == ["config.json", "weights/model.safetensors"]
    status, headers, data = request(server, "HEAD", "/lab-org/tiny-model/resolve/%s/weights/model.safetensors" % COMMIT)
    assert status == 200 and headers["X-Repo-Commit"] == COMMIT and headers["X-Linked-Size"] == str(len(DATA))
    assert headers["X-Linked-Etag"] == '"%s"' % hashlib.sha256(DATA).hexdigest()
    status, headers, data = request(server, "GET", "/lab-org/tiny-model/resolve/main/weights/model.safetensors", headers={"Range": "bytes=10-"})
    assert status == 206 and data == DATA[10:]
    status, dummy, data = request(server, "GET", "/api/models/lab-org/tiny-model/tree/main?recursive=true")
    assert [e["path"] for e in json.loads(data)] == ["config.json", "weights/model.safetensors"]
    status, headers, dummy = request(server, "GET", "/api/models/lab-org/tiny-model/revision/" + "b" * 40)
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"
    assert request(server, "GET", "/lab-org/other/resolve/main/x")[1]["X-Error-Code"] == "RepoNotFound"
    assert request(server, "HEAD", "/lab-org/tiny-model/resolve/main/nope")[1]["X-Error-Code"] == "EntryNotFound"


def ndjson(data):
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def test_ollama_pull_tags_copy_delete(server):
    assert json.loads(request(server, "GET", "/api/version")[2])["version"]
    status, dummy, data = request(server, "POST", "/api/pull", {"model": "nope:1b"})
    lines = ndjson(data)
    assert status == 200 and lines[-1] == {"error": "pull model manifest: file does not exist"}
    status, dummy, data = request(server, "POST", "/api/pull", {"model": "llama3:8b"})
    lines = ndjson(data)
    assert lines[0]["status"] == "pulling manifest" and lines[-1]["status"] == "success"
    assert any(line.get("completed") == line.get("total") == 4096 for line in lines)
    tags = json.loads(request(server, "GET", "/api/tags")[2])["models"]
    assert [t["name"] for t in tags] == ["llama3:8b"] and len(tags[0]["digest"]) == 64
    assert request(server, "POST", "/api/copy", {"source": "llama3:8b", "destination": "llama3:8b-previous"})[0] == 200
    assert request(server, "POST", "/api/show", {"model": "llama3:8b-previous"})[0] == 200
    assert request(server, "DELETE", "/api/delete", {"model": "llama3:8b-previous"})[0] == 200
    assert request(server, "DELETE", "/api/delete", {"model": "llama3:8b-previous"})[0] == 404
    assert request(server, "POST", "/api/copy", {"source": "nope", "destination": "x"})[0] == 404


def test_ollama_pull_cut_once(root):
    srv = mss.start_in_background(root, cut_once=3)
    try:
        dummy, dummy2, data = request(srv, "POST", "/api/pull", {"model": "llama3:8b"})
        assert len(ndjson(data)) == 3
        assert json.loads(request(srv, "GET", "/api/tags")[2])["models"] == []
    finally:
        srv.shutdown()
        srv.server_close()
