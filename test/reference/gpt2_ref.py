"""
Float64 reference for the GPT-2 tests: a Hugging Face GPT-2 forward pass (modeling_gpt2's equations: token plus
learned position embeddings, pre-LayerNorm blocks, Conv1D projections y = x·W + b with W [in, out], fused c_attn
split into q | k | v, causal attention scaled by 1/√head_dim, gelu_new (tanh form), final ln_f, head tied to wte),
optionally with a PEFT adapter: LoRA, prompt tuning or prefix tuning. PEFT's lora.Linear on a Conv1D (fan_in_fan_out = True) adds s·B·A·x to the
output, A [r, in], B [out, r], and merges W + transpose(s·B·A). Tensor names may carry `transformer.` or not.

Usage: python3 gpt2_ref.py JOB.json, JOB = {"model": DIR, "runs": [{"adapter": DIR | null, "ids": [[int]],
"logits": FILE, "greedy": int}], "merge_check": {"adapter": DIR, "merged": DIR} (optional)}. Each run's logits
[B, T, V] go to FILE as little-endian float64; stdout is {"runs": [{"greedy": [[int]]}], "merge_gap": float}:
merge_gap is the largest |merged file weight − PEFT's merge of the base and adapter| over the adapted modules.
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


def read_safetensors(path, model=True):
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
        t = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').astype(np.float64).reshape(info['shape']))
        # GPT2LMHeadModel saves `transformer.h.0…`, GPT2Model bare `h.0…`.
        bare = model and not name.startswith('transformer.') and name != 'lm_head.weight'
        out['transformer.' + name if bare else name] = t
    return out


class Adapter:
    """A PEFT folder: LORA, PROMPT_TUNING or PREFIX_TUNING (inference form: the prefix table itself)."""

    def __init__(self, folder):
        with open(os.path.join(folder, 'adapter_config.json')) as f:
            self.cfg = json.load(f)
        self.kind = self.cfg['peft_type']
        assert self.kind in ('LORA', 'PROMPT_TUNING', 'PREFIX_TUNING') and not self.cfg.get('use_dora')
        if self.kind == 'LORA' and self.cfg.get('fan_in_fan_out') is not True:
            raise ValueError(f'{folder}: fan_in_fan_out is not true; PEFT writes it true for GPT-2 Conv1D layers')
        self.t = read_safetensors(os.path.join(folder, 'adapter_model.safetensors'), model=False)
        self.used = set()
        if self.kind == 'LORA':
            r = self.cfg['r']
            self.s = self.cfg['lora_alpha'] / (math.sqrt(r) if self.cfg.get('use_rslora') else r)

    def table(self):
        self.used.add('prompt_embeddings')
        return self.t['prompt_embeddings']

    def prompt(self):
        """Prompt tuning (Lester et al.): P learned input embeddings before the tokens'; GPT-2 then adds wpe[0 … P+T−1]."""
        return self.table() if self.kind == 'PROMPT_TUNING' else None

    def prefix(self, layer, H):
        """Prefix tuning as PEFT's past_key_values: [P, layers·2, heads, head_dim], keys at 2l, values at 2l + 1;
        GPT-2 then numbers the sequence's positions from P (past_length)."""
        if self.kind != 'PREFIX_TUNING':
            return None
        c = self.cfg
        kv = self.table().view(c['num_virtual_tokens'], c['num_layers'] * 2, H, c['token_dim'] // H)
        return kv[:, 2 * layer], kv[:, 2 * layer + 1]

    def key(self, name, ab):
        return f'base_model.model.{name}.lora_{ab}.weight'

    def factors(self, name):
        if self.kind != 'LORA':
            return None
        t = self.cfg['target_modules']
        if not any(name == x or name.endswith('.' + x) for x in t):
            return None
        ka, kb = self.key(name, 'A'), self.key(name, 'B')
        self.used.update([ka, kb])
        return self.t[ka], self.t[kb]

    def delta(self, name, x):
        f = self.factors(name)
        return 0 if f is None else (x @ f[0].T @ f[1].T) * self.s


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(cfg, w, ids, ad):
    D, H = cfg['n_embd'], cfg['n_head']
    hd, eps = D // H, cfg.get('layer_norm_epsilon', 1e-5)
    conv = lambda name, x: x @ w[name + '.weight'] + w[name + '.bias'] + (ad.delta(name, x) if ad else 0)
    B = ids.shape[0]
    x = w['transformer.wte.weight'][ids]
    prompt = ad.prompt() if ad else None
    if prompt is not None:
        x = torch.cat([prompt[None].expand(B, -1, -1), x], 1)
    T = x.shape[1]
    past = ad.cfg['num_virtual_tokens'] if ad and ad.kind == 'PREFIX_TUNING' else 0
    x = x + w['transformer.wpe.weight'][torch.arange(past, past + T)][None]
    for l in range(cfg['n_layer']):
        p = f'transformer.h.{l}'
        a = layernorm(x, w[p + '.ln_1.weight'], w[p + '.ln_1.bias'], eps)
        q, k, v = (t.reshape(B, T, H, hd) for t in conv(p + '.attn.c_attn', a).split(D, dim=-1))
        pre = ad.prefix(l, H) if ad else None
        if pre is not None:
            k = torch.cat([pre[0][None].expand(B, -1, -1, -1), k], 1)
            v = torch.cat([pre[1][None].expand(B, -1, -1, -1), v], 1)
        sc = torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(hd)
        sc = sc.masked_fill(torch.arange(k.shape[1])[None, :] > torch.arange(T)[:, None] + past, float('-inf'))
        att = torch.einsum('bhts,bshd->bthd', torch.softmax(sc, -1), v).reshape(B, T, D)
        x = x + conv(p + '.attn.c_proj', att)
        m = layernorm(x, w[p + '.ln_2.weight'], w[p + '.ln_2.bias'], eps)
        x = x + conv(p + '.mlp.c_proj', gelu_new(conv(p + '.mlp.c_fc', m)))
    x = layernorm(x, w['transformer.ln_f.weight'], w['transformer.ln_f.bias'], eps)
    head = w['lm_head.weight'] if 'lm_head.weight' in w else w['transformer.wte.weight']
    # Virtual tokens predict nothing: the logits of the real positions.
    return (x @ head.T)[:, T - ids.shape[1]:]


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    with open(os.path.join(job['model'], 'config.json')) as f:
        cfg = json.load(f)
    assert cfg['model_type'] == 'gpt2'
    w = read_safetensors(os.path.join(job['model'], 'model.safetensors'))
    out = {'runs': []}
    for run in job['runs']:
        ad = Adapter(run['adapter']) if run.get('adapter') else None
        ids = torch.tensor(run['ids'])
        forward(cfg, w, ids, ad).numpy().astype('<f8').tofile(run['logits'])
        if ad and ad.used != set(ad.t):
            raise ValueError(f'adapter tensors not used: {sorted(set(ad.t) - ad.used)[:4]}')
        seqs = ids.clone()
        for _ in range(run.get('greedy', 0)):
            nxt = forward(cfg, w, seqs, ad)[:, -1].argmax(-1)
            seqs = torch.cat([seqs, nxt[:, None]], 1)
        out['runs'].append({'greedy': seqs[:, ids.shape[1]:].tolist()})
    mc = job.get('merge_check')
    if mc:
        ad = Adapter(mc['adapter'])
        merged = read_safetensors(os.path.join(mc['merged'], 'model.safetensors'))
        gap, count = 0.0, 0
        for name in w:
            if not name.endswith('.weight'):
                continue
            f = ad.factors(name[:-len('.weight')])
            # PEFT get_delta_weight: transpose(B @ A, fan_in_fan_out) · s, added to the [in, out] Conv1D weight.
            want = w[name] + ((f[1] @ f[0]).T * ad.s if f is not None else 0)
            gap = max(gap, (merged[name] - want).abs().max().item())
            count += f is not None
        out['merge_gap'], out['merged_modules'] = gap, count
    print(json.dumps(out))


main()
