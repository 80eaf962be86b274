"""``experiments.own_loop``: the runnable example trains a user's model on a user's data with a policy."""

from __future__ import annotations

import pytest

from experiments import own_loop


def test_without_arguments_it_trains_a_tiny_agent_then_selects_with_it(tmp_path, capsys):
    runs = own_loop.main(["--epochs", "4", "--agent-epochs", "3", "--agent-out", str(tmp_path / "agent"), "--threads", "1"])
    assert (tmp_path / "agent" / "agent.zip").is_file()
    assert list(runs) == ["agent", "random", "full data"]
    # equal cost: the agent and random keep the same number each pruned epoch; full data back-propagates everything
    assert runs["agent"]["backprop_fraction"] == runs["random"]["backprop_fraction"] < 0.8
    assert runs["full data"]["backprop_fraction"] == 1.0
    assert all(run["top1"] > 50 for run in runs.values())  # chance is 10%
    out = capsys.readouterr().out
    assert "own loop: TabularNet" in out and "back-propagated" in out


@pytest.mark.parametrize("baseline", ["infobatch", "ucb"])
def test_a_baseline_runs_in_the_same_loop(baseline):
    runs = own_loop.main(["--baseline", baseline, "--epochs", "3", "--threads", "1"])
    assert list(runs) == [baseline, "full data"] and runs[baseline]["backprop_fraction"] < 1.0


def test_a_missing_agent_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        own_loop.main(["--agent", str(tmp_path / "nope.zip")])
    assert "does not exist; valid: an agent.zip saved by experiments.train" in capsys.readouterr().err
