# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny llama-architecture GGUF model for the lab's real engine (llama.cpp's llama-server), in two versions
and a corrupt one, written with the `gguf` package (the one llama.cpp's own converters use).

Random weights (seeded: the same bytes on every run), a small SentencePiece-style vocabulary (control tokens,
the 256 byte-fallback tokens, letters and a few words) and a ChatML chat template, about 0.7 MB each. It answers
nonsense, but it is loaded, tokenized, run and streamed by the real engine exactly like a real model, so a model
update really loads a new file: v1 and v2 differ in weights and in their `general.name`/`lab.model_version`;
the corrupt one is v2 with its tensor data cut short, which llama-server refuses to load.

    tiny_gguf.py OUTDIR       writes OUTDIR/tiny-llama-v1.gguf, tiny-llama-v2.gguf, tiny-llama-v2-flaky.gguf
                              (its chat template fails half of the requests), tiny-llama-v2-slow.gguf (a larger
                              model, several times slower), tiny-llama-corrupt.gguf and
                              prints one line per file: name, size, sha256
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - the lab's virtualenv has it (requirements.txt)
    sys.exit('tiny_gguf.py needs the gguf package (pip install gguf)')

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX = 512
# (n_embd, n_layer, n_ff) of the slow version (about 14 M parameters, 58 MB)
SLOW_DIMS = (384, 8, 1024)
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# The flaky version (a new model whose chat template breaks - a real failure mode of a model update): it loads,
# answers /health and a short smoke-test prompt (inference_check's "Say OK."), but its template raises for about
# half of the longer prompts of real traffic (those rendered in an odd second), so llama-server (--jinja) answers
# them with a 400. What the update's own check cannot see, the canary's soak at the gateway must: only a
# one-message conversation longer than 16 characters fails, so llama-server's own renderings at start ("test", its
# example conversation) and the smoke test pass.
FLAKY_TEMPLATE = ("{% if messages | length == 1 and messages[0]['content'] is string"
                  " and (messages[0]['content'] | length) > 16 and (strftime_now('%S') | int) % 2 == 1 %}"
                  "{{ raise_exception('lab fault injection: the chat template of this model version fails') }}{% endif %}"
                  + CHAT_TEMPLATE)
WORDS = ('the', 'model', 'node', 'gateway', 'update', 'canary', 'blue', 'green', 'ok', 'hello', 'answer', 'lab',
         'is', 'a', 'of', 'to', 'and', 'in', 'on', 'version')


def vocabulary():
    """(tokens, scores, types): SentencePiece-style, with byte fallback so that any text tokenizes."""
    tokens = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>']
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL,
             gguf.TokenType.CONTROL]
    tokens += ['<0x%02X>' % byte for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ['\u2581'] + ['\u2581' + word for word in WORDS] + list('abcdefghijklmnopqrstuvwxyz0123456789.,!?')
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [-float(i) for i in range(len(pieces))]
    return tokens, scores, types


def write(path, version, seed, template=CHAT_TEMPLATE, dims=None, f16=False):
    """dims: (n_embd, n_layer, n_ff), the tiny sizes by default; larger ones make a slower model (f16: its
    matrices in half precision, half the file)."""
    n_embd, n_layer, n_ff = dims or (N_EMBD, N_LAYER, N_FF)
    tokens, scores, types = vocabulary()
    rng = np.random.default_rng(seed)

    def tensor(*shape):
        values = rng.standard_normal(shape, dtype=np.float32) * 0.02
        return values.astype(np.float16 if f16 and len(shape) > 1 else np.float32)

    writer = gguf.GGUFWriter(path, 'llama')
    writer.add_name('onprem-ai lab tiny llama %s' % version)
    writer.add_string('lab.model_version', version)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(n_embd // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model('llama')
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(template)
    # numpy shapes are (rows, columns); GGUF stores them reversed, as llama.cpp expects ({n_embd, n_vocab}, ...).
    writer.add_tensor('token_embd.weight', tensor(len(tokens), n_embd))
    for layer in range(n_layer):
        blk = 'blk.%d.' % layer
        writer.add_tensor(blk + 'attn_norm.weight', np.ones(n_embd, dtype=np.float32))
        for name in ('attn_q', 'attn_k', 'attn_v', 'attn_output'):
            writer.add_tensor(blk + name + '.weight', tensor(n_embd, n_embd))
        writer.add_tensor(blk + 'ffn_norm.weight', np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(blk + 'ffn_gate.weight', tensor(n_ff, n_embd))
        writer.add_tensor(blk + 'ffn_up.weight', tensor(n_ff, n_embd))
        writer.add_tensor(blk + 'ffn_down.weight', tensor(n_embd, n_ff))
    writer.add_tensor('output_norm.weight', np.ones(n_embd, dtype=np.float32))
    writer.add_tensor('output.weight', tensor(len(tokens), n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('outdir')
    args = parser.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    names = []
    for version, seed in (('v1', 1), ('v2', 2)):
        name = 'tiny-llama-%s.gguf' % version
        write(os.path.join(args.outdir, name + '.tmp'), version, seed)
        os.replace(os.path.join(args.outdir, name + '.tmp'), os.path.join(args.outdir, name))
        names.append(name)
    name = 'tiny-llama-v2-flaky.gguf'
    write(os.path.join(args.outdir, name + '.tmp'), 'v2-flaky', 2, FLAKY_TEMPLATE)
    os.replace(os.path.join(args.outdir, name + '.tmp'), os.path.join(args.outdir, name))
    names.append(name)
    # The slow version: a larger model (the same vocabulary and template), several times slower per token on
    # llama-server's CPU backend than v1 (measured: 30-140 ms for 8 tokens against 3-8 ms).
    name = 'tiny-llama-v2-slow.gguf'
    write(os.path.join(args.outdir, name + '.tmp'), 'v2-slow', 2, dims=SLOW_DIMS)
    os.replace(os.path.join(args.outdir, name + '.tmp'), os.path.join(args.outdir, name))
    names.append(name)
    # The corrupt version: v2 whose tensor data stops halfway (a transfer cut short that nobody checked).
    corrupt = os.path.join(args.outdir, 'tiny-llama-corrupt.gguf')
    with open(os.path.join(args.outdir, 'tiny-llama-v2.gguf'), 'rb') as handle:
        data = handle.read()
    with open(corrupt + '.tmp', 'wb') as handle:
        handle.write(data[:len(data) // 2])
    os.replace(corrupt + '.tmp', corrupt)
    names.append(os.path.basename(corrupt))
    for name in names:
        path = os.path.join(args.outdir, name)
        print('%s %d %s' % (name, os.path.getsize(path), sha256(path)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
