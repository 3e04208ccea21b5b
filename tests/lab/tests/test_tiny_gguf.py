# -*- coding: utf-8 -*-
"""Tests of the lab's tiny GGUF models (tests/lab/model_sources/tiny_gguf.py), read back with the gguf package's own
reader: a llama model llama.cpp can load (architecture, shapes, vocabulary, chat template), the same bytes on every
run, v1 and v2 different, the flaky version's template failing (long prompts only), the slow one larger, the corrupt
one cut short. The llama-server side (it loads v1/v2, refuses the corrupt file, answers 400s for part of the flaky
template's real traffic, the slow one several times slower) is the strategies molecule scenario's."""

# pylint: disable=missing-function-docstring

import hashlib
import importlib.util
from pathlib import Path

import pytest

gguf = pytest.importorskip('gguf')

SPEC = importlib.util.spec_from_file_location(
    'tiny_gguf', Path(__file__).resolve().parents[1] / 'model_sources' / 'tiny_gguf.py')
tiny_gguf = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tiny_gguf)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp('gguf')
    assert tiny_gguf.main([str(out)]) == 0
    return out


def field(reader, name):
    value = reader.fields[name]
    if value.types and value.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value.parts[value.data[0]]).decode()
    return value.parts[value.data[0]][0]


def test_v1_is_a_small_llama_model_with_a_vocabulary_and_a_chat_template(models):
    path = models / 'tiny-llama-v1.gguf'
    assert path.stat().st_size < 1024 * 1024
    reader = gguf.GGUFReader(str(path))
    assert field(reader, 'general.architecture') == 'llama'
    assert field(reader, 'lab.model_version') == 'v1'
    assert field(reader, 'tokenizer.ggml.model') == 'llama'
    assert '<|im_start|>' in field(reader, 'tokenizer.chat_template')
    assert len(reader.fields['tokenizer.ggml.tokens'].data) == field(reader, 'llama.vocab_size')
    names = {tensor.name: list(tensor.shape) for tensor in reader.tensors}
    assert names['token_embd.weight'] == [tiny_gguf.N_EMBD, field(reader, 'llama.vocab_size')]
    assert names['blk.1.ffn_down.weight'] == [tiny_gguf.N_FF, tiny_gguf.N_EMBD]
    assert len(names) == 2 + 1 + tiny_gguf.N_LAYER * 9


def test_the_same_bytes_every_run_and_two_different_versions(models, tmp_path):
    tiny_gguf.main([str(tmp_path)])
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob('*.gguf')}
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in models.glob('*.gguf')}
    assert digest['tiny-llama-v1.gguf'] != digest['tiny-llama-v2.gguf']


def test_the_flaky_version_has_a_template_that_raises(models):
    reader = gguf.GGUFReader(str(models / 'tiny-llama-v2-flaky.gguf'))
    assert 'raise_exception' in field(reader, 'tokenizer.chat_template')
    assert field(reader, 'lab.model_version') == 'v2-flaky'
    # the update's smoke test (inference_check's default prompt "Say OK.") passes; longer prompts may fail
    assert "(messages[0]['content'] | length) > 16" in field(reader, 'tokenizer.chat_template')


def test_the_slow_version_is_a_larger_model_of_the_same_vocabulary(models):
    reader = gguf.GGUFReader(str(models / 'tiny-llama-v2-slow.gguf'))
    v2 = gguf.GGUFReader(str(models / 'tiny-llama-v2.gguf'))
    assert field(reader, 'lab.model_version') == 'v2-slow'
    assert field(reader, 'llama.embedding_length') == tiny_gguf.SLOW_DIMS[0]
    assert field(reader, 'llama.block_count') == tiny_gguf.SLOW_DIMS[1]
    assert field(reader, 'llama.vocab_size') == field(v2, 'llama.vocab_size')
    names = {tensor.name: list(tensor.shape) for tensor in reader.tensors}
    assert names['blk.0.ffn_up.weight'] == [tiny_gguf.SLOW_DIMS[0], tiny_gguf.SLOW_DIMS[2]]
    assert sum(tensor.n_elements for tensor in reader.tensors) > 10 * sum(tensor.n_elements for tensor in v2.tensors)


def test_the_corrupt_version_is_cut_short(models):
    corrupt = models / 'tiny-llama-corrupt.gguf'
    assert corrupt.stat().st_size == (models / 'tiny-llama-v2.gguf').stat().st_size // 2
    with pytest.raises(Exception):
        gguf.GGUFReader(str(corrupt))
