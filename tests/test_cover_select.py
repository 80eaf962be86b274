"""CoverSelect-v0: API checks, rewards by hand, coreset sizes, seeding, errors; coreset files and CLIs."""

from __future__ import annotations

import json
import warnings

import gymnasium
import numpy as np
import pytest
import torch

import envs
from envs.cover_select.env import CoverSelectEnv
from envs.cover_select.rewards import CoverDifficultyReward, CoverRatioReward, make_cover_reward
from envs.methods.coreset import (coreset_size_bounds, coreset_subset, load_coreset,
                                  proportional_quotas, random_coreset, save_coreset, select_by_score)
from envs.methods.baselines.static import STATIC_BASELINES, ProxyScores, select_coreset
from envs.methods.oracle import real_methods
from envs.methods.cover import class_members, cover_degrees
from envs.methods.reward_terms import RunningBatchNormalizer, difficulty
from tiny import tiny_env

# digits, 10 classes x 10 samples; 16 per batch: 7 batches per epoch, the last one 4 real + 12 padded
TINY = tiny_env(dataset="digits", train_size=100, trainer={"lr": 0.05}, keep_ratio=0.3)


def make(trainer: dict | None = None, data: dict | None = None, **kw) -> CoverSelectEnv:
    """The TINY env with ``kw`` changed and ``trainer`` / ``data`` updating TINY's options."""
    return CoverSelectEnv(**{**TINY, **kw, "trainer": {**TINY["trainer"], **(trainer or {})},
                             "data": {**TINY["data"], **(data or {})}})


