"""Inner trainer: per-sample losses, weights, schedules under pruning, the ledger, seeding, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from envs.core.data import load_dataset
from envs.core.models import IMAGE_MODELS, MODEL_NAMES, build_model
from envs.core.schedules import lr_at
from envs.core.store import SampleStore
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig, resolve_device


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def make(ds, **kw):
    return Trainer(ds, kw.pop("model", "mlp"), TrainerConfig(**{"epochs": 3, "batch_size": 32, **kw}), seed=0)


@pytest.mark.parametrize("name", IMAGE_MODELS)  # text models: tests/test_text.py
def test_models_return_logits_and_features(name):
    model = build_model(name, (3, 16, 16), 7)
    logits, feats = model(torch.randn(5, 3, 16, 16))
    assert logits.shape == (5, 7) and feats.shape == (5, model.feature_dim)
    assert model.feature_dim == {"mlp": 128, "cnn": 128, "resnet18": 512, "fastnet": 256}[name]
    # the logits are the head applied to the returned features: one forward pass feeds both
    assert torch.allclose(model.head(feats), logits, atol=1e-5)


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match=", ".join(MODEL_NAMES)):
        build_model("vgg", (1, 8, 8), 10)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_per_sample_losses_match_reference(synthetic, smoothing):
    t = make(synthetic, label_smoothing=smoothing, augment=False)
    idx = torch.arange(10)
    fwd = t.forward(idx)
    logp = torch.log_softmax(fwd.logits.detach().double(), dim=1)
    y = synthetic.train_y[idx]
    c = synthetic.num_classes
    ref = -(1 - smoothing) * logp.gather(1, y[:, None]).squeeze(1) - smoothing / c * logp.sum(dim=1)
    assert torch.allclose(fwd.losses.detach().double(), ref, atol=1e-5)


def test_weighted_step_backpropagates_weighted_mean(synthetic):
    t = make(synthetic)
    fwd = t.forward(torch.arange(8))
    w = torch.linspace(0.0, 2.0, 8)
    loss = t.step(fwd, w)
    assert torch.allclose(loss, (fwd.losses.detach() * w).mean())


def test_zero_weight_samples_do_not_move_the_model(synthetic):
    t = make(synthetic, weight_decay=0.0, momentum=0.0, nesterov=False)
    before = [p.clone() for p in t.model.parameters()]
    t.step(t.forward(torch.arange(8)), torch.zeros(8))
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


def test_ledger_counts_exactly_what_was_forwarded_and_backpropagated(synthetic):
    t = make(synthetic)
    subset = torch.arange(0, synthetic.num_train, 3)  # 171 samples: 5 full batches + one of 11
    t.train_epoch()
    t.train_epoch(subset)
    n = synthetic.num_train
    led = t.ledger
    assert led.samples_forwarded == led.samples_backpropagated == n + len(subset)
    assert led.optimizer_steps == math.ceil(n / 32) + math.ceil(len(subset) / 32)
    t.evaluate()
    assert led.eval_samples_forwarded == synthetic.num_test
    assert led.samples_forwarded == n + len(subset)  # evaluation is counted apart
    t.embed(torch.arange(50))
    assert led.samples_forwarded == n + len(subset) + 50 and led.samples_backpropagated == n + len(subset)
    assert led.train_seconds > 0 and led.eval_seconds > 0


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_schedule_never_raises_when_steps_per_epoch_shrink(synthetic, schedule):
    t = make(synthetic, schedule=schedule, epochs=4)
    lrs = []
    for frac in (1.0, 0.1, 0.5, 0.03):
        sub = torch.arange(int(frac * synthetic.num_train))
        for idx in t.shuffled_batches(sub):
            lrs.append(t.lr)
            t.step(t.forward(idx))
        t.begin_epoch(t.epoch + 1, max(1, len(t.shuffled_batches(sub))))
    # more steps than planned: progress saturates instead of raising
    for _ in range(5):
        lrs.append(t.lr)
        t.step(t.forward(torch.arange(8)))
    assert all(math.isfinite(v) and 0 <= v <= 0.1 + 1e-12 for v in lrs)


def test_pruned_epochs_follow_the_same_lr_curve_over_epochs(synthetic):
    full, pruned = make(synthetic, epochs=4), make(synthetic, epochs=4)
    at_epoch_start_full, at_epoch_start_pruned = [], []
    for e in range(4):
        for t, sub, acc in ((full, None, at_epoch_start_full), (pruned, torch.arange(50), at_epoch_start_pruned)):
            batches = t.shuffled_batches(sub)
            t.begin_epoch(e, len(batches))
            acc.append(t.lr)
            for idx in batches:
                t.step(t.forward(idx))
    assert at_epoch_start_full == pytest.approx(at_epoch_start_pruned)


def test_onecycle_shape():
    assert lr_at("onecycle", 0.0, 0.1) == pytest.approx(0.1 / 25)
    assert lr_at("onecycle", 0.3, 0.1) == pytest.approx(0.1)
    assert lr_at("onecycle", 1.0, 0.1) == pytest.approx(0.1 / 25 / 1e4)
    assert lr_at("onecycle", 7.0, 0.1) == lr_at("onecycle", 1.0, 0.1)
    assert lr_at("cosine", 0.5, 0.2) == pytest.approx(0.1)


def test_same_seed_same_run_different_seed_differs(synthetic):
    def run(seed):
        t = Trainer(synthetic, "cnn", TrainerConfig(epochs=1, batch_size=64), seed=seed)
        t.train_epoch()
        return torch.cat([p.flatten() for p in t.model.parameters()]), t.evaluate()

    (a, ea), (b, eb), (c, _) = run(1), run(1), run(2)
    assert torch.equal(a, b) and ea == eb
    assert not torch.equal(a, c)


def test_evaluate_reports_top1_top5(synthetic):
    t = make(synthetic, epochs=3)
    for _ in range(3):
        t.train_epoch()
    r = t.evaluate()
    assert 50 < r["top1"] <= r["top5"] == 100.0  # 4 classes: top-5 is all of them
    assert r["loss"] > 0


def test_divergence_is_a_clear_error(synthetic):
    t = make(synthetic, lr=1e30, schedule="constant", momentum=0.0, nesterov=False)
    with pytest.raises(DivergenceError, match="non-finite"):
        for _ in range(3):
            t.train_epoch()


@pytest.mark.parametrize("kw, msg", [
    ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
    ({"schedule": "step"}, "onecycle, cosine, constant"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"momentum": 1.5}, "momentum"), ({"momentum": 0.0}, "nesterov"),
])
def test_bad_trainer_options(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainerConfig(**kw).validate()


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("gpu")


def test_store_tracks_signals_and_counts_forgetting():
    s = SampleStore(3)
    y = torch.tensor([0, 1, 0])
    right = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    wrong = -right
    idx = torch.arange(3)
    for epoch, logits in enumerate([right, wrong, right, wrong]):
        losses = F.cross_entropy(logits, y, reduction="none")
        s.update(idx, losses, logits, y, epoch)
    assert s.forgetting.tolist() == [2, 2, 2]
    assert s.times_selected.tolist() == [4, 4, 4] and s.last_epoch.tolist() == [3, 3, 3]
    assert torch.allclose(s.last_loss, F.cross_entropy(wrong, y, reduction="none"))
    assert torch.all(s.margin < 0) and torch.all(s.confidence < 0.5)
    # EMA starts at the first loss, then moves towards each new one
    assert torch.all(s.loss_ema > F.cross_entropy(right, y, reduction="none"))


def test_store_scales_to_a_million_samples():
    s = SampleStore(1_000_000)
    idx = torch.randint(0, 1_000_000, (4096,)).unique()
    logits = torch.randn(len(idx), 10)
    y = torch.randint(0, 10, (len(idx),))
    s.update(idx, F.cross_entropy(logits, y, reduction="none"), logits, y, 0)
    used = sum(getattr(s, n).element_size() * getattr(s, n).numel()
               for n in (*s.FLOAT_FIELDS, *s.INT_FIELDS, "was_correct"))
    assert used == 1_000_000 * SampleStore.BYTES_PER_SAMPLE
    assert int(s.times_selected.sum()) == len(idx)


def test_threads_sets_torch_threads_for_the_run_and_zero_keeps_torchs_choice(synthetic):
    from envs.core.trainer import TORCH_THREADS

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make(synthetic)
        assert torch.get_num_threads() == 1  # the default: one thread
        make(synthetic, threads=0)
        assert torch.get_num_threads() == TORCH_THREADS
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [-1, 1.5, True, 10**6])
def test_bad_threads_are_refused(threads):
    with pytest.raises(ValueError, match=r"threads=.* is invalid; valid: an integer in \[0, \d+\] \(0: torch's own choice"):
        TrainerConfig(threads=threads).validate()


def test_every_trainer_cli_takes_threads():
    from experiments.cli import add_training_arguments, make_parser, trainer_config

    parser = make_parser(None)
    add_training_arguments(parser)
    assert trainer_config(parser.parse_args(["--threads", "3"])).threads == 3
    assert trainer_config(parser.parse_args([])).threads == 1
