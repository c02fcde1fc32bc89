"""A small CNN trained in convscope follows the same loss curve as in PyTorch from the same weights."""

import numpy as np
import pytest
import torch

import convscope as cs
from convscope import nn, optim


def build(m, bn):
    # a bias right before BatchNorm is cancelled by it (its gradient is pure round-off, which
    # Adam would amplify), so, as usual, the conv feeding BatchNorm has none
    layers = [m.Conv2d(1, 6, 5, padding=2, bias=not bn)]
    if bn:
        layers.append(m.BatchNorm2d(6))
    layers += [
        m.ReLU(),
        m.MaxPool2d(2),
        m.Conv2d(6, 16, 5),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Flatten(),
        m.Linear(16 * 5 * 5, 84),
        m.ReLU(),
        m.Linear(84, 10),
    ]
    return m.Sequential(*layers)


def batches(steps, n=16, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("opt,bn", [("sgd", False), ("sgd", True), ("adam", False), ("adam", True)])
def test_training_losses_match_pytorch(opt, bn):
    torch.manual_seed(0)
    theirs = build(torch.nn, bn)
    ours = build(nn, bn)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    if opt == "sgd":
        o_opt = optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        t_opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        o_opt = optim.Adam(ours.parameters(), lr=1e-3)
        t_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    losses_o, losses_t = [], []
    for x, y in batches(12):
        o_opt.zero_grad()
        loss = nn.functional.cross_entropy(ours(cs.tensor(x)), cs.tensor(y))
        loss.backward()
        o_opt.step()
        losses_o.append(loss.item())
        t_opt.zero_grad()
        tl = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        t_opt.step()
        losses_t.append(tl.item())
    # the float32 standard (measured: within 2.1e-7 relative over the 12 steps)
    np.testing.assert_allclose(losses_o, losses_t, rtol=1e-5, atol=1e-6)
    assert losses_o[-1] != losses_o[0]
    # weights after 12 updates: round-off differences in the gradients compound, and Adam divides
    # them by sqrt(v), amplifying them for weights whose gradients are tiny (measured: SGD within
    # 1.2e-5, Adam within 2.5e-4 relative)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
