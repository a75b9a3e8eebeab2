"""The PyTorch CPU eager baseline for bench/train.ts and bench/scale.ts: one LoRA (rank r, default 8, all
seven projections) training step on a Llama of the given size, batch x seq random tokens, AdamW on the
adapter only. Optional config keys: nKvHeads (grouped-query attention), qkvBias, tiedEmbeddings, rank,
checkpointing (recompute each block's forward in backward: torch.utils.checkpoint, as our --checkpointing;
then the output head and cross-entropy also run a chunk of rows at a time, each chunk's logits recomputed in
backward, as ours do: 2^24 logits per chunk. PyTorch's one-piece loss over a 151,936-word vocabulary needs
three [tokens × vocabulary] float32 tensors, 7.5 GB at 8 × 512, and does not fit in 24 GB with the rest).
Prints a JSON line {"stepSeconds", "peakMiB"} (best step of those after the first, a warm-up).
The address space is capped at the memory available when it starts, so a row too big for this machine ends
in a MemoryError (the caller reports no PyTorch figure) instead of waking the kernel's OOM killer."""
import json, math, resource, sys, time
import torch
import torch.utils.checkpoint

with open("/proc/meminfo") as f:
    avail = next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:"))
resource.setrlimit(resource.RLIMIT_AS, (int(avail * 0.9), resource.RLIM_INFINITY))

cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(2)
D, F, L, H, V = cfg["dim"], cfg["hiddenDim"], cfg["nLayers"], cfg["nHeads"], cfg["vocabSize"]
B, T, steps = cfg["batch"], cfg["seq"], cfg["steps"]
hd = D // H
KV = cfg.get("nKvHeads", H)
r = cfg.get("rank", 8)
scale = 2.0  # alpha = 2r, as the TypeScript side


class LoraLinear(torch.nn.Module):
    def __init__(self, i, o, bias=False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.bias = torch.nn.Parameter(torch.zeros(o), requires_grad=False) if bias else None
        self.a = torch.nn.Parameter(torch.randn(r, i) / math.sqrt(i))
        self.b = torch.nn.Parameter(torch.zeros(o, r))

    def forward(self, x):
        y = x @ self.w.t() + (x @ self.a.t()) @ self.b.t() * scale
        return y + self.bias if self.bias is not None else y


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x):
    t = torch.arange(x.shape[1], dtype=torch.float32)
    inv = 10000 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = t[:, None] * inv[None, :]
    c, s = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], -1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        bias = cfg.get("qkvBias", False)
        self.q, self.k, self.v = LoraLinear(D, D, bias), LoraLinear(D, KV * hd, bias), LoraLinear(D, KV * hd, bias)
        self.o = LoraLinear(D, D)
        self.g, self.u, self.d = LoraLinear(D, F), LoraLinear(D, F), LoraLinear(F, D)
        self.n1 = torch.nn.Parameter(torch.ones(D), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(D), requires_grad=False)

    def forward(self, x):
        h = rms(x, self.n1)
        q = rope(self.q(h).view(B, T, H, hd))
        k = rope(self.k(h).view(B, T, KV, hd))
        v = self.v(h).view(B, T, KV, hd)
        # Grouped-query attention: each key/value head serves H / KV query heads.
        k, v = (t.repeat_interleave(H // KV, dim=2) for t in (k, v))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, D))
        h = rms(x, self.n2)
        return x + self.d(torch.nn.functional.silu(self.g(h)) * self.u(h))


emb = torch.randn(V, D) * 0.02
blocks = torch.nn.ModuleList(Block() for _ in range(L))
head = emb if cfg.get("tiedEmbeddings", False) else torch.randn(V, D) * 0.02
params = [p for p in blocks.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-3)
ids = torch.randint(0, V, (B, T + 1))
best = float("inf")
for step in range(max(2, steps)):
    t0 = time.perf_counter()
    x = emb[ids[:, :-1]]
    for b in blocks:
        x = torch.utils.checkpoint.checkpoint(b, x, use_reentrant=False) if cfg.get("checkpointing") else b(x)
    h = rms(x, torch.ones(D)).reshape(-1, D)
    tgt = ids[:, 1:].reshape(-1)
    if cfg.get("checkpointing"):
        rows = max(1, (1 << 24) // V)
        chunk = lambda hc, tc: torch.nn.functional.cross_entropy(hc @ head.t(), tc, reduction="sum")
        loss = sum(torch.utils.checkpoint.checkpoint(chunk, h[i : i + rows], tgt[i : i + rows], use_reentrant=False) for i in range(0, h.shape[0], rows)) / h.shape[0]
    else:
        loss = torch.nn.functional.cross_entropy(h @ head.t(), tgt)
    opt.zero_grad()
    loss.backward()
    opt.step()
    dt = time.perf_counter() - t0
    if step > 0:
        best = min(best, dt)
print(json.dumps({"stepSeconds": best, "peakMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
