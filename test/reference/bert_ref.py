"""
Float64 reference for the encoder tests: BERT, RoBERTa and DistilBERT forwards with a classification head,
written from the Hugging Face model equations (post-LN layers, exact erf GELU, absolute positions, RoBERTa's
positions counted from padding_idx + 1, attention over the valid keys of each right-padded row), plus a
LoRA adapter read from a PEFT folder (W + alpha/r · B·A on the targeted linears, head tensors from
modules_to_save). It reads only files.

Usage: python3 bert_ref.py JOB.json, where JOB is
  {"model": DIR, "task": "seq-cls" | "token-cls", "runs": [{"adapter": DIR | null, "ids": [[int]] (right-padded),
   "lengths": [int], "logits": FILE}]}
Each run's logits ([B, L] or [B, T, L]) are written to FILE as little-endian float64; stdout prints {"ok": true}.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)
F64 = torch.float64


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32', f'{name}: {info["dtype"]}'
        a, b = info['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').astype(np.float64).reshape(info['shape']))
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.special.erf(x / math.sqrt(2.0)))


class Lora:
    def __init__(self, folder):
        self.w = {}
        self.cfg = {'target_modules': []}
        if folder is None:
            return
        self.cfg = json.load(open(f'{folder}/adapter_config.json'))
        assert self.cfg['peft_type'] == 'LORA'
        self.w = {k[len('base_model.model.'):]: v for k, v in read_safetensors(f'{folder}/adapter_model.safetensors').items()}

    def targeted(self, name):
        t = self.cfg['target_modules']
        if isinstance(t, str):
            import re
            return re.fullmatch(t, name) is not None
        return any(name == m or name.endswith('.' + m) for m in t)

    def linear(self, name, x, W, b):
        # modules_to_save: the saved copy replaces the module.
        W = self.w.get(f'{name}.weight', W)
        b = self.w.get(f'{name}.bias', b)
        y = x @ W.T + b
        if f'{name}.lora_A.weight' in self.w:
            A, B = self.w[f'{name}.lora_A.weight'], self.w[f'{name}.lora_B.weight']
            r = A.shape[0]
            y = y + (x @ A.T @ B.T) * (self.cfg['lora_alpha'] / r)
        return y


def forward(cfg, W, task, ids, lengths, ad):
    kind = cfg['model_type']
    d = kind == 'distilbert'
    D = cfg['dim'] if d else cfg['hidden_size']
    H = cfg['n_heads'] if d else cfg['num_attention_heads']
    layers = cfg['n_layers'] if d else cfg['num_hidden_layers']
    eps = 1e-12 if d else cfg.get('layer_norm_eps', 1e-12)
    p = kind + '.'
    B, T = ids.shape
    lin = lambda name, x: ad.linear(name, x, W[f'{name}.weight'], W[f'{name}.bias'])
    if kind == 'roberta':
        pad = cfg['pad_token_id']
        # create_position_ids_from_input_ids: cumulative count of non-pad tokens, offset by padding_idx.
        mask = (ids != pad).long()
        pos = torch.cumsum(mask, 1) * mask + pad
    else:
        pos = torch.arange(T)[None, :].expand(B, T)
    x = W[f'{p}embeddings.word_embeddings.weight'][ids] + W[f'{p}embeddings.position_embeddings.weight'][pos]
    if not d:
        x = x + W[f'{p}embeddings.token_type_embeddings.weight'][torch.zeros_like(ids)]
    x = layer_norm(x, W[f'{p}embeddings.LayerNorm.weight'], W[f'{p}embeddings.LayerNorm.bias'], eps)
    keymask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # [B, T] valid keys
    hd = D // H
    for l in range(layers):
        n = f'distilbert.transformer.layer.{l}' if d else f'{p}encoder.layer.{l}'
        names = ['attention.q_lin', 'attention.k_lin', 'attention.v_lin', 'attention.out_lin'] if d else \
            ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense']
        q, k, v = (lin(f'{n}.{s}', x).view(B, T, H, hd).transpose(1, 2) for s in names[:3])
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(~keymask[:, None, None, :], float('-inf'))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, D)
        ln1 = f'{n}.sa_layer_norm' if d else f'{n}.attention.output.LayerNorm'
        h = layer_norm(x + lin(f'{n}.{names[3]}', a), W[f'{ln1}.weight'], W[f'{ln1}.bias'], eps)
        up, down = ('ffn.lin1', 'ffn.lin2') if d else ('intermediate.dense', 'output.dense')
        ln2 = f'{n}.output_layer_norm' if d else f'{n}.output.LayerNorm'
        x = layer_norm(h + lin(f'{n}.{down}', gelu(lin(f'{n}.{up}', h))), W[f'{ln2}.weight'], W[f'{ln2}.bias'], eps)
    if task == 'token-cls':
        return lin('classifier', x)
    cls = x[:, 0]
    if kind == 'bert':
        return lin('classifier', torch.tanh(lin('bert.pooler.dense', cls)))
    if kind == 'roberta':
        return lin('classifier.out_proj', torch.tanh(lin('classifier.dense', cls)))
    return lin('classifier', torch.relu(lin('pre_classifier', cls)))


def main():
    job = json.load(open(sys.argv[1]))
    cfg = json.load(open(f'{job["model"]}/config.json'))
    W = read_safetensors(f'{job["model"]}/model.safetensors')
    for run in job['runs']:
        ad = Lora(run.get('adapter'))
        with torch.no_grad():
            out = forward(cfg, W, job['task'], torch.tensor(run['ids']), run['lengths'], ad)
        out.numpy().astype('<f8').tofile(run['logits'])
    print(json.dumps({'ok': True}))


main()
