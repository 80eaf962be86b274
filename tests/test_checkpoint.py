"""Checkpoints: round trip, atomicity, refusal of corrupt, truncated and mismatched files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from envs.core.checkpoint import CheckpointDir, CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state

CONFIG = {"dataset": "digits", "model": "mlp", "epochs": 3, "seed": 0}


def payload():
    return {"weights": torch.arange(1000, dtype=torch.float32), "epoch": 2, "rng": rng_state()}


def test_round_trip(tmp_path):
    p = save_checkpoint(tmp_path / "c.pt", payload(), CONFIG)
    got = load_checkpoint(p, CONFIG)
    assert torch.equal(got["weights"], torch.arange(1000, dtype=torch.float32)) and got["epoch"] == 2
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_rng_state_restores_every_generator():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


@pytest.mark.parametrize("keep_bytes", [0, 10, 200, -50])
def test_truncated_checkpoint_is_refused(tmp_path, keep_bytes):
    p = save_checkpoint(tmp_path / "c.pt", payload(), CONFIG)
    data = p.read_bytes()
    p.write_bytes(data[:keep_bytes] if keep_bytes >= 0 else data[:keep_bytes])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(p, CONFIG)


def test_flipped_payload_byte_fails_checksum(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, payload(), CONFIG)
    record = torch.load(p, weights_only=False)
    blob = bytearray(record["payload"])
    blob[len(blob) // 2] ^= 0xFF
    record["payload"] = bytes(blob)
    torch.save(record, p)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(p, CONFIG)


def test_mismatched_config_is_refused_and_named(tmp_path):
    p = save_checkpoint(tmp_path / "c.pt", payload(), CONFIG)
    with pytest.raises(CheckpointError, match=r"another configuration \(model: checkpoint 'mlp' vs now 'cnn'\)"):
        load_checkpoint(p, {**CONFIG, "model": "cnn"})


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a data-select-gym-checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_dir_keeps_the_last_k(tmp_path):
    d = CheckpointDir(tmp_path / "ck", keep=2)
    assert d.latest() is None
    for step in (5, 10, 15, 20):
        d.save(step, {"step": step}, CONFIG)
    assert d.steps() == [15, 20]
    assert load_checkpoint(d.latest(), CONFIG)["step"] == 20
    with pytest.raises(ValueError, match="keep"):
        CheckpointDir(tmp_path, keep=0)
