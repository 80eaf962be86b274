"""Text data: the SST-2 and AG News slices load as cached padded ids, every text model runs in both envs, a baseline
of each suite and the drop-in selector run on text, own strings take the same route, a corrupted cache is rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import envs.core.data
import envs.core.text
from agents import Selector
from envs import CoverSelectEnv, DataAgentEnv, load_dataset
from envs.core.models import TEXT_MODELS, build_model
from envs.core.trainer import Trainer, TrainerConfig
from experiments import benchmark

VOCAB, SEQ = 300, 16
TRAINER = dict(batch_size=16, epochs=2, lr=0.5, schedule="constant")


def text(name: str, root, **kw) -> envs.core.data.DeviceDataset:
    return load_dataset(name, root=str(root), vocab_size=VOCAB, seq_len=SEQ, **kw)


@pytest.mark.parametrize("name, classes", [("sst2", 2), ("agnews", 4)])
def test_text_sets_load_as_padded_ids_and_later_loads_read_the_cache(text_slices, monkeypatch, name, classes):
    ds = text(name, text_slices)
    assert (ds.modality, ds.train_x.dtype, ds.input_shape, ds.num_train, ds.num_test) == ("text", torch.int64, (SEQ,), 256, 80)
    assert ds.num_classes == classes and set(ds.train_y.tolist()) == set(range(classes))
    assert 0 <= int(ds.train_x.min()) and int(ds.train_x.max()) < ds.vocab_size <= VOCAB
    assert bool((ds.train_x[:, 0] != 0).all())  # every text has a first token; padding (0) only at the end
    assert bool(((ds.train_x[:, 1:] != 0) <= (ds.train_x[:, :-1] != 0)).all())

    def no_training(*args, **kw):
        raise AssertionError("the tokenizer was trained again")

    monkeypatch.setattr(envs.core.text, "_train_tokenizer", no_training)
    again = text(name, text_slices)
    assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_x, ds.test_x)


def test_options_key_the_cache_and_subsets_and_tasks_apply(text_slices):
    short = text("agnews", text_slices, train_size=40, task="noisy:sym:0.25", seed=3)
    assert short.num_train == 40 and int(short.noisy_mask.sum()) == 10
    full = torch.bincount(text("agnews", text_slices).train_y) / 256 * 40
    assert (torch.bincount(short.train_y_true) - full).abs().max() < 1  # stratified
    other = load_dataset("agnews", root=str(text_slices), vocab_size=VOCAB, seq_len=SEQ + 8)
    assert other.input_shape == (SEQ + 8,)


def test_a_corrupted_cache_is_rebuilt_never_trusted(text_slices, capsys):
    ds = text("sst2", text_slices)
    (cache,) = envs.core.data.CACHE_DIR.glob("text-sst2-*.npz")
    for damage in (b"not a zip", cache.read_bytes()[:200]):
        cache.write_bytes(damage)
        again = text("sst2", text_slices)
        assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_x, ds.test_x)
        assert "rebuilding it" in capsys.readouterr().err
    # readable but inconsistent: ids beyond the vocabulary
    with np.load(cache) as z:
        parts = dict(z)
    parts["train_x"] = parts["train_x"] + 10**6
    np.savez(cache.open("wb"), **parts)
    assert torch.equal(text("sst2", text_slices).train_x, ds.train_x)


@pytest.mark.parametrize("name, dim", [("bow", 128), ("textcnn", 300), ("transformer", 128)])
def test_text_models_return_logits_and_features_and_ignore_padding(name, dim):
    torch.manual_seed(0)
    model = build_model(name, (12,), 3, vocab_size=50).eval()
    ids = torch.randint(1, 50, (5, 12))
    ids[:, 7:] = 0  # padding
    logits, feats = model(ids)
    assert logits.shape == (5, 3) and feats.shape == (5, dim) == (5, model.feature_dim)
    assert torch.allclose(model.head(feats), logits, atol=1e-5)
    with torch.no_grad():
        model.embed.weight[0] = torch.randn(model.embed.weight.shape[1])  # what a padding id embeds to
    # the mean pools (bow, transformer) leave padding out; the CNN's windows see it
    assert torch.allclose(model(ids)[0], logits, atol=1e-5) == (name != "textcnn")
    empty = model(torch.zeros(2, 12, dtype=torch.long))[0]  # an empty text gives finite logits
    assert torch.isfinite(empty).all()


@pytest.mark.parametrize("model", TEXT_MODELS)
@pytest.mark.parametrize("env_id", ["DataAgent-v0", "CoverSelect-v0"])
def test_every_text_model_runs_in_both_envs(text_slices, model, env_id):
    data = dict(root=str(text_slices), vocab_size=VOCAB, seq_len=SEQ, train_size=96)
    if env_id == "DataAgent-v0":
        env = DataAgentEnv("agnews", model, trainer=TRAINER, data=data, keep_ratio=0.5, device="cpu")
        obs, _ = env.reset(seed=0)
        assert obs.shape == (16, env.observation_space.shape[1]) and np.isfinite(obs).all()
        done = False
        while not done:
            obs, reward, _, done, info = env.step(np.zeros(16, np.float32))
            assert np.isfinite(reward)
        assert 0 <= info["final_test"]["top1"] <= 100
    else:
        env = CoverSelectEnv("agnews", model, trainer={**TRAINER, "epochs": 1}, data=data, keep_ratio=0.5, device="cpu")
        obs, _ = env.reset(seed=0)
        assert np.isfinite(obs).all()
        _, reward, _, _, _ = env.step(env.action_space.sample())
        assert np.isfinite(reward)


@pytest.mark.parametrize("suite, methods", [("dynamic", "random,infobatch,proxy_loss"), ("static", "random,el2n")])
def test_a_baseline_of_each_suite_runs_on_text(text_slices, tmp_path, suite, methods):
    benchmark.main(["--suite", suite, "--methods", methods, "--dataset", "sst2", "--data-root", str(text_slices),
                    "--vocab-size", str(VOCAB), "--seq-len", str(SEQ), "--model", "bow", "--batch-size", "16",
                    "--epochs", "2", "--lr", "0.5", "--anneal", "0.5", "--no-progress", "--out", str(tmp_path)])
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == set(methods.split(","))
    assert all(0 <= r["top1"] <= 100 and r["config"]["vocab_size"] == VOCAB for r in records)


def test_the_drop_in_selector_trains_a_text_model(text_slices):
    ds = text("sst2", text_slices)
    model = build_model("bow", ds.input_shape, ds.num_classes, ds.vocab_size)
    selector = Selector.from_baseline("loss_topk", num_samples=ds.num_train, num_classes=2, epochs=3, batch_size=16,
                                      keep_ratio=0.5, anneal=0.67, seed=0)
    loader = DataLoader(TensorDataset(torch.arange(ds.num_train), ds.train_x, ds.train_y), batch_size=16, sampler=selector)
    for _ in range(3):
        for idx, xb, yb in loader:
            logits, features = model(xb)
            loss = selector.update(idx, F.cross_entropy(logits, yb, reduction="none"), logits, features)
            assert torch.isfinite(loss)
            loss.backward()
    assert selector.backprop_fraction() == pytest.approx(2 / 3)  # half the samples in two epochs of three


def test_own_strings_take_the_tokenizer_route_in_the_env():
    texts = [f"{w} film number {i}" for i, w in enumerate(["good", "great", "bad", "awful"] * 40)]
    labels = [int(i % 4 < 2) for i in range(160)]
    ds = load_dataset((texts, labels), vocab_size=60, seq_len=6)
    assert (ds.modality, ds.input_shape, ds.num_train, ds.num_test) == ("text", (6,), 128, 32)
    assert int(ds.train_x.max()) < ds.vocab_size
    env = DataAgentEnv((texts, labels), "bow", trainer=dict(batch_size=16, epochs=4, lr=0.5), data=dict(vocab_size=60, seq_len=6),
                       keep_ratio=0.5, device="cpu")
    env.reset(seed=0)
    done = False
    while not done:
        _, _, _, done, info = env.step(np.zeros(16, np.float32))
    assert info["final_test"]["top1"] >= 75  # the first word gives the label away


def test_a_hugging_face_text_dataset_takes_the_same_route():
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is an optional extra: pip install datasets")
    texts = ["good", "bad", "fine", "awful"] * 10
    hf = datasets.Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0] * 10})
    ds = load_dataset(datasets.DatasetDict(train=hf, test=hf.select(range(8))), vocab_size=40, seq_len=4)
    assert (ds.modality, ds.input_shape, ds.num_train, ds.num_test) == ("text", (4,), 40, 8)
