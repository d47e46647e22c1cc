"""Benchmark: configuration, the trainer, evaluation, sweeps, tables, reports and the `bench` CLI."""
