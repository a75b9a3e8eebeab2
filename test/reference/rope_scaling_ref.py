"""
Float64 reference for RoPE scaling: a Hugging Face Llama forward pass whose rotary inverse frequencies follow
config.json's rope_scaling, written from the formulas of Hugging Face's rope initialisation functions
(linear, dynamic NTK, YaRN, Llama 3) and the YaRN paper, not from this library's code.

Usage: python3 rope_scaling_ref.py JOB.json, where JOB is
  {"runs": [{"model": DIR, "ids": [[int]], "logits": FILE, "rope_length": int (optional)}]}
rope_length: the sequence length dynamic NTK is sized by (default the number of tokens).
Each run's logits [B, T, V] are written to FILE as little-endian float64; stdout is
  {"runs": [{"inv_freq": [float], "attention_factor": float}]}.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import attention, read_safetensors, rmsnorm  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64


def inv_freq_and_factor(c, seq_len):
    """Per-pair inverse frequencies [D/2] and the factor on cos and sin for a sequence of seq_len positions."""
    d = c['hidden_size'] // c['num_attention_heads']
    base = float(c.get('rope_theta', 10000.0))
    rs = c.get('rope_scaling') or {}
    kind = rs.get('rope_type', rs.get('type', 'default'))
    exps = torch.arange(0, d, 2, dtype=F64) / d
    plain = 1.0 / base ** exps
    if kind == 'default':
        return plain, 1.0
    factor = float(rs['factor'])
    original = rs.get('original_max_position_embeddings', c['max_position_embeddings'])
    if kind == 'linear':
        return plain / factor, 1.0
    if kind == 'dynamic':
        if seq_len <= original:
            return plain, 1.0
        grown = base * ((factor * seq_len / original) - (factor - 1)) ** (d / (d - 2))
        return 1.0 / grown ** exps, 1.0
    if kind == 'yarn':
        fast, slow = rs.get('beta_fast', 32), rs.get('beta_slow', 1)

        def correction_dim(rotations):
            # Dimension index whose wavelength fits `rotations` full turns into the original context.
            return (d * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

        low = max(math.floor(correction_dim(fast)), 0)
        high = min(math.ceil(correction_dim(slow)), d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d // 2, dtype=F64) - low) / (high - low)).clamp(0, 1)
        extrapolate = 1 - ramp  # weight of the original frequency
        inv = (plain / factor) * (1 - extrapolate) + plain * extrapolate
        att = rs.get('attention_factor')
        if att is None:
            att = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
        return inv, float(att)
    if kind == 'llama3':
        lo, hi = rs['low_freq_factor'], rs['high_freq_factor']
        wavelen = 2 * math.pi / plain
        out = torch.where(wavelen > original / lo, plain / factor, plain)
        smooth = (original / wavelen - lo) / (hi - lo)
        blended = (1 - smooth) * out / factor + smooth * out
        medium = (wavelen >= original / hi) & (wavelen <= original / lo)
        return torch.where(medium, blended, out), 1.0
    raise ValueError(f'rope_scaling type {kind} not in this reference')


def forward(folder, ids, rope_length=None):
    with open(os.path.join(folder, 'config.json')) as f:
        c = json.load(f)
    w = read_safetensors(os.path.join(folder, 'model.safetensors'))
    dim, heads = c['hidden_size'], c['num_attention_heads']
    kv, hd, eps = c.get('num_key_value_heads', heads), dim // heads, c['rms_norm_eps']
    b, n = ids.shape
    inv, att = inv_freq_and_factor(c, rope_length or n)
    angles = torch.arange(n, dtype=F64)[:, None] * inv[None, :]
    emb = torch.cat([angles, angles], -1)
    cos, sin = (emb.cos() * att)[None, :, None, :], (emb.sin() * att)[None, :, None, :]

    def rope(x):
        rotated = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rotated * sin

    def lin(name, h):
        return h @ w[f'{name}.weight'].T
    x = w['model.embed_tokens.weight'][ids]
    for l in range(c['num_hidden_layers']):
        p = f'model.layers.{l}'
        n1 = rmsnorm(x, w[f'{p}.input_layernorm.weight'], eps)
        q = rope(lin(f'{p}.self_attn.q_proj', n1).view(b, n, heads, hd))
        k = rope(lin(f'{p}.self_attn.k_proj', n1).view(b, n, kv, hd))
        v = lin(f'{p}.self_attn.v_proj', n1).view(b, n, kv, hd)
        x = x + lin(f'{p}.self_attn.o_proj', attention(q, k, v, 0).reshape(b, n, dim))
        n2 = rmsnorm(x, w[f'{p}.post_attention_layernorm.weight'], eps)
        x = x + lin(f'{p}.mlp.down_proj', torch.nn.functional.silu(lin(f'{p}.mlp.gate_proj', n2)) * lin(f'{p}.mlp.up_proj', n2))
    x = rmsnorm(x, w['model.norm.weight'], eps)
    head = w['model.embed_tokens.weight'] if c.get('tie_word_embeddings') else w['lm_head.weight']
    return x @ head.T, inv, att


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    out = []
    for r in job['runs']:
        logits, inv, att = forward(r['model'], torch.tensor(r['ids'], dtype=torch.long), r.get('rope_length'))
        with open(r['logits'], 'wb') as f:
            f.write(logits.contiguous().numpy().astype('<f8').tobytes())
        out.append({'inv_freq': inv.tolist(), 'attention_factor': att})
    print(json.dumps({'runs': out}))


if __name__ == '__main__':
    main()
