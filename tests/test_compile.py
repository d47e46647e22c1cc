"""train.compile: eager where torch.compile cannot run, a cache under the run cache, evaluation always eager."""

from __future__ import annotations

import torch

from sslbench.benchmark.training import compile as compile_mod
from sslbench.benchmark.training.compile import (
    compile_networks,
    compile_unavailable,
    eager_forward,
    use_persistent_cache,
)


class TwoNets(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.student = torch.nn.Linear(3, 2)
        self.teacher = torch.nn.Linear(3, 2)
        self.buffer_only = torch.nn.Identity()


class Doubler(torch.nn.Module):
    def forward(self, x):
        return 2 * x


def test_no_cpp_compiler_keeps_the_networks_eager_with_one_warning(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    compile_mod._warn_once.cache_clear()
    assert "C++ compiler" in compile_unavailable(torch.device("cpu"))
    nets = TwoNets()
    assert compile_networks(nets, "default", torch.device("cpu")) is False
    assert compile_networks(nets, "default", torch.device("cpu")) is False
    err = capsys.readouterr().err
    assert err.count("warning: train.compile=true: no C++ compiler") == 1  # once per process, not per run
    assert nets.student._compiled_call_impl is None and nets.teacher._compiled_call_impl is None


def test_compiled_networks_use_a_cache_under_the_run_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(compile_mod.CACHE_ENV, raising=False)
    monkeypatch.setattr(compile_mod, "compile_unavailable", lambda device: None)
    nets = TwoNets()
    assert compile_networks(nets, "default", torch.device("cpu")) is True
    assert nets.student._compiled_call_impl is not None and nets.teacher._compiled_call_impl is not None
    assert nets.buffer_only._compiled_call_impl is None  # nothing to train, nothing to compile
    assert (tmp_path / "cache" / "compile").is_dir()
    assert compile_mod.os.environ[compile_mod.CACHE_ENV] == str(tmp_path / "cache" / "compile")


def test_a_users_inductor_cache_folder_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(compile_mod.CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("SSLBENCH_CACHE", str(tmp_path / "cache"))
    assert use_persistent_cache() == str(tmp_path / "mine")
    assert not (tmp_path / "cache" / "compile").exists()


def test_evaluation_runs_the_eager_forward_of_a_compiled_network():
    compiled_calls = []

    def counting_backend(gm, example_inputs):
        def run(*args):
            compiled_calls.append(1)
            return gm.forward(*args)

        return run

    net = Doubler()  # a module of our own: dynamo does not trace torch's own modules as the top frame
    net.compile(backend=counting_backend)
    x = torch.randn(4, 3)
    with eager_forward():
        assert torch.equal(net(x), 2 * x)
    assert compiled_calls == []
    net(x)
    assert compiled_calls == [1]  # outside the block the compiled graph runs


def test_the_counting_first_step_leaves_the_networks_compiled(tmp_path):
    """The first step counts FLOPs and passes under a dispatch mode and hooks: run eagerly, it must not make
    torch.compile skip the networks for the rest of the run (it did: compiled runs trained eagerly)."""
    from sslbench.benchmark.config import build_config
    from sslbench.benchmark.training.step import StepRunner
    from sslbench.benchmark.training.trainer import Trainer

    torch._dynamo.reset()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    cfg = build_config("mt", "8/72", 1337, "smoke", {"train.threads": "1"})
    trainer = Trainer(cfg, tmp_path, progress=False)
    method = trainer.build_method()
    for net in (method.student, method.teacher):
        net.compile(backend=counting_backend)
    runner = StepRunner(trainer, method)
    method.train()
    batches = iter(trainer.loader(0, 3))
    _, passes = runner(next(batches), 0, count=True)
    assert graphs == [] and passes  # counted, eagerly
    runner(next(batches), 1)
    assert len(graphs) >= 2  # student and teacher traced on the next step
