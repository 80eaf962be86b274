"""The GPU report's pieces that a CPU can check: the study's sizing, a failing part, the loops' setups and
the sync counter (the whole smoke report runs in tests/test_gpu_launch.py, on a simulated bare image)."""

from __future__ import annotations

import json

import pytest
import torch

import experiments.run.gpu_report as gpu_report
from envs.core.data import load_raw
from envs.core.trainer import TrainerConfig
from experiments.gpu_report import main
from experiments.run.env_overhead import count_host_syncs
from experiments.run.gpu_report import ReportSizes, plan_study
from experiments.run.throughput import TEXTBOOK_LOADER, time_plain, tuned_loader

SIZES = ReportSizes(dataset="synthetic", study_max_epochs=10, study_max_seeds=2)


def test_the_study_grows_with_the_budget_up_to_its_epochs_then_adds_a_seed():
    plans = [plan_study(s, epoch_seconds=1.0, sizes=SIZES, run_start_seconds=2.0) for s in (10, 100, 300, 3000)]
    assert plans[0]["epochs"] == 0  # not even one epoch of one seed fits
    assert [p["epochs"] for p in plans[1:]] == sorted(p["epochs"] for p in plans[1:]) and plans[-1]["epochs"] == 10
    assert plans[1]["seeds"] == 1 and plans[-1]["seeds"] == 2
    assert all(p["estimated_seconds"] <= s for p, s in zip(plans[1:], (100, 300, 3000)))


def test_a_failing_part_is_recorded_and_the_next_part_still_runs(tmp_path, monkeypatch, capsys):
    def broken(*args):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(gpu_report, "device_part", broken)
    monkeypatch.setattr(gpu_report, "env_part", lambda *args: ({"ok": 1}, "env measured"))
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path), "--smoke", "--parts", "env,device", "--no-progress"])
    assert stop.value.code == 1 and "part(s) device had errors" in capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["parts"]) == ["device", "env"]  # the parts' order of value, whatever --parts says
    assert report["parts"]["device"]["error"] == "RuntimeError: no such kernel" and report["parts"]["env"]["ok"] == 1
    md = (tmp_path / "report.md").read_text()
    assert md.index("1. Device") < md.index("3. The envs' cost") and "env measured" in md


def test_the_textbook_and_tuned_loops_feed_their_layouts():
    raw = load_raw("synthetic")
    config = TrainerConfig(batch_size=32, schedule="constant")
    common = dict(batches=1, warmup=0, workers=0, device=torch.device("cpu"))
    textbook = time_plain(raw, "cnn", config, setup=TEXTBOOK_LOADER, **common)
    tuned = time_plain(raw, "cnn", config, setup=tuned_loader(cpus=2), **common)
    assert (textbook.extra["workers"], textbook.extra["channels_last"]) == (2, False)
    assert (tuned.extra["workers"], tuned.extra["channels_last"]) == (1, True)
    assert not tuned.extra["pinned"]  # no pinned memory without CUDA
    assert textbook.samples == tuned.samples == 32


def test_host_syncs_are_not_measurable_on_a_cpu():
    with count_host_syncs(torch.device("cpu")) as syncs:
        torch.ones(3).sum().item()
    assert not syncs.measurable and syncs.explicit is None


def test_host_syncs_on_cuda_count_sync_debug_warnings_and_synchronize_calls_apart(monkeypatch):
    """CUDA's path with the device faked: sync debug mode's warnings are the implicit syncs, calls of
    ``torch.cuda.synchronize`` the explicit ones (a warning raised inside such a call is not counted twice)."""
    import warnings

    modes = []
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: warnings.warn("called a synchronizing CUDA operation"))
    original = torch.cuda.synchronize
    with count_host_syncs(torch.device("cuda")) as syncs:
        warnings.warn("called a synchronizing CUDA operation")  # what a .cpu() copy triggers
        torch.cuda.synchronize()
        torch.cuda.synchronize()
        warnings.warn("an unrelated warning")
    assert (syncs.implicit, syncs.explicit) == (1, 2) and syncs.measurable
    assert modes == ["warn", 0] and torch.cuda.synchronize is original


def test_the_device_clock_reads_cuda_events_and_the_peak_memory_on_cuda(monkeypatch):
    from experiments.run.throughput import DeviceClock

    class Event:
        def __init__(self, enable_timing: bool):
            assert enable_timing

        def record(self):
            self.at = len(calls)

        def synchronize(self):
            calls.append("event sync")

        def elapsed_time(self, end):  # milliseconds, as CUDA reports them
            return 250.0

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)
    with DeviceClock(torch.device("cuda")) as clock:
        calls.append("work")
    assert clock.seconds == 0.25 and clock.peak_bytes == 3 * 2**20
    assert calls == ["sync", "reset", "work", "event sync"]  # one wait before (the warm-up), one at the end
