# -*- coding: utf-8 -*-
"""Tests of the lab's OpenAI client load (tests/lab/load_client/gateway_load.py) against a lab inference
server on 127.0.0.1 (a subprocess, killed at teardown; every run is bounded by --max-seconds)."""

# pylint: disable=missing-function-docstring

import importlib.util
import json
from pathlib import Path

import pytest

from test_inference_server import LabServer  # pylint: disable=import-error

SPEC = importlib.util.spec_from_file_location(
    "gateway_load", Path(__file__).resolve().parents[1] / "load_client" / "gateway_load.py")
gateway_load = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gateway_load)

PREFIX = "[node=gpu-node-1 model=llama-3-8b version=2025-11-01]"


def test_check_answer():
    assert gateway_load.check_answer(PREFIX + " tok" * 3, "stop", 3) is None
    assert gateway_load.check_answer(PREFIX + " tok" * 2, "stop", 3) == "truncated: 2 of 3 tokens"
    assert gateway_load.check_answer(PREFIX + " tok" * 3, None, 3) == "finish_reason None"
    assert gateway_load.check_answer("hello", "stop", 3).startswith("no lab prefix")


@pytest.fixture(name="server")
def fixture_server(tmp_path):
    server = LabServer(tmp_path, "--tokens", "5", "--token-interval-ms", "5", "--first-token-latency-ms", "5")
    yield server.start()
    server.kill()


def run(server, tmp_path, monkeypatch, max_tokens):
    monkeypatch.setenv("LAB_KEY", "not-a-secret")
    (tmp_path / "phase").write_text("steady\n", encoding="utf-8")
    report = tmp_path / "report.json"
    rc = gateway_load.main(["--base-url", "http://127.0.0.1:%d/v1" % server.port, "--api-key-env", "LAB_KEY",
                            "--model", "llama-3-8b", "--clients", "2", "--max-tokens", str(max_tokens),
                            "--max-seconds", "1.5", "--timeout", "5", "--phase-file", str(tmp_path / "phase"),
                            "--report", str(report)])
    return rc, json.loads(report.read_text(encoding="utf-8"))


def test_whole_answers_streamed_and_not(server, tmp_path, monkeypatch):
    rc, report = run(server, tmp_path, monkeypatch, 5)
    steady = report["phases"]["steady"]
    assert rc == 0 and steady["ok"] == steady["requests"] > 2
    assert 0 < steady["streamed"] < steady["requests"]
    assert steady["nodes"] == {"gpu-node-1": steady["requests"]}


def test_short_answers_count_as_truncated(server, tmp_path, monkeypatch):
    rc, report = run(server, tmp_path, monkeypatch, 8)  # the server stops at 5 tokens
    assert rc == 1 and report["totals"]["truncated"] == report["totals"]["requests"] > 0
    assert report["samples"][0]["detail"] == "truncated: 5 of 8 tokens"


def test_unreachable_gateway_counts_as_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_KEY", "not-a-secret")
    report = tmp_path / "report.json"
    rc = gateway_load.main(["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "LAB_KEY", "--model", "m",
                            "--clients", "1", "--max-seconds", "0.5", "--timeout", "1", "--report", str(report)])
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 1 and data["totals"]["failed"] == data["totals"]["requests"] > 0
    assert data["samples"][0]["detail"].startswith("APIConnectionError")


def test_the_key_must_come_from_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("LAB_KEY", raising=False)
    with pytest.raises(SystemExit):
        gateway_load.parse_args(["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "LAB_KEY", "--model", "m",
                                 "--report", "r.json"])
    assert "LAB_KEY is empty" in capsys.readouterr().err
