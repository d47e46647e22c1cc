"""A random stream owned by a method, reproducible from the run seed and restored exactly on resume.

Not a method: it registers nothing. A method that draws augmentations or masks inside `train_step` owns a CPU
`torch.Generator` seeded from `torch.initial_seed()` (the trainer seeds torch with the run seed right before
building the method) mixed with a per-method stream constant, so the draws do not replay the global stream that
initialises the networks. Its state is part of the method's `state_dict` (nn.Module extra state), so checkpoints
and resumed runs continue the same stream.
"""

from __future__ import annotations

from typing import Any

import torch


class SeededMixin:
    """Adds `self.rng` (CPU generator) and `step_generator(device)` to an nn.Module method."""

    rng: torch.Generator

    def init_rng(self, stream: int) -> None:
        self.rng = torch.Generator().manual_seed((torch.initial_seed() * 1_000_003 + stream) % 2**63)

    def step_generator(self, device: torch.device) -> torch.Generator:
        """A generator on `device` seeded from the owned stream: device-side noise without host copies."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))  # a CPU tensor: no device sync
        if (
            torch.device(device).type == "meta"
        ):  # shapes only (the no-host-sync test): meta draws take a CPU one
            return torch.Generator().manual_seed(seed)
        return torch.Generator(device=device).manual_seed(seed)

    def get_extra_state(self) -> Any:
        return {"rng": self.rng.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.rng.set_state(state["rng"].cpu())
