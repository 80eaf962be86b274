"""experiments.bench_threads end to end on a tiny job: every cell measured, the table and the JSON written."""

from __future__ import annotations

import json
import os

import pytest

from experiments import bench_threads


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="compares 1 thread with 2: needs 2 cores")
def test_bench_threads_measures_each_cell_and_records_the_load(tmp_path, capsys):
    rows = bench_threads.main(["--models", "mlp", "--epochs", "1", "--train-size", "64", "--repeats", "1",
                               "--default-threads", "2", "--out", str(tmp_path)])
    assert {(r["machine"], r["threads"]) for r in rows} == {("as found", 1), ("as found", 2), ("+1 busy", 1), ("+1 busy", 2)}
    assert all(r["seconds"] > 0 and len(r["load_average"]) == 1 for r in rows)
    saved = json.loads((tmp_path / "bench_threads.json").read_text())
    assert saved["rows"] == rows and "| mlp | +1 busy |" in saved["table"] in capsys.readouterr().out
