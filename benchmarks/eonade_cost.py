"""The cost of EoNADE on binarized MNIST on this machine (one thread): one order-agnostic
training step on 100 images, and an exact log-likelihood per image per ordering.

Run: .venv/bin/python benchmarks/eonade_cost.py  (random weights and data of MNIST's shape;
the cost does not depend on the values).
"""

import time

import torch

import ardens

torch.set_num_threads(1)
torch.manual_seed(0)
m = ardens.DeepNADE(784, hidden=[500, 500])
x = (torch.rand(500, 784) < 0.13).float()
opt, g = torch.optim.Adam(m.parameters()), torch.Generator().manual_seed(0)
t = time.perf_counter()
for _ in range(50):
    loss = m.order_agnostic_nll(x[:100], g).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
step = (time.perf_counter() - t) / 50
with torch.no_grad():
    t = time.perf_counter()
    m.log_prob(x)
    per = (time.perf_counter() - t) / 500
print(f"train step (100 images): {step * 1e3:.1f} ms; exact log-likelihood: {per * 1e3:.2f} ms per image per ordering")
