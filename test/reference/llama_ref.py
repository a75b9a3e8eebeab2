"""
Float64 reference for the test suite: a Hugging Face Llama forward pass with every adapter method the
library saves, written from the papers' equations and Hugging Face PEFT's layer formulas. It reads only
files: a model folder in Hugging Face layout (config.json + model.safetensors, rotate-half Q/K rows) and
adapter folders (adapter_config.json + adapter_model.safetensors).

Usage: python3 llama_ref.py JOB.json, where JOB is
  {"model": DIR, "runs": [{"name", "adapter": DIR | null, "ids": [[int]], "targets": [[int]], "logits": FILE}],
   "orientation": [{"saved": FILE, "gguf": FILE, "heads": {module suffix: heads}, "head_dim": int}]}   (optional)
Each run's logits [B, T, V] are written to its FILE as little-endian float64; stdout is one JSON object:
  {"runs": [{"name", "loss", "tokens"}], "orientation": [{"key", "max_abs_diff", "unpermuted_diff"}]}: each tensor of
  the GGUF-order file against the saved one, after (max_abs_diff) and without (unpermuted_diff) the rotate-half permutation.
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
    """The safetensors format: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, raw data."""
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
        data = np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').astype(np.float64)
        out[name] = torch.from_numpy(data.reshape(info['shape']))
    return out


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_half(x, positions, theta):
    """Rotary embedding in Hugging Face's rotate-half form: x·cos + rotate_half(x)·sin, x [B, T, H, D]."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=F64) / d)
    angles = positions.to(F64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rotated * sin


def attention(q, k, v, offset, window=None, scale=None):
    """Causal grouped-query attention; query t sees key s when s <= offset + t (offset: keys before the sequence).
    With a sliding window (Hugging Face Mistral's sliding_window_mask_function, layer_types "sliding_attention"),
    also only when (offset + t) - s < window."""
    t, h, d = q.shape[1], q.shape[2], q.shape[3]
    s = k.shape[1]
    rep = h // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    scores = torch.einsum('bthd,bshd->bhts', q, k) * (1 / math.sqrt(d) if scale is None else scale)
    q_pos, kv_pos = torch.arange(t)[:, None] + offset, torch.arange(s)[None, :]
    hidden = kv_pos > q_pos
    if window is not None:
        hidden = hidden | (q_pos - kv_pos >= window)
    scores = scores.masked_fill(hidden, float('-inf'))
    return torch.einsum('bhts,bshd->bthd', torch.softmax(scores, -1), v)


def gelu_tanh(x):
    # The tanh form of GELU, as BERT and Houlsby et al.'s adapter code use it.
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def peft_targets(cfg, name):
    """PEFT's matching: a list entry equals the module name or is a suffix after a dot; a string is a full-match regex."""
    t = cfg.get('target_modules')
    ok = re.fullmatch(t, name) is not None if isinstance(t, str) else any(name == s or name.endswith('.' + s) for s in t)
    layers = cfg.get('layers_to_transform')
    if ok and layers is not None:
        layers = [layers] if isinstance(layers, int) else layers
        m = re.search(r'\.layers\.(\d+)\.', name + '.')
        ok = m is not None and int(m.group(1)) in layers
    return ok


class Adapter:
    """One saved adapter folder; every tensor in the file must be used by the forward pass."""

    def __init__(self, folder):
        with open(os.path.join(folder, 'adapter_config.json')) as f:
            self.cfg = json.load(f)
        self.tensors = read_safetensors(os.path.join(folder, 'adapter_model.safetensors'))
        self.used = set()
        self.kind = self.cfg['peft_type']
        self.folder = folder

    def take(self, key, prefix='base_model.model.'):
        full = prefix + key
        if full not in self.tensors:
            raise KeyError(f'{self.folder}: the adapter file has no {full}')
        self.used.add(full)
        return self.tensors[full]

    def check_all_used(self):
        unused = sorted(set(self.tensors) - self.used)
        if unused:
            raise ValueError(f'{self.folder}: tensors not used by the {self.kind} forward pass: {unused[:5]}')

    # --- hooks the model calls -------------------------------------------------------------------

    def linear(self, name, x, weight, bias):
        """A targeted linear module's output; weight [out, in] (x·Wᵀ + b is the frozen layer)."""
        base = lambda xx: xx @ weight.T + (bias if bias is not None else 0)
        c, k = self.cfg, self.kind
        if k not in ('LORA', 'IA3', 'ADALORA', 'TRIADAPTLORA', 'HYDRA', 'LAMDA', 'SSF') or not peft_targets(c, name):
            return base(x)
        if k == 'LORA':
            # Hu et al. eq. 3, h = W₀x + (α/r)·B·A·x (PEFT lora.Linear); rsLoRA: α/√r.
            A, B = self.take(f'{name}.lora_A.weight'), self.take(f'{name}.lora_B.weight')
            s = c['lora_alpha'] / (math.sqrt(c['r']) if c.get('use_rslora') else c['r'])
            lora = (x @ A.T @ B.T) * s
            if not c.get('use_dora'):
                return base(x) + lora
            # DoRA eq. 5: W' = m·(W₀ + ΔW)/‖W₀ + ΔW‖_c, the norm per output row (PEFT's weight_norm over dim 1).
            m = self.take(f'{name}.lora_magnitude_vector')
            scale = m / (weight + s * (B @ A)).norm(dim=1)
            return (x @ weight.T + lora) * scale + (bias if bias is not None else 0)
        if k == 'IA3':
            # Liu et al. §3.3: l_k ⊙ K, l_v ⊙ V, (l_ff ⊙ γ(W₁x))W₂: output scaling, or input scaling for feed-forward modules.
            l = self.take(f'{name}.ia3_l').flatten()
            ff = c.get('feedforward_modules') or []
            ff = peft_targets({'target_modules': ff}, name) if ff else False
            return base(x * l) if ff else base(x) * l
        if k == 'ADALORA':
            # Zhang et al. §3.1, W = W⁽⁰⁾ + PΛQ; PEFT SVDLinear: x·(A⊙E)ᵀ·Bᵀ · lora_alpha / (ranknum + 1e-5), ranknum = init_r.
            A, E, B = self.take(f'{name}.lora_A'), self.take(f'{name}.lora_E'), self.take(f'{name}.lora_B')
            return base(x) + (x @ (A * E).T @ B.T) * c['lora_alpha'] / (c['init_r'] + 1e-5)
        if k == 'TRIADAPTLORA':
            # The folder README's update ΔW = (α/r)·B·C·A, C = tril(C_lower) + triu(C_upper, 1), r the module's
            # saved rank, with r guarded as PEFT's AdaLoRA guards its ranknum (r + 1e-5), which the library's
            # scaling uses: without the guard the logits differ by ~1e-4 after a few steps at rank 1.
            A, B = self.take(f'{name}.lora_A'), self.take(f'{name}.lora_B')
            C = torch.tril(self.take(f'{name}.lora_C_lower')) + torch.triu(self.take(f'{name}.lora_C_upper'), 1)
            r = A.shape[0]
            if c['rank_pattern'][name] != r:
                raise ValueError(f'{self.folder}: {name} has rank {r}, rank_pattern says {c["rank_pattern"][name]}')
            # The masks select the active block while training; a saved module is cut to it, so they are all on.
            if not bool((self.take(f'{name}.tri_rank_mask') == 1).all()):
                raise ValueError(f'{self.folder}: {name}.tri_rank_mask is not all ones in a saved adapter')
            self.take(f'{name}.tri_mask_lower'), self.take(f'{name}.tri_mask_upper')
            return base(x) + (x @ A.T @ C.T @ B.T) * c['lora_alpha'] / (r + 1e-5)
        if k == 'HYDRA':
            # Kim et al.: h = W₀x + s·B_pA_p x + s·B_sA_s(W₀x).
            y = base(x)
            pa, pb = self.take(f'{name}.hydra_par_A.weight'), self.take(f'{name}.hydra_par_B.weight')
            sa, sb = self.take(f'{name}.hydra_seq_A.weight'), self.take(f'{name}.hydra_seq_B.weight')
            return y + c['scale'] * (x @ pa.T @ pb.T + y @ sa.T @ sb.T)
        if k == 'LAMDA':
            # Azizi et al.: h = Wx + α·B·S·A·x (PMA A [r, in], LDA S [r, r], PMB B [out, r]).
            A, S, B = self.take(f'{name}.lamda_A.weight'), self.take(f'{name}.lamda_S.weight'), self.take(f'{name}.lamda_B.weight')
            return base(x) + c['scale'] * (x @ A.T @ S.T @ B.T)
        # SSF, Lian et al. eq. 1: y = γ ⊙ x + β on the linear layer's output.
        return base(x) * self.take(f'{name}.ssf_scale') + self.take(f'{name}.ssf_shift')

    def embed(self, ids, table):
        x = table[ids]
        key = 'model.embed_tokens'
        if self.kind == 'LORA' and peft_targets(self.cfg, key):
            # PEFT lora.Embedding: E[ids] + (A[:, ids])ᵀ·Bᵀ·s, lora_embedding_A [r, V], lora_embedding_B [D, r].
            c = self.cfg
            s = c['lora_alpha'] / (math.sqrt(c['r']) if c.get('use_rslora') else c['r'])
            A, B = self.take(f'{key}.lora_embedding_A'), self.take(f'{key}.lora_embedding_B')
            x = x + (A.T[ids] @ B.T) * s
        return x

    def prompt(self):
        """Prompt tuning (Lester et al. §2): p learned embeddings before the input, [P_e; X_e]."""
        return self.take('prompt_embeddings', prefix='') if self.kind == 'PROMPT_TUNING' else None

    def prefix_length(self):
        return self.cfg['num_virtual_tokens'] if self.kind == 'PREFIX_TUNING' else 0

    def prefix(self, layer):
        """Prefix tuning (Li & Liang eq. 3) in PEFT's past_key_values layout: [P, layers·2, heads, head_dim], keys at 2l, values at 2l + 1."""
        c = self.cfg
        if c.get('prefix_projection') and not c.get('inference_mode', True):
            raise ValueError('a training-mode prefix encoder is not read by this reference')
        heads = c['num_attention_heads']
        table = self.take('prompt_embeddings', prefix='')
        kv = table.view(c['num_virtual_tokens'], c['num_layers'] * 2, heads, c['token_dim'] // heads)
        return kv[:, 2 * layer], kv[:, 2 * layer + 1]

    def sublayer(self, block, normed, output):
        """Bottleneck adapters and Compacter on a block's output o (n: the block's normed input)."""
        if self.kind not in ('BOTTLENECK', 'COMPACTER'):
            return output
        c = self.cfg
        placed = ('self_attn', 'mlp') if c['placement'] == 'houlsby' else ('mlp',)
        if block.rsplit('.', 1)[1] not in placed or not peft_targets({'target_modules': [block.rsplit('.', 1)[1]], 'layers_to_transform': c.get('layers_to_transform')}, block):
            return output
        act = gelu_tanh if c['activation'] == 'gelu' else torch.nn.functional.silu

        def project(h, which):
            if self.kind == 'BOTTLENECK':
                return h @ self.take(f'{block}.adapter_{which}.weight').T + self.take(f'{block}.adapter_{which}.bias')
            # Compacter §3: W = Σᵢ Aᵢ ⊗ (sᵢ·tᵢ), Aᵢ the shared (or per-layer) rule matrices.
            rules = self.take(f'compacter.phm_rule_{which}') if c['shared_phm_rule'] else self.take(f'{block}.adapter_{which}.phm_rule')
            s, t = self.take(f'{block}.adapter_{which}.phm_s'), self.take(f'{block}.adapter_{which}.phm_t')
            w = sum(torch.kron(rules[i], s[i] @ t[i]) for i in range(rules.shape[0]))
            return h @ w.T + self.take(f'{block}.adapter_{which}.bias')

        # Houlsby §2.1: adapter(h) = W_up·f(W_down·h + b_down) + b_up. Sequential: x + A(o) [+ o]; parallel: x + o + A(n) [+ n].
        source = output if c['connection'] == 'sequential' else normed
        y = project(act(project(source, 'down')), 'up')
        if c['residual']:
            y = y + source
        return y if c['connection'] == 'sequential' else output + y


class Llama:
    def __init__(self, folder):
        with open(os.path.join(folder, 'config.json')) as f:
            c = json.load(f)
        self.dim, self.layers = c['hidden_size'], c['num_hidden_layers']
        self.heads = c['num_attention_heads']
        self.kv_heads = c.get('num_key_value_heads', self.heads)
        self.head_dim = c.get('head_dim') or self.dim // self.heads
        self.eps, self.theta = c['rms_norm_eps'], c.get('rope_theta', 10000.0)
        self.tied = c.get('tie_word_embeddings', False)
        self.qk_norm = c.get('model_type') == 'qwen3'
        # Granite (transformers GraniteModel): embeddings × embedding_multiplier, attention scaled by
        # attention_multiplier instead of 1/sqrt(head_dim), block outputs × residual_multiplier, logits / logits_scaling.
        granite = c.get('model_type') == 'granite'
        self.emb_mult = c.get('embedding_multiplier', 1.0) if granite else 1.0
        self.res_mult = c.get('residual_multiplier', 1.0) if granite else 1.0
        self.attn_scale = c.get('attention_multiplier', 1.0) if granite else None
        self.logits_div = c.get('logits_scaling', 1.0) if granite else 1.0
        # Sliding window (Mistral): every layer, unless layer_types names each layer's kind.
        window = c.get('sliding_window')
        types = c.get('layer_types') or ['sliding_attention'] * self.layers
        self.windows = [window if window is not None and kind == 'sliding_attention' else None for kind in types]
        self.w = read_safetensors(os.path.join(folder, 'model.safetensors'))

    def forward(self, ids, ad=None):
        """Logits [B, T, V] of the real positions."""
        w = self.w
        b, t = ids.shape
        table = w['model.embed_tokens.weight']
        x = ad.embed(ids, table) if ad else table[ids]
        prompt = ad.prompt() if ad else None
        if prompt is not None:
            x = torch.cat([prompt[None].expand(b, -1, -1), x], 1)
        x = x * self.emb_mult
        n = x.shape[1]
        prefix = ad.prefix_length() if ad else 0
        # With a prefix the sequence's positions follow it, as Hugging Face numbers tokens after cached ones.
        positions = torch.arange(n) + prefix

        def linear(name, h):
            weight, bias = w[f'{name}.weight'], w.get(f'{name}.bias')
            return ad.linear(name, h, weight, bias) if ad else h @ weight.T + (bias if bias is not None else 0)

        for l in range(self.layers):
            p = f'model.layers.{l}'
            n1 = rmsnorm(x, w[f'{p}.input_layernorm.weight'], self.eps)
            q = linear(f'{p}.self_attn.q_proj', n1).view(b, n, self.heads, self.head_dim)
            k = linear(f'{p}.self_attn.k_proj', n1).view(b, n, self.kv_heads, self.head_dim)
            v = linear(f'{p}.self_attn.v_proj', n1).view(b, n, self.kv_heads, self.head_dim)
            if self.qk_norm:
                # Qwen3: RMSNorm over each head's vector (weights [head_dim]) before rotary.
                q = rmsnorm(q, w[f'{p}.self_attn.q_norm.weight'], self.eps)
                k = rmsnorm(k, w[f'{p}.self_attn.k_norm.weight'], self.eps)
            q, k = rope_half(q, positions, self.theta), rope_half(k, positions, self.theta)
            if prefix:
                pk, pv = ad.prefix(l)
                k = torch.cat([pk[None].expand(b, -1, -1, -1), k], 1)
                v = torch.cat([pv[None].expand(b, -1, -1, -1), v], 1)
            a = attention(q, k, v, prefix, self.windows[l], self.attn_scale).reshape(b, n, self.heads * self.head_dim)
            o = linear(f'{p}.self_attn.o_proj', a)
            x = x + self.res_mult * (ad.sublayer(f'{p}.self_attn', n1, o) if ad else o)
            n2 = rmsnorm(x, w[f'{p}.post_attention_layernorm.weight'], self.eps)
            m = linear(f'{p}.mlp.down_proj', torch.nn.functional.silu(linear(f'{p}.mlp.gate_proj', n2)) * linear(f'{p}.mlp.up_proj', n2))
            x = x + self.res_mult * (ad.sublayer(f'{p}.mlp', n2, m) if ad else m)
        x = rmsnorm(x, w['model.norm.weight'], self.eps)
        head = table if self.tied else w['lm_head.weight']
        return (x @ head.T)[:, n - t:] / self.logits_div


def pairs_to_half_rows(t, heads, head_dim):
    """Rows of a q_proj/k_proj output axis from adjacent-pair order (GGUF) to rotate-half order: per head, even rows then odd rows."""
    rows = t.view(heads, head_dim // 2, 2, -1)
    return torch.cat([rows[:, :, 0], rows[:, :, 1]], 1).reshape(t.shape)


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    model = Llama(job['model'])
    result = {'runs': [], 'orientation': []}
    for run in job.get('runs', []):
        ad = Adapter(run['adapter']) if run.get('adapter') else None
        ids = torch.tensor(run['ids'], dtype=torch.long)
        logits = model.forward(ids, ad)
        if ad:
            ad.check_all_used()
        targets = torch.tensor(run['targets'], dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        logits.contiguous().numpy().astype('<f8').tofile(run['logits'])
        result['runs'].append({'name': run['name'], 'loss': loss.item(), 'tokens': int((targets != -100).sum())})
    for o in job.get('orientation', []):
        saved, gguf = read_safetensors(o['saved']), read_safetensors(o['gguf'])
        for key, t in sorted(gguf.items()):
            # LoRA's output-side tensors follow q_proj/k_proj rows; lora_A (input side) is the same in both layouts.
            expected = t
            if key.endswith('.lora_B.weight') or key.endswith('.lora_magnitude_vector'):
                heads = next(h for suffix, h in o['heads'].items() if f'.{suffix}.' in key)
                expected = pairs_to_half_rows(t, heads, o['head_dim'])
            result['orientation'].append({
                'key': key, 'max_abs_diff': (saved[key] - expected).abs().max().item(),
                'unpermuted_diff': (saved[key] - t).abs().max().item(),
            })
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main()
