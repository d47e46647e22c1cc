"""Per-step wall times without a host synchronisation per step.

Waiting for the GPU after every step (`torch.cuda.synchronize`) to time it would stall the host's kernel queue
each step. On CUDA a pair of events is recorded around each step instead and read when the times are asked for
(log steps and the end of the run: one wait for the newest event); on the CPU, `time.perf_counter`.
"""

from __future__ import annotations

import time

import torch


class StepClock:
    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._times: list[float] = []
        self._pending: list[tuple] = []
        self._t0 = 0.0
        self._event = None

    def start(self) -> None:
        if self._cuda:
            self._event = torch.cuda.Event(enable_timing=True)
            self._event.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((self._event, end))
        else:
            self._times.append(time.perf_counter() - self._t0)

    def times(self) -> list[float]:
        """Seconds of every step so far (on CUDA: waits for the last recorded step to finish)."""
        if self._pending:
            self._pending[-1][1].synchronize()
            self._times += [a.elapsed_time(b) / 1000.0 for a, b in self._pending]
            self._pending = []
        return self._times
