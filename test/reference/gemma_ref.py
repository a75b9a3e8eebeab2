"""
Float64 reference for the Gemma tests: a Gemma 1 / 2 / 3 (text) forward pass written from the equations of
Hugging Face's modeling code (config.json keys with their documented defaults), with LoRA (PEFT's
lora.Linear) on the linear layers. It reads only files: a model folder in Hugging Face layout
(config.json + model.safetensors) and LoRA folders (adapter_config.json + adapter_model.safetensors).

Usage: python3 gemma_ref.py JOB.json, where JOB is
  {"model": DIR, "runs": [{"name", "adapter": DIR | null, "ids": [[int]], "targets": [[int]], "logits": FILE}],
   "greedy": [{"name", "adapter": DIR | null, "prompt": [int], "steps": int}]}
Each run's logits [B, T, V] are written to its FILE as little-endian float64. stdout is one JSON object:
  {"runs": [{"name", "loss"}], "greedy": [{"name", "ids"}]}: greedy decoding recomputes the whole sequence
  each step (no cache) and takes the first largest logit.
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)
F64 = torch.float64


def read_safetensors(path):
    """u64 header length, JSON header {name: {dtype, shape, data_offsets}}, raw little-endian data."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        if info['dtype'] != 'F32':
            raise ValueError(f'{path}: {name} is {info["dtype"]}; this reference reads F32 tensors only')
        a, b = info['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').astype(np.float64).reshape(info['shape']))
    return out