def run_episode(env: CoverSelectEnv, seed: int, action=None) -> list[tuple]:
    """Play a whole episode (random actions seeded by ``seed`` unless ``action`` is given)."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    steps = []
    while True:
        a = env.action_space.sample() if action is None else np.full(env.action_space.shape, action, np.float32)
        nxt, reward, terminated, truncated, step_info = env.step(a)
        steps.append((obs, info, a, reward, step_info))
        obs, info = nxt, step_info
        assert not terminated
        if truncated:
            return steps


# --- API -----------------------------------------------------------------------------------------


def test_check_env_passes_with_only_the_expected_warnings():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make("CoverSelect-v0", **TINY)  # made, so the checker finds a spec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        sb3_check_env(env)
    messages = {str(w.message) for w in caught}
    unexpected = [m for m in messages if "infinity" not in m and "unconventional shape" not in m]
    assert not unexpected, unexpected
    assert any("unconventional shape" in m for m in messages)  # SB3's note on the 2-D observation


def test_make_after_import_and_spaces():
    env = gymnasium.make("CoverSelect-v0", dataset="synthetic", trainer=dict(batch_size=32, epochs=1), device="cpu")
    assert isinstance(env.unwrapped, envs.CoverSelectEnv)
    assert env.observation_space.shape == (32, 128) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (32,) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    obs, info = env.reset(seed=0)
    assert obs.shape == (32, 128) and obs.dtype == np.float32 and np.isfinite(obs).all()
    assert info["batch_indices"].shape == (32,) and not info["padded"].any()
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and not terminated and not truncated
    assert info["sample_rewards"].dtype == np.float32 and info["sample_rewards"].shape == (32,)


def test_episode_length_one_forward_per_batch_and_truncation():
    env = make()
    steps = run_episode(env, seed=0)
    assert len(steps) == 2 * 7
    led = env.trainer.ledger
    assert led.samples_forwarded == led.samples_backpropagated == 2 * 7 * 16  # no extra pass for the degrees
    assert led.optimizer_steps == 2 * 7 and led.overhead_seconds > 0
    last = steps[-1][4]
    assert "ledger" in last and "error" not in last
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_padding_slots_are_marked_and_their_actions_ignored():
    env = make(trainer=dict(epochs=1))
    env.reset(seed=3)
    for _ in range(6):  # full batches: the first one scores its samples 1.0
        obs, _, _, _, info = env.step(np.ones(16, np.float32))
    assert not info["padded"][:4].any() and info["padded"][4:].all()
    padded = info["batch_indices"][4:]
    action = np.full(16, -1.0, np.float32)
    env.step(action)
    assert torch.all(env.scores[torch.as_tensor(padded)] == 1.0)  # the padded slots' -1 was ignored
    assert torch.all(env.scores[torch.as_tensor(info["batch_indices"][:4])] == 0.0)
    assert int((env.scores > 0.5).sum()) == 96


# --- rewards -------------------------------------------------------------------------------------


def test_ratio_reward_is_zero_at_target_and_negative_elsewhere():
    reward = CoverRatioReward(0.3)
    rho = torch.tensor([0.3, 0.0, 0.15, 0.31, 0.65, 1.0])
    r = reward.ratio_reward(rho)
    assert r[0].item() == 0.0
    assert (r[1:] < 0).all()
    torch.testing.assert_close(r, torch.tensor([0.0, -1.0, -0.5, -0.01 / 0.7, -0.5, -1.0]))
    out = reward(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([0.2, 0.4, 0.9]), torch.tensor(0.3), torch.rand(3))
    torch.testing.assert_close(out.rewards, torch.tensor([-0.2, -0.2, 0.0]))


def test_sample_rewards_match_a_hand_computation():
    env = make(trainer=dict(epochs=3))
    env.reset(seed=1)
    for _ in range(7):  # first epoch: degrees are all 0, the reward is the ratio term alone
        _, reward, _, _, info = env.step(np.ones(16, np.float32))
        assert reward == pytest.approx(-1.0) and np.allclose(info["sample_rewards"], -1.0)
    assert (env.degrees > 0).any()
    rng = np.random.default_rng(0)
    for _ in range(3):
        idx = torch.as_tensor(info["batch_indices"])
        degrees = env.degrees[idx].numpy().copy()
        action = rng.uniform(-1.2, 1.2, 16).astype(np.float32)  # some out of range: clipped
        _, reward, _, _, info_step = env.step(action)
        d = (np.clip(action, -1, 1) + 1) / 2
        rho = float((env.scores > 0.5).float().mean())
        delta = rho - 0.3
        r_ratio = -delta / 0.7 if delta >= 0 else delta / 0.3
        expected = r_ratio - degrees * d
        np.testing.assert_allclose(info_step["sample_rewards"], expected, rtol=1e-5, atol=1e-6)
        assert info_step["ratio"] == pytest.approx(rho) and info_step["ratio_reward"] == pytest.approx(r_ratio)
        assert reward == pytest.approx(float(expected.mean()), rel=1e-5)
        info = info_step


def test_degrees_come_from_the_epochs_training_features():
    env = make(trainer=dict(epochs=2), epsilon="median")
    obs, info = env.reset(seed=2)
    buffer = torch.zeros(100, env.feature_dim)
    for _ in range(7):
        valid = ~info["padded"]
        buffer[torch.as_tensor(info["batch_indices"][valid])] = torch.as_tensor(obs[valid])
        obs, _, _, _, info = env.step(env.action_space.sample())
    members = class_members(env.data.train_y, 10)
    expected, eps = cover_degrees(buffer, members, "median")  # 10 samples per class: the exact median
    assert torch.equal(env.degrees, expected) and torch.equal(env.epsilons, eps)


def test_reward_normalisation_option_uses_the_running_normaliser():
    raw = [s[4]["sample_rewards"] for s in run_episode(make(), seed=0)]
    normed = [s[4]["sample_rewards"] for s in run_episode(make(reward_norm=True), seed=0)]
    normaliser = RunningBatchNormalizer()
    for r, n in zip(raw, normed):
        np.testing.assert_allclose(n, normaliser(torch.as_tensor(r)).numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(raw[-1], normed[-1])


def test_ratio_scale_weighs_only_the_ratio_term():
    scores, degrees, rho = torch.tensor([1.0, 0.2]), torch.tensor([0.5, 0.9]), torch.tensor(0.6)
    plain, scaled = CoverRatioReward(0.3)(scores, degrees, rho, torch.zeros(2)), CoverRatioReward(0.3, ratio_scale=4.0)(
        scores, degrees, rho, torch.zeros(2))
    torch.testing.assert_close(scaled.ratio_reward, 4 * plain.ratio_reward)
    torch.testing.assert_close(scaled.rewards - scaled.ratio_reward, plain.rewards - plain.ratio_reward)


def test_difficulty_reward_pays_a_kept_samples_difficulty_and_charges_its_degree():
    losses = torch.tensor([0.1, 2.0, 0.5, 1.0, 3.0])
    scores, degrees, rho = torch.tensor([1.0, 1.0, 0.0, 0.5, 1.0]), torch.tensor([0.3, 0.3, 0.8, 0.1, 0.0]), torch.tensor(0.3)
    out = CoverDifficultyReward(0.3, difficulty_weight=2.0)(scores, degrees, rho, losses)
    expected = scores * (2.0 * difficulty(losses) - degrees)  # rho on target: the ratio term is 0
    torch.testing.assert_close(out.rewards, expected)
    assert out.rewards[1] > out.rewards[0]  # same degree, harder: worth more
    assert out.rewards[2] == 0.0  # a dropped sample earns nothing either way
    zero = CoverDifficultyReward(0.3, difficulty_weight=0.0)(scores, degrees, rho, losses)
    torch.testing.assert_close(zero.rewards, CoverRatioReward(0.3)(scores, degrees, rho, losses).rewards)


def test_env_uses_the_named_reward_and_its_options():
    env = make(reward="cover_difficulty", ratio_scale=2.0)
    assert type(env.reward_fn) is CoverDifficultyReward and env.reward_fn.ratio_scale == 2.0
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.ones(16, np.float32))  # first epoch: degrees 0
    assert info["ratio_reward"] == pytest.approx(-2.0)  # every score still 1: rho = 1, r_ratio = -1, scaled by 2
    assert reward > info["ratio_reward"]  # kept samples earn their difficulty
    assert env.coreset_meta()["reward"] == "cover_difficulty" and env.coreset_meta()["ratio_scale"] == 2.0


def test_env_accepts_a_reward_object_with_the_same_keep_ratio():
    class Constant(CoverRatioReward):
        def selection_reward(self, scores, degrees, losses):
            return torch.full_like(scores, 0.25)

    env = make(reward=Constant(0.3))
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones(16, np.float32))
    np.testing.assert_allclose(info["sample_rewards"], info["ratio_reward"] + 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="keep_ratio=0.3 differs from the reward object's keep_ratio=0.5"):
        make(reward=Constant(0.5))
    with pytest.raises(ValueError, match="reward='composite' is invalid; valid choices: cover, cover_difficulty"):
        make(reward="composite")
    assert make_cover_reward("cover", 0.2).keep_ratio == 0.2


def test_rank_degree_norm_ranks_the_degrees_within_each_class():
    raw, ranked = make(trainer=dict(epochs=2)), make(trainer=dict(epochs=2), degree_norm="rank")
    run_episode(raw, seed=3)
    run_episode(ranked, seed=3)
    for members in class_members(raw.data.train_y, 10):
        d, r = raw.degrees[members], ranked.degrees[members]
        expected = (d[None, :] < d[:, None]).sum(dim=1).float() / (len(members) - 1)  # class-mates strictly below
        torch.testing.assert_close(r, expected)
        assert r.min() == 0.0 and r.max() <= 1.0


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.55])
def test_class_budget_keeps_the_class_proportions_and_the_highest_scores(ratio):
    env = make(class_budget=True, keep_ratio=ratio, data=dict(train_size=130))  # 13 per class
    run_episode(env, seed=1)
    core = env.coreset()
    labels = env.data.train_y.numpy()
    assert len(core) == round(ratio * 130)
    counts = np.bincount(labels[core], minlength=10)
    assert counts.max() - counts.min() <= 1 and (np.abs(counts - ratio * 13) < 1).all()
    kept = np.zeros(130, bool)
    kept[core] = True
    scores = env.scores.numpy()
    for k in range(10):
        member = labels == k
        assert scores[kept & member].min() >= scores[~kept & member].max()
    assert env.coreset_meta()["class_budget"] is True


# --- training modes and divergence ---------------------------------------------------------------


@pytest.mark.parametrize("train_on, changes", [("selected", False), ("all", True)])
def test_train_on_selected_masks_the_loss_of_deselected_samples(train_on, changes):
    env = make(train_on=train_on, trainer=dict(weight_decay=0.0))
    env.reset(seed=0)
    before = [p.detach().clone() for p in env.trainer.model.parameters()]
    env.step(np.full(16, -1.0, np.float32))  # deselect the whole batch
    after = list(env.trainer.model.parameters())
    same = all(torch.equal(a, b) for a, b in zip(before, after))
    assert same != changes


def test_divergence_truncates_with_an_error():
    env = make(trainer=dict(lr=1e30, schedule="constant", epochs=5))
    env.reset(seed=0)
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        if truncated:
            break
    assert truncated and not terminated and "error" in info
    assert np.all(obs == 0) and np.isfinite(reward)


# --- seeding and coreset -------------------------------------------------------------------------


def test_same_seed_same_coreset_different_seed_different_coreset():
    env = make(epsilon="quantile:0.2")
    cores = []
    for seed in (5, 5, 6):
        run_episode(env, seed)
        cores.append(env.coreset())
    assert np.array_equal(cores[0], cores[1])
    assert not np.array_equal(cores[0], cores[2])


@pytest.mark.parametrize("action", [1.0, -1.0, None])
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.9])
def test_env_coreset_size_within_one_percent(action, ratio):
    env = make(trainer=dict(epochs=1), keep_ratio=ratio)
    run_episode(env, seed=0, action=action)
    core = env.coreset()
    low, high = coreset_size_bounds(100, ratio)
    assert low <= len(core) <= high and abs(len(core) - ratio * 100) <= 1
    assert len(np.unique(core)) == len(core) and core.min() >= 0 and core.max() < 100
    meta = env.coreset_meta()
    assert meta["ratio"] == ratio and meta["num_train"] == 100 and meta["epochs_completed"] == 1


@pytest.mark.parametrize("n", [10, 57, 1000, 12345])
@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.5, 0.77, 0.99])
def test_select_by_score_size_and_nearest_half_rule(n, ratio):
    rng = np.random.default_rng(n)
    low, high = coreset_size_bounds(n, ratio)
    assert low <= high and (high - low <= 0.02 * n or low == high)
    for scores in (np.ones(n), np.zeros(n), rng.uniform(size=n), np.full(n, 0.5)):
        core = select_by_score(torch.as_tensor(scores, dtype=torch.float32), ratio, seed=1)
        assert low <= len(core) <= high
        assert abs(len(core) - ratio * n) <= 0.01 * n + 1e-9 or low == high
        selected = int((scores > 0.5).sum())
        if low <= selected <= high:
            assert np.array_equal(core, np.flatnonzero(scores > 0.5))  # in range: exactly d > 0.5
        kept = np.zeros(n, bool)
        kept[core] = True
        if kept.any() and (~kept).any():  # trimmed or filled by closeness to 0.5: kept scores dominate
            assert scores[kept].min() >= scores[~kept].max()


def test_select_by_score_breaks_ties_by_seed():
    a = select_by_score(torch.ones(1000), 0.5, seed=0)
    b = select_by_score(torch.ones(1000), 0.5, seed=1)
    assert len(a) == 510 and not np.array_equal(a, b)  # all selected: trimmed to the +1% bound
    assert np.array_equal(a, select_by_score(torch.ones(1000), 0.5, seed=0))


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(keep_ratio=0.0), "keep_ratio=0.0"), (dict(keep_ratio=1.0), "keep_ratio=1.0"),
    (dict(keep_ratio=-0.2), "keep_ratio=-0.2"), (dict(keep_ratio=float("nan")), "keep_ratio=nan"),
    (dict(keep_ratio=True), "keep_ratio=True"), (dict(epsilon=0.0), "epsilon=0.0"),
    (dict(epsilon=-1), "epsilon=-1"), (dict(epsilon=float("nan")), "epsilon=nan"),
    (dict(epsilon="widest"), "epsilon='widest'"), (dict(train_on="pruned"), "train_on='pruned'"),
    (dict(degree_norm="max"), "degree_norm='max' is invalid; valid: one of none, rank"),
    (dict(class_budget=1), "class_budget=1 is invalid; valid: True or False"),
    (dict(ratio_scale=0.0), "ratio_scale=0.0 is invalid"), (dict(ratio_scale=float("inf")), "ratio_scale=inf"),
    (dict(reward=42), "reward=42 is invalid"),
    (dict(trainer=dict(batch_size=101)), "batch_size=101"), (dict(model="vit"), "unknown model 'vit'"),
    (dict(chunk_bytes=0), "chunk_bytes=0"), (dict(quantile_samples=1), "quantile_samples=1"),
    (dict(trainer=dict(lr=-1.0)), "lr=-1.0"), (dict(trainer=dict(schedule="step")), "schedule='step'"), (dict(dataset="mnist"), "unknown dataset"),
])
def test_bad_options_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        make(**kw)


@pytest.mark.parametrize("action, match", [
    (np.zeros(15, np.float32), "shape"), (np.zeros((16, 1), np.float32), "shape"),
    (np.r_[np.zeros(15), np.nan].astype(np.float32), "NaN or infinite"),
    (np.r_[np.zeros(15), np.inf].astype(np.float32), "NaN or infinite"),
])
def test_bad_actions_are_clear_errors(action, match):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        make().step(np.zeros(16, np.float32))


# --- coreset files and the non-RL selections -----------------------------------------------------


def test_save_and_load_roundtrip_is_atomic(tmp_path):
    meta = {"dataset": "digits", "num_train": 100, "ratio": 0.3, "seed": np.int64(4), "method": "test"}
    npy, js = save_coreset(tmp_path / "sub" / "core", np.array([7, 3, 50]), meta)
    assert npy.name == "core.npy" and js.name == "core.json"
    for path in (tmp_path / "sub" / "core", npy, js):
        idx, loaded = load_coreset(path)
        assert idx.tolist() == [3, 7, 50] and loaded["seed"] == 4 and loaded["size"] == 3
    save_coreset(tmp_path / "sub" / "core", [1, 2], meta)  # overwrite in place
    assert load_coreset(js)[0].tolist() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["core.json", "core.npy"]  # no temp files left
    assert json.loads(js.read_text())["format"] == 1
    with pytest.raises(ValueError, match="duplicates"):
        save_coreset(tmp_path / "bad", [1, 1], meta)
    with pytest.raises(ValueError, match="out of range"):
        save_coreset(tmp_path / "bad", [100], meta)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_coreset(tmp_path / "missing")


def test_coreset_files_get_the_mode_of_any_other_output(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # what metrics.json, config.yml... get: 0666 less the umask
    for path in save_coreset(tmp_path / "core", [1, 2], {"dataset": "digits"}):
        assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777, path.name


def test_coreset_subset_of_a_device_dataset(tmp_path):
    data = envs.load_dataset("digits", train_size=100)
    save_coreset(tmp_path / "c", [0, 5, 99], {"num_train": 100})
    sub = coreset_subset(data, tmp_path / "c")
    assert len(sub) == 3
    x, y = sub[1]
    assert torch.equal(x, data.train_x[5]) and y == data.train_y[5]
    with pytest.raises(ValueError, match="100 samples"):
        coreset_subset(data, np.array([100]))


def test_the_cover_method_keeps_the_least_covered_per_class():
    labels = torch.arange(3).repeat_interleave(torch.tensor([40, 30, 30]))
    feats = torch.randn(100, 6, generator=torch.Generator().manual_seed(0))
    proxy = ProxyScores(labels, torch.rand(100), torch.rand(100), torch.rand(100), feats, {}, {})
    core = select_coreset("cover", proxy, 0.5, seed=0).indices
    degrees, _ = cover_degrees(feats, class_members(labels, 3))
    assert len(core) == 50
    assert np.bincount(labels[core].numpy(), minlength=3).tolist() == [20, 15, 15]  # proportional to class size
    for k in range(3):
        member = (labels == k).numpy()
        kept = np.zeros(100, bool)
        kept[core] = True
        assert degrees[kept & member].max() <= degrees[~kept & member].min()
    assert proportional_quotas([40, 30, 30], 33) == [13, 10, 10] and sum(proportional_quotas([7, 5, 1], 6)) == 6


def test_random_coreset_is_seeded_and_sized():
    a, b = random_coreset(1000, 300, seed=0), random_coreset(1000, 300, seed=1)
    assert len(a) == 300 and len(np.unique(a)) == 300 and not np.array_equal(a, b)
    assert np.array_equal(a, random_coreset(1000, 300, seed=0))
    with pytest.raises(ValueError, match="size=0"):
        random_coreset(10, 0)


def test_select_and_evaluate_clis_end_to_end(tmp_path, capsys):
    from experiments.evaluate_coreset import main as evaluate_main
    from experiments.select_coreset import main as select_main

    common = ["--dataset", "digits", "--train-size", "200", "--device", "cpu", "--no-progress"]
    idx, meta = select_main([*common, "--method", "cover", "--epochs", "1", "--keep-ratio", "0.4",
                             "--out", str(tmp_path / "cover")])
    assert meta["method"] == "cover" and abs(len(idx) - 80) <= 2 and meta["ledger"]["samples_backpropagated"] == 200
    rand, _ = select_main([*common, "--method", "random", "--keep-ratio", "0.4", "--out", str(tmp_path / "rand")])
    assert len(rand) == 80
    result = evaluate_main(["--coreset", str(tmp_path / "cover" / "coreset.json"), "--model", "mlp", "--epochs", "2",
                            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "eval")])
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["size"] == len(idx)
    assert result["size"] == len(idx) and result["ledger"]["samples_backpropagated"] == 2 * len(idx)
    assert result["test"]["top1"] > 10.0 and result["selection"] == "cover"  # above chance (10 classes) after 2 epochs
    rnd = evaluate_main(["--coreset", str(tmp_path / "cover"), "--model", "mlp", "--epochs", "1", "--random",
                         "--device", "cpu", "--no-progress"])
    assert rnd["selection"] == "random" and rnd["size"] == len(idx)
    assert "test top-1" in capsys.readouterr().out


@pytest.mark.parametrize("method", real_methods(STATIC_BASELINES))  # the oracle is no real method (docs/tasks.md)
def test_select_coreset_offers_every_registered_static_method(method, tmp_path):
    from experiments.run.coresets import METHODS
    from experiments.select_coreset import main as select_main

    assert method in METHODS
    idx, meta = select_main(["--dataset", "synthetic", "--train-size", "120", "--model", "mlp", "--epochs", "1",
                             "--batch-size", "32", "--keep-ratio", "0.25", "--device", "cpu", "--no-progress",
                             "--method", method, "--out", str(tmp_path)])
    assert len(idx) == 30 and len(np.unique(idx)) == 30 and meta["method"] == method
    trained = STATIC_BASELINES[method].needs != "labels"
    assert meta["ledger"].get("samples_backpropagated", 0) == (120 if trained else 0)
    assert np.array_equal(np.load(tmp_path / "coreset.npy"), idx)


def test_env_coreset_saves_and_evaluates(tmp_path):
    from experiments.evaluate_coreset import evaluate_coreset

    env = make(trainer=dict(epochs=1), data=dict(seed=3))
    run_episode(env, seed=0)
    save_coreset(tmp_path / "rl", env.coreset(), env.coreset_meta())
    result = evaluate_coreset(tmp_path / "rl", "mlp", epochs=1, batch_size=16, device="cpu", progress=False)
    assert result["selection"] == "rl-selector" and result["num_train"] == 100
    assert result["selection_meta"]["data_seed"] == 3
