"""Counting network forward passes per step with hooks (the paper's cost argument: 1 DAE pass vs 8 teacher passes).

Rule: for every network the method owns (a direct child module, discriminators excluded), the samples it
processes in one step divided by the samples of its first call in that step. The student (labeled + unlabeled in
one call) counts 1, an MT teacher 1, UA-MT's teacher 1 + 8, lrep's teacher 1 and its DAE 1.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


def _networks(method: nn.Module) -> dict[str, nn.Module]:
    skip = set(getattr(method, "auxiliary_networks", ()))
    return {
        name: mod
        for name, mod in method.named_children()
        if name not in skip and any(True for _ in mod.parameters())
    }


@contextmanager
def record_samples(method: nn.Module):
    """Yields {network: [batch size of each forward call]} for what runs inside the block."""
    calls: dict[str, list[int]] = {}
    handles = []
    for name, net in _networks(method).items():
        calls[name] = []

        def hook(_mod, args, _out, name=name):
            if args and hasattr(args[0], "shape"):
                calls[name].append(int(args[0].shape[0]))

        handles.append(net.register_forward_hook(hook))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


@contextmanager
def count_passes(method: nn.Module):
    """Yields a dict filled with {network: passes} for what runs inside the block."""
    result: dict[str, float] = {}
    with record_samples(method) as calls:
        yield result
    for name, sizes in calls.items():
        if sizes:
            result[name] = sum(sizes) / sizes[0]
