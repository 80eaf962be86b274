"""``experiments.transfer``: frozen policies against random at exactly the same cost."""

from __future__ import annotations

import json

import yaml

from agents import make_agent
from envs import DataAgentEnv
from experiments import transfer


def test_agents_and_random_run_at_equal_cost_and_the_table_reports_them(tmp_path):
    env = DataAgentEnv("synthetic", "mlp", trainer=dict(batch_size=32, epochs=2), device="cpu")
    folder = tmp_path / "agent"
    folder.mkdir()
    make_agent("ppo", env, "per_sample", seed=0).save(folder / "agent.zip")
    (folder / "config.yml").write_text(yaml.safe_dump({"env": "DataAgent-v0", "env_kwargs": {
        "dataset": "synthetic", "model": "mlp", "state": "features"}}))
    rows = transfer.main(["--agents", str(folder / "agent.zip"), "--dataset", "synthetic", "--model", "mlp",
                          "--epochs", "3", "--batch-size", "32", "--keep-ratios", "0.5", "--seeds", "0", "1",
                          "--device", "cpu", "--out", str(tmp_path / "out")])
    methods = [r["method"] for r in rows]
    assert methods == ["full", "agent (synthetic/mlp, state=features)", "random"] * 2
    cost = {r["method"]: r["ledger"]["samples_backpropagated"] for r in rows if r["seed"] == 0}
    assert cost["agent (synthetic/mlp, state=features)"] == cost["random"] < cost["full"]
    assert all(0.0 <= r["kept_again"] <= 1.0 for r in rows if r["method"] != "full")
    logged = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert len(logged) == 6 and "| agent (synthetic/mlp, state=features) | 0.5 | 2 |" in (tmp_path / "out" / "table.md").read_text()
