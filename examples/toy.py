"""Fit NADE and MADE to a small known distribution and compare with its exact entropy.

Run: python examples/toy.py
"""

import torch

import ardens

torch.manual_seed(0)
n = 8
# A known distribution: a random 3-component mixture of product Bernoullis.
means = torch.rand(3, n)


def truth(x: torch.Tensor) -> torch.Tensor:
    """Exact log-likelihood under the mixture."""
    per_component = (x[:, None] * means.log() + (1 - x[:, None]) * (1 - means).log()).sum(-1)
    return torch.logsumexp(per_component, 1) - torch.log(torch.tensor(3.0))


comp = torch.randint(3, (20_000,))
data = torch.bernoulli(means[comp])
entropy = -truth(data).mean().item()

for model in (ardens.NADE(n, hidden=32), ardens.MADE(n, hidden=[64], num_masks=4, ordering="random")):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(400):
        batch = data[torch.randint(len(data), (256,))]
        kwargs = {"mask": step % model.num_masks} if isinstance(model, ardens.MADE) else {}
        loss = -model.log_prob(batch, **kwargs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        nll = -model.log_prob(data).mean().item()
    print(f"{type(model).__name__}: NLL {nll:.4f} nats (true entropy {entropy:.4f})")
