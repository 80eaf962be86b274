"""The benchmark runs end-to-end on digits, writes its tables and plots, and resumes without rerunning."""

from __future__ import annotations

import json

import pytest

from experiments import benchmark
from experiments.run import benchmark as bench


def test_dynamic_suite_end_to_end_and_resume(tmp_path, capsys):
    argv = ["--suite", "dynamic", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--anneal", "0.5",
            "--seeds", "0", "--keep-ratios", "0.3", "0.6", "--out", str(tmp_path)]
    table = benchmark.main(argv)
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    methods = bench.DEFAULT_METHODS["dynamic"]  # baselines, Data Agent (paper, recommended variant) and its controls
    assert len(lines) == 2 * len(methods) - 1  # full data runs once, whatever the ratio
    for name in ("runs.csv", "summary.json", "summary.md", "accuracy_vs_cost.png", "accuracy_vs_ratio.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    by = {(r["method"], r["ratio"]): r for r in rows}
    assert by[("full", 0.3)]["backprop_fraction"] == 1.0
    # one pruned epoch of two: kept 30% then all data
    assert abs(by[("random", 0.3)]["backprop_fraction"] - (0.3 + 1.0) / 2) < 0.002
    assert all(m in table for m in methods)
    benchmark.main(argv)  # a second invocation finds every run done
    assert f"resuming: {len(lines)} of {len(lines)} runs already" in capsys.readouterr().out
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == len(lines)


def test_methods_may_have_spaces_and_seed_is_honoured(tmp_path, capsys):
    benchmark.main(["--suite", "dynamic", "--dataset", "synthetic", "--model", "mlp", "--epochs", "1",
                    "--methods", "random, dataagent_a2c", "--seed", "2", "--out", str(tmp_path)])
    recs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {(r["method"], r["seed"]) for r in recs} == {("random", 2), ("dataagent_a2c", 2)}
    assert "saved to" not in capsys.readouterr().out  # Data Agent's run folder is temporary


def test_noisy_runs_report_the_noisy_share_kept(tmp_path):
    benchmark.main(["--suite", "dynamic", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--anneal", "0.5",
                    "--methods", "loss_topk", "--task", "noisy:sym:0.4", "--out", str(tmp_path)])
    rec = json.loads((tmp_path / "runs.jsonl").read_text())
    # loss top-k keeps the high-loss samples, and mislabelled samples have high losses: above the 40% base rate
    assert 0.4 < rec["noisy_kept_fraction"] <= 1.0


def test_static_suite_end_to_end(tmp_path):
    table = benchmark.main(["--suite", "static", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
                            "--train-size", "400", "--keep-ratios", "0.5", "--out", str(tmp_path)])
    recs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {r["method"] for r in recs} == set(bench.DEFAULT_METHODS["static"])  # every real method: no oracle
    for r in recs:
        if r["method"].startswith("rlselector"):  # the agent's coreset: target ratio within ±1%
            assert abs(r["backprop"] - 200) <= 4 and r["selection_backprop"] >= 400
            assert r["selection_seconds"] > 0  # the selection run's wall-clock, agent included
        else:
            assert r["backprop"] == 200  # one epoch on a coreset of exactly half of 400 samples
            proxy = 0 if r["method"] in ("random", "random_uniform") else 400  # one shared 1-epoch proxy run
            assert r["selection_backprop"] == proxy and r["selection_backprop_fraction"] == proxy / 400
        if r["method"] in ("rlselector_a2c_balanced", "rlselector_a2c_difficulty", "rlselector_a2c_short"):
            assert r["backprop"] == 200 and r["diagnosis"]["class_tv"] < 0.01  # the per-class budget
        # selection back-prop over the 200 samples each training on the coreset saves
        assert r["payoff_trainings"] == pytest.approx(r["selection_backprop"] / (400 - r["backprop"]))
        assert set(r["diagnosis"]) == {"outlier_share", "core_share", "centre_distance", "class_tv", "min_class_share"}
    assert "herding" in table and "cover" in table and "pays off after (trainings)" in table
    assert "outlier_share" in (tmp_path / "diagnosis.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--methods", "full,magic"], "unknown dynamic method(s) ['magic']"),
    (["--keep-ratios", "0.5", "1.5"], "--keep-ratios=[0.5, 1.5] is invalid; valid: values in (0, 1)"),
    (["--anneal", "2"], "--anneal=2.0 is invalid; valid: [0, 1]"),
    (["--suite", "static", "--score-epochs", "0"], "--score-epochs=0 is invalid"),
    (["--epochs", "0"], "epochs=0 is invalid; valid: an integer >= 1"),
])
def test_bad_options_are_refused_naming_the_option(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        benchmark.main([*argv, "--dataset", "synthetic", "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs.jsonl").exists()


def test_every_committed_run_keeps_its_key_so_its_suite_resumes():
    """The run key hashes the typed configuration's JSON form: every run committed under docs/benchmarks (since the
    task options) must get the same key back, or rerunning its suite would train it again."""
    from pathlib import Path

    from experiments.run.benchmark import BenchConfig, RunSpec

    records = [json.loads(line) for f in sorted((Path(__file__).resolve().parents[1] / "docs" / "benchmarks").rglob("runs.jsonl"))
               for line in f.read_text().splitlines() if line.strip()]
    # runs recorded with label noise before tasks replaced the noise options belong to finished suites (their clean
    # runs were rewritten with task "clean")
    records = [r for r in records if "suite" in r and "config" in r and "noise" not in r["config"]]
    assert len(records) >= 800
    for r in records:
        assert RunSpec(r["suite"], r["method"], r["ratio"], r["seed"], BenchConfig.from_dict(r["config"])).key == r["key"]
