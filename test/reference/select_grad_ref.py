"""Float64 reference for the selectors' gradient feature: the gradient of the mean cross-entropy of the
response tokens with respect to the output head W [V, D], from the final hidden states h [T, D] by autograd
(logits = h Wᵀ), then projected: f_j = a_jᵀ G b_j / √dim. Also the logits h Wᵀ themselves."""
import json, sys
import torch

job = json.load(open(sys.argv[1]))
T, D, V = job["T"], job["D"], job["V"]
h = torch.tensor(job["hidden"], dtype=torch.float64).reshape(T, D)
W = torch.tensor(job["W"], dtype=torch.float64).reshape(V, D).requires_grad_(True)
ids, split = job["ids"], job["split"]
logits = h @ W.T
rows = list(range(split - 1, len(ids) - 1))
loss = torch.nn.functional.cross_entropy(logits[rows], torch.tensor([ids[t + 1] for t in rows]))
(G,) = torch.autograd.grad(loss, W)
A = torch.tensor(job["A"], dtype=torch.float64)
B = torch.tensor(job["B"], dtype=torch.float64)
f = torch.einsum("jv,vd,jd->j", A, G, B) / (A.shape[0] ** 0.5)
print(json.dumps({"feature": f.tolist(), "logits": logits.detach().reshape(-1).tolist()}))
