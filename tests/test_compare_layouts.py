"""experiments.compare_layouts: both agent layouts run on the same config and the table averages over seeds."""

from __future__ import annotations

import json

import pytest

from experiments.compare_layouts import main, table


def test_both_modes_run_and_are_written(tmp_path, capsys):
    out = tmp_path / "modes"
    rows = main(["--dataset", "synthetic", "--model", "mlp", "--train-size", "96", "--batch-size", "16", "--epochs", "2",
                 "--envs", "DataAgent-v0", "--algos", "a2c", "--seed", "3", "--out", str(out)])
    assert sorted(r["layout"] for r in rows) == ["batch", "per_sample"]
    assert {r["seed"] for r in rows} == {3}  # --seed is --seeds, never silently ignored
    assert all(r["top1"] > 90.0 for r in rows)  # both layouts train the model (chance: 25%)
    assert json.loads((out / "runs.json").read_text())["runs"] == rows
    printed = capsys.readouterr().out
    assert "| DataAgent-v0 | a2c | batch |" in printed
    assert "saved to" not in printed  # the runs' folders are temporary


def test_table_reports_mean_and_std_over_seeds():
    rows = [{"env": "E", "algo": "ppo", "layout": "batch", "seed": s, "reward_first_epoch": r0, "reward_last_epoch": r1,
             "score_first_epoch": 0.5, "score_last_epoch": 0.5 + s, "top1": acc}
            for s, r0, r1, acc in ((0, 0.0, 1.0, 90.0), (1, 2.0, 3.0, 92.0))]  # sample std of two: |a - b| / sqrt(2)
    line = table(rows).splitlines()[-1]
    assert line == ("| E | ppo | batch | 1.000 ± 1.414 | 2.000 ± 1.414 | 0.500 ± 0.000 | 1.000 ± 0.707 | 91.00 ± 1.41 | 2 |")


def test_an_unknown_env_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--envs", "CartPole-v1"])
    assert "invalid choice" in capsys.readouterr().err