def gemma_norm(x, w, eps):
    """Gemma's RMSNorm: the weight is an offset from 1."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x, positions, theta, linear_factor=1.0):
    """Rotate-half rotary embedding on x [B, T, H, D]; linear scaling divides the inverse frequencies."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=F64) / d) / linear_factor
    angles = positions.to(F64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def attention(q, k, v, scale, softcap, window):
    """Causal grouped-query attention; scores × scale, soft-capped, keys j with i − window < j ≤ i when windowed."""
    t, h = q.shape[1], q.shape[2]
    rep = h // k.shape[2]
    k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    scores = torch.einsum('bthd,bshd->bhts', q, k) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    hidden = j > i
    if window is not None:
        hidden = hidden | (j <= i - window)
    scores = scores.masked_fill(hidden, float('-inf'))
    return torch.einsum('bhts,bshd->bthd', torch.softmax(scores, -1), v)


class Lora:
    """A PEFT LoRA folder: h = W₀x + (α/r)·B·A·x on the targeted linear modules (α/√r with rsLoRA)."""

    def __init__(self, folder):
        with open(os.path.join(folder, 'adapter_config.json')) as f:
            self.cfg = json.load(f)
        if self.cfg['peft_type'] != 'LORA' or self.cfg.get('use_dora'):
            raise ValueError(f'{folder}: this reference reads plain LoRA adapters only')
        self.tensors = read_safetensors(os.path.join(folder, 'adapter_model.safetensors'))
        self.used = set()
        self.folder = folder

    def targeted(self, name):
        t = self.cfg['target_modules']
        return re.fullmatch(t, name) is not None if isinstance(t, str) else any(name == s or name.endswith('.' + s) for s in t)

    def linear(self, name, x, weight):
        y = x @ weight.T
        if not self.targeted(name):
            return y
        keys = [f'base_model.model.{name}.lora_A.weight', f'base_model.model.{name}.lora_B.weight']
        for key in keys:
            if key not in self.tensors:
                raise KeyError(f'{self.folder}: no {key}')
            self.used.add(key)
        c = self.cfg
        s = c['lora_alpha'] / (math.sqrt(c['r']) if c.get('use_rslora') else c['r'])
        return y + (x @ self.tensors[keys[0]].T @ self.tensors[keys[1]].T) * s

    def check_all_used(self):
        unused = sorted(set(self.tensors) - self.used)
        if unused:
            raise ValueError(f'{self.folder}: tensors the forward pass did not use: {unused[:5]}')


class Gemma:
    def __init__(self, folder):
        with open(os.path.join(folder, 'config.json')) as f:
            c = json.load(f)
        self.type = c['model_type']
        if self.type not in ('gemma', 'gemma2', 'gemma3_text'):
            raise ValueError(f'model_type {self.type}')
        g2, g3 = self.type == 'gemma2', self.type == 'gemma3_text'
        self.dim, self.layers = c['hidden_size'], c['num_hidden_layers']
        self.heads = c['num_attention_heads']
        self.kv_heads = c.get('num_key_value_heads', self.heads)
        self.head_dim = c.get('head_dim', 256)
        self.eps = c.get('rms_norm_eps', 1e-6)
        self.theta = c.get('rope_theta', 1e6 if g3 else 10000.0)
        self.local_theta = c.get('rope_local_base_freq', 10000.0) if g3 else self.theta
        scaling = c.get('rope_scaling')
        if scaling and scaling.get('rope_type', scaling.get('type')) not in ('linear', 'default'):
            raise ValueError(f'rope_scaling {scaling} is not read by this reference')
        self.linear_factor = scaling['factor'] if scaling and scaling.get('rope_type', scaling.get('type')) == 'linear' else 1.0
        self.sandwich = self.type != 'gemma'
        self.scale = (c.get('query_pre_attn_scalar', 256) if self.sandwich else self.head_dim) ** -0.5
        self.attn_cap = c.get('attn_logit_softcapping', 50.0 if g2 else None)
        self.final_cap = c.get('final_logit_softcapping', 30.0 if g2 else None)
        window = c.get('sliding_window', 4096) if self.sandwich else None
        if c.get('layer_types') is not None:
            types = c['layer_types']
        else:
            pattern = 2 if g2 else c.get('sliding_window_pattern', 6)
            types = ['sliding_attention' if (i + 1) % pattern else 'full_attention' for i in range(self.layers)]
        self.windows = [window if window is not None and types[i] == 'sliding_attention' else None for i in range(self.layers)]
        self.qk_norm = self.gemma3 = g3
        self.tied = c.get('tie_word_embeddings', True)
        # The embedding normaliser √hidden_size in the model's dtype, float32 here (the weights' type).
        self.normalizer = float(np.float32(self.dim ** 0.5))
        self.w = read_safetensors(os.path.join(folder, 'model.safetensors'))

    def forward(self, ids, ad=None):
        w = self.w
        b, t = ids.shape
        x = w['model.embed_tokens.weight'][ids] * self.normalizer
        positions = torch.arange(t)

        def linear(name, h):
            return ad.linear(name, h, w[f'{name}.weight']) if ad else h @ w[f'{name}.weight'].T

        for l in range(self.layers):
            p = f'model.layers.{l}'
            n1 = gemma_norm(x, w[f'{p}.input_layernorm.weight'], self.eps)
            q = linear(f'{p}.self_attn.q_proj', n1).view(b, t, self.heads, self.head_dim)
            k = linear(f'{p}.self_attn.k_proj', n1).view(b, t, self.kv_heads, self.head_dim)
            v = linear(f'{p}.self_attn.v_proj', n1).view(b, t, self.kv_heads, self.head_dim)
            if self.qk_norm:
                q = gemma_norm(q, w[f'{p}.self_attn.q_norm.weight'], self.eps)
                k = gemma_norm(k, w[f'{p}.self_attn.k_norm.weight'], self.eps)
            sliding = self.windows[l] is not None
            # Gemma 3: sliding layers rotate with rope_local_base_freq and no scaling; the others with rope_theta and rope_scaling.
            theta, factor = (self.local_theta, 1.0) if sliding and self.gemma3 else (self.theta, self.linear_factor)
            q, k = rope(q, positions, theta, factor), rope(k, positions, theta, factor)
            a = attention(q, k, v, self.scale, self.attn_cap, self.windows[l]).reshape(b, t, self.heads * self.head_dim)
            o = linear(f'{p}.self_attn.o_proj', a)
            if self.sandwich:
                o = gemma_norm(o, w[f'{p}.post_attention_layernorm.weight'], self.eps)
                x = x + o
                n2 = gemma_norm(x, w[f'{p}.pre_feedforward_layernorm.weight'], self.eps)
            else:
                x = x + o
                n2 = gemma_norm(x, w[f'{p}.post_attention_layernorm.weight'], self.eps)
            m = linear(f'{p}.mlp.down_proj', gelu_tanh(linear(f'{p}.mlp.gate_proj', n2)) * linear(f'{p}.mlp.up_proj', n2))
            if self.sandwich:
                m = gemma_norm(m, w[f'{p}.post_feedforward_layernorm.weight'], self.eps)
            x = x + m
        x = gemma_norm(x, w['model.norm.weight'], self.eps)
        logits = x @ (w['model.embed_tokens.weight'] if self.tied else w['lm_head.weight']).T
        if self.final_cap is not None:
            logits = torch.tanh(logits / self.final_cap) * self.final_cap
        return logits


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    model = Gemma(job['model'])
    result = {'runs': [], 'greedy': []}
    for run in job.get('runs', []):
        ad = Lora(run['adapter']) if run.get('adapter') else None
        logits = model.forward(torch.tensor(run['ids'], dtype=torch.long), ad)
        if ad:
            ad.check_all_used()
        targets = torch.tensor(run['targets'], dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        logits.contiguous().numpy().astype('<f8').tofile(run['logits'])
        result['runs'].append({'name': run['name'], 'loss': loss.item()})
    for run in job.get('greedy', []):
        ad = Lora(run['adapter']) if run.get('adapter') else None
        seq = list(run['prompt'])
        for _ in range(run['steps']):
            seq.append(int(model.forward(torch.tensor([seq], dtype=torch.long), ad)[0, -1].argmax()))
        result['greedy'].append({'name': run['name'], 'ids': seq[len(run['prompt']):]})
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main()
