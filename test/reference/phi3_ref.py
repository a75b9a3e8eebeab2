"""
Float64 reference for the Phi-3 tests: a Hugging Face Phi-3 forward pass (modeling_phi3's equations: RMSNorm,
fused qkv_proj split into q | k | v, rotate-half RoPE, causal grouped-query attention, fused gate_up_proj split
into gate | up, up·SiLU(gate), down_proj; LongRoPE `rope_scaling` as Phi-3 long-context models use it), optionally with a PEFT LoRA adapter (lora.Linear: W₀x + s·B·A·x).
It reads only files: a model folder (config.json + model.safetensors) and an adapter folder.

Usage: python3 phi3_ref.py JOB.json, JOB = {"model": DIR, "runs": [{"adapter": DIR | null, "ids": [[int]],
"logits": FILE, "greedy": int}]}. Each run's logits [B, T, V] go to FILE as little-endian float64; stdout is
{"runs": [{"greedy": [[int]]}]}: `greedy` new tokens per row by argmax, recomputing the whole sequence each step.
"""
import json
import math
import os
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
        assert info['dtype'] == 'F32', f'{path}: {name} is {info["dtype"]}'
        a, b = info['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').astype(np.float64).reshape(info['shape']))
    return out


class Lora:
    """A PEFT LoRA folder: h = W₀x + (α/r)·B·A·x on each targeted module (suffix match, as PEFT's list rule)."""

    def __init__(self, folder):
        with open(os.path.join(folder, 'adapter_config.json')) as f:
            self.cfg = json.load(f)
        assert self.cfg['peft_type'] == 'LORA' and not self.cfg.get('use_dora')
        self.t = read_safetensors(os.path.join(folder, 'adapter_model.safetensors'))
        self.used = set()
        r = self.cfg['r']
        self.s = self.cfg['lora_alpha'] / (math.sqrt(r) if self.cfg.get('use_rslora') else r)

    def targeted(self, name):
        t = self.cfg['target_modules']
        return any(name == x or name.endswith('.' + x) for x in t)

    def delta(self, name, x):
        if not self.targeted(name):
            return 0
        ka, kb = f'base_model.model.{name}.lora_A.weight', f'base_model.model.{name}.lora_B.weight'
        self.used.update([ka, kb])
        return (x @ self.t[ka].T @ self.t[kb].T) * self.s


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_half(x, theta, cfg):
    """Rotate-half RoPE; with rope_scaling longrope/su (LongRoPE as Phi-3 uses it), per-frequency divisors
    short_factor while the sequence is at most original_max_position_embeddings long, long_factor beyond, and
    cos, sin × √(1 + ln(max_position_embeddings / original) / ln(original))."""
    t, d = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=F64) / d)
    mscale = 1.0
    rs = cfg.get('rope_scaling')
    if rs:
        assert rs.get('type', rs.get('rope_type')) in ('longrope', 'su')
        orig = cfg['original_max_position_embeddings']
        ext = torch.tensor(rs['long_factor'] if t > orig else rs['short_factor'], dtype=F64)
        inv = inv / ext
        ratio = cfg['max_position_embeddings'] / orig
        mscale = 1.0 if ratio <= 1 else math.sqrt(1 + math.log(ratio) / math.log(orig))
    ang = torch.arange(t, dtype=F64)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos()[None, :, None, :] * mscale, emb.sin()[None, :, None, :] * mscale
    return x * cos + torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1) * sin


def forward(cfg, w, ids, ad):
    D, H = cfg['hidden_size'], cfg['num_attention_heads']
    Hkv = cfg.get('num_key_value_heads') or H
    hd = D // H
    eps, theta = cfg.get('rms_norm_eps', 1e-5), cfg.get('rope_theta', 10000.0)
    lin = lambda name, x: x @ w[name + '.weight'].T + (ad.delta(name, x) if ad else 0)
    x = w['model.embed_tokens.weight'][ids]
    B, T = ids.shape
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}'
        n1 = rmsnorm(x, w[p + '.input_layernorm.weight'], eps)
        qkv = lin(p + '.self_attn.qkv_proj', n1)
        q = qkv[..., :H * hd].reshape(B, T, H, hd)
        k = qkv[..., H * hd:(H + Hkv) * hd].reshape(B, T, Hkv, hd)
        v = qkv[..., (H + Hkv) * hd:].reshape(B, T, Hkv, hd)
        q, k = rope_half(q, theta, cfg), rope_half(k, theta, cfg)
        k, v = k.repeat_interleave(H // Hkv, 2), v.repeat_interleave(H // Hkv, 2)
        sc = torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(hd)
        sc = sc.masked_fill(torch.arange(T)[None, :] > torch.arange(T)[:, None], float('-inf'))
        att = torch.einsum('bhts,bshd->bthd', torch.softmax(sc, -1), v).reshape(B, T, H * hd)
        x = x + lin(p + '.self_attn.o_proj', att)
        n2 = rmsnorm(x, w[p + '.post_attention_layernorm.weight'], eps)
        gate, up = lin(p + '.mlp.gate_up_proj', n2).chunk(2, dim=-1)
        x = x + lin(p + '.mlp.down_proj', up * torch.nn.functional.silu(gate))
    x = rmsnorm(x, w['model.norm.weight'], eps)
    head = w['lm_head.weight'] if 'lm_head.weight' in w else w['model.embed_tokens.weight']
    return x @ head.T


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    with open(os.path.join(job['model'], 'config.json')) as f:
        cfg = json.load(f)
    assert cfg['model_type'] == 'phi3'
    w = read_safetensors(os.path.join(job['model'], 'model.safetensors'))
    out = []
    for run in job['runs']:
        ad = Lora(run['adapter']) if run.get('adapter') else None
        ids = torch.tensor(run['ids'])
        logits = forward(cfg, w, ids, ad)
        logits.numpy().astype('<f8').tofile(run['logits'])
        if ad and ad.used != set(ad.t):
            raise ValueError(f'adapter tensors not used: {sorted(set(ad.t) - ad.used)[:4]}')
        seqs = ids.clone()
        for _ in range(run.get('greedy', 0)):
            nxt = forward(cfg, w, seqs, ad)[:, -1].argmax(-1)
            seqs = torch.cat([seqs, nxt[:, None]], 1)
        out.append({'greedy': seqs[:, ids.shape[1]:].tolist()})
    print(json.dumps({'runs': out}))


main()
