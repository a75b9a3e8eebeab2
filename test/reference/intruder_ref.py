"""
Float64 reference for intruder dimensions (Shuttleworth et al., 2024) and the effective rank (Roy & Vetterli,
2007), written from the paper's definition with torch.linalg.svd.

Usage: python3 intruder_ref.py JOB.json, where JOB is {"model": a Hugging Face-layout folder (model.safetensors),
"adapter": a PEFT LoRA folder, "k", "epsilon", "modules": [module names]}. For each module, W_tuned = W + s·B·A
(s = lora_alpha / r, or / √r with use_rslora) in float64; U, U_tuned the left singular vectors of W and
W_tuned; for each of the first k columns y_j of U_tuned, max_i |y_j · x_i| over the columns x_i of U; an
intruder when that is below epsilon. Effective rank of ΔW = s·B·A: exp(-Σ p ln p), p = σ / Σσ.
Prints {"modules": [{"module", "maxCosine": [...], "intruders": [...], "effectiveRank", "rank"}]}.
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


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    base = read_safetensors(f"{job['model']}/model.safetensors")
    adapter = read_safetensors(f"{job['adapter']}/adapter_model.safetensors")
    with open(f"{job['adapter']}/adapter_config.json") as f:
        cfg = json.load(f)
    if cfg['peft_type'] != 'LORA':
        raise ValueError('this reference merges LoRA adapters only')
    s = cfg['lora_alpha'] / (math.sqrt(cfg['r']) if cfg.get('use_rslora') else cfg['r'])
    out = []
    for name in job['modules']:
        w = base[f'{name}.weight']
        a = adapter[f'base_model.model.{name}.lora_A.weight']
        b = adapter[f'base_model.model.{name}.lora_B.weight']
        delta = s * (b @ a)
        u_base = torch.linalg.svd(w, full_matrices=False)[0]
        u_tuned = torch.linalg.svd(w + delta, full_matrices=False)[0]
        k = min(job['k'], u_tuned.shape[1])
        max_cos = (u_tuned[:, :k].T @ u_base).abs().max(dim=1).values
        sigma = torch.linalg.svdvals(delta)
        p = sigma / sigma.sum()
        p = p[p > 0]
        out.append({
            'module': name,
            'maxCosine': max_cos.tolist(),
            'intruders': [j for j in range(k) if max_cos[j] < job['epsilon']],
            'effectiveRank': math.exp(-(p * p.log()).sum().item()),
            'rank': int((sigma > sigma[0] * 1e-10).sum().item()),
        })
    print(json.dumps({'modules': out}))


main()
