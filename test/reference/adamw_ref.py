"""
Float64 reference for the trainer's optimizer: torch.optim.AdamW driven by torch.optim.lr_scheduler.LambdaLR
and torch.nn.utils.clip_grad_norm_, on a quadratic loss whose gradient the test also feeds the library.

Usage: python3 adamw_ref.py JOB.json, where JOB is {"scenarios": [{
  "name", "params": [{"shape", "init": [...], "curvature": [...]}],
  "grads": [steps][micro-batches][params][values],
  "lr", "betas": [b1, b2], "eps", "weight_decay", "max_grad_norm": number | null,
  "schedule": {"kind": "cosine" | "linear" | "constant", "total", "warmup"}}]}
Micro-batch k of step t has the loss Σ_p ½·Σ c_p ⊙ p² + Σ p ⊙ g_{t,k,p}; a step's loss is the mean over its
micro-batches. Prints {"scenarios": [{"name", "lr": [per step], "params": [per step: [per param: values]]}]}.
"""
import json
import math
import sys

import torch

torch.set_num_threads(1)
F64 = torch.float64


def multiplier(step, kind, total, warmup):
    """The learning-rate multiplier at 1-based `step`: linear warmup step/warmup, then cosine or linear decay to 0 at `total`."""
    if warmup > 0 and step <= warmup:
        return step / warmup
    if kind == 'constant':
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress)) if kind == 'cosine' else 1 - progress


def run(s):
    params = [torch.tensor(p['init'], dtype=F64).reshape(p['shape']).requires_grad_() for p in s['params']]
    curvature = [torch.tensor(p['curvature'], dtype=F64).reshape(p['shape']) for p in s['params']]
    opt = torch.optim.AdamW(params, lr=s['lr'], betas=tuple(s['betas']), eps=s['eps'], weight_decay=s['weight_decay'])
    sch = s['schedule']
    # LambdaLR's epoch counts from 0 before the first step; the schedule counts steps from 1.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: multiplier(epoch + 1, sch['kind'], sch['total'], sch['warmup']))
    lrs, trajectory = [], []
    for micro in s['grads']:
        opt.zero_grad()
        loss = 0
        for grads in micro:
            for p, c, g in zip(params, curvature, grads):
                loss = loss + 0.5 * (c * p * p).sum() + (p * torch.tensor(g, dtype=F64).reshape(p.shape)).sum()
        (loss / len(micro)).backward()
        if s['max_grad_norm'] is not None:
            torch.nn.utils.clip_grad_norm_(params, s['max_grad_norm'])
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
        trajectory.append([p.detach().flatten().tolist() for p in params])
    return {'name': s['name'], 'lr': lrs, 'params': trajectory}


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    json.dump({'scenarios': [run(s) for s in job['scenarios']]}, sys.stdout)


if __name__ == '__main__':
    main()
