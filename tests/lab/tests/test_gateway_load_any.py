# -*- coding: utf-8 -*-
"""The load client's check of a real engine's answers (--answers any: llama-server with a tiny random model)."""

# pylint: disable=missing-function-docstring

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "gateway_load", Path(__file__).resolve().parents[1] / "load_client" / "gateway_load.py")
gateway_load = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gateway_load)


def test_any_text_that_ends_with_stop_or_length_is_whole():
    assert gateway_load.check_any_answer('stop') is None
    assert gateway_load.check_any_answer('length') is None


def test_a_stream_without_finish_reason_is_truncated():
    assert gateway_load.check_any_answer(None).startswith('truncated')


def test_another_finish_reason_is_named():
    assert gateway_load.check_any_answer('content_filter') == "finish_reason 'content_filter'"


def test_the_lab_check_stays_the_default(monkeypatch):
    monkeypatch.setenv('K', 'lab-key')
    args = gateway_load.parse_args(['--base-url', 'http://x/v1', '--api-key-env', 'K', '--model', 'm', '--report', 'r'])
    assert args.answers == 'lab'
