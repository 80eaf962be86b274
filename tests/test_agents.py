"""make_agent presets, SB3 training on both envs in both layouts, other algorithms, SubprocVecEnv, the README example."""

from __future__ import annotations

import functools
import math
import multiprocessing
import pickle
from importlib.resources import files

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import SubprocVecEnv

import envs  # noqa: F401  (registers the env ids)
from agent_helpers import FakeBatchEnv, learn_and_record
from agents import BatchOfSamplesPolicy, PerSampleVecEnv, SampleFlattenExtractor, env_id_of, make_agent, preset_layout
from agents.presets import eval_policy_kwargs
from envs.cover_select.env import CoverSelectEnv
from envs.data_agent.env import DataAgentEnv
from tiny import tiny_env

TINY = tiny_env()
ENV_IDS = ("DataAgent-v0", "CoverSelect-v0")


def yaml_entry(algo: str, env_id: str) -> dict:
    return yaml.safe_load((files("agents") / "hyperparams" / f"{algo}.yml").read_text())[env_id]


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_agents_take_every_preset_value_from_the_yaml(algo, env_id):
    entry = yaml_entry(algo, env_id)
    agent = make_agent(algo, FakeBatchEnv(batch_size=8, episode_steps=1000), env_id=env_id)
    batch = entry["policy"] == "agents.BatchOfSamplesPolicy"
    assert isinstance(agent.policy, BatchOfSamplesPolicy) == batch
    assert batch == ("vec_env_wrapper" not in entry)  # the per-sample layout is MlpPolicy on the per-sample hook
    assert agent.get_env().num_envs == (1 if batch else 8)
    for key in ("n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage",
                "n_epochs", "target_kl"):
        if key in entry:
            assert getattr(agent, key) == entry[key], key
    hook = entry["callback"][0]["agents.zoo.PresetAdjustments"]
    assert math.isclose(agent.lr_schedule(1.0), entry["learning_rate"])
    assert math.isclose(agent.lr_schedule(0.0), hook["final_learning_rate"])  # the papers' decay to 1 %
    assert agent.policy.net_arch == eval_policy_kwargs(entry["policy_kwargs"])["net_arch"]
    opt = agent.policy.optimizer
    assert type(opt) is torch.optim.Adam
    assert {k: opt.defaults[k] for k in ("eps", "weight_decay")} == {"eps": 1e-5, "weight_decay": 5e-4}
    if algo == "ppo":  # full-batch updates
        assert agent.clip_range(1.0) == entry["clip_range"] and agent.batch_size == agent.n_steps * agent.get_env().num_envs


def test_paper_values_of_the_two_main_presets():
    da, rs = yaml_entry("ppo", "DataAgent-v0"), yaml_entry("a2c", "CoverSelect-v0")
    assert ([da[k] for k in ("n_steps", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef")]
            == [10, 4, 0.99, 0.95, 0.2, 0.0])
    assert (preset_layout(da), preset_layout(rs)) == ("per_sample", "batch")  # the measured better layouts
    assert da["normalize_advantage"] is False
    assert eval_policy_kwargs(da["policy_kwargs"])["net_arch"] == {"pi": [128, 128], "vf": [128, 128]}
    assert ([rs[k] for k in ("n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "use_rms_prop")]
            == [1, 0.99, 1.0, 0.0, 0.5, False])
    assert eval_policy_kwargs(rs["policy_kwargs"])["net_arch"] == {"pi": [512, 256], "vf": [512, 256]}
    for entry in (da, rs):  # lr 3e-4 decayed linearly to 3e-6 (docs/methods.md A.11)
        assert (entry["learning_rate"], entry["callback"][0]["agents.zoo.PresetAdjustments"]["final_learning_rate"]) \
            == (3e-4, 3e-6)


def test_rollout_adapts_to_the_env():
    short = FakeBatchEnv(batch_size=8, episode_steps=6)
    assert make_agent("ppo", short, "batch", env_id="DataAgent-v0").n_steps == 6  # one update per run at least
    per_sample = make_agent("ppo", FakeBatchEnv(batch_size=8, episode_steps=6), "per_sample", env_id="DataAgent-v0",
                            n_minibatches=4)
    assert per_sample.get_env().num_envs == 8 and per_sample.batch_size == 6 * 8 // 4
    assert type(per_sample.policy).__name__ == "ActorCriticPolicy"
    assert per_sample.policy.mlp_extractor.policy_net[0].in_features == 4  # one sample's state
    with pytest.raises(ValueError, match="n_minibatches"):
        make_agent("ppo", FakeBatchEnv(batch_size=8, episode_steps=6), "batch", env_id="DataAgent-v0", n_minibatches=4)


def test_switching_layouts_keeps_the_preset_and_drops_only_the_batch_policy_options():
    batch = make_agent("ppo", FakeBatchEnv(batch_size=8, episode_steps=100), "batch", env_id="DataAgent-v0")
    assert isinstance(batch.policy, BatchOfSamplesPolicy) and batch.policy.net_arch == {"pi": [128, 128], "vf": [128, 128]}
    assert batch.get_env().num_envs == 1 and batch.batch_size == 10
    per_sample = make_agent("a2c", FakeBatchEnv(batch_size=8), "per_sample", env_id="CoverSelect-v0")
    assert type(per_sample.policy).__name__ == "ActorCriticPolicy" and per_sample.get_env().num_envs == 8
    assert per_sample.policy.net_arch == {"pi": [512, 256], "vf": [512, 256]}  # log_prob_reduction etc. dropped


def test_overrides_replace_and_merge():
    agent = make_agent("a2c", FakeBatchEnv(batch_size=8), env_id="CoverSelect-v0", gamma=0.5, learning_rate=1e-3,
                       final_learning_rate=None, policy_kwargs=dict(net_arch=[16], distribution="beta"))
    assert agent.gamma == 0.5 and agent.lr_schedule(0.3) == 1e-3
    assert agent.policy.net_arch == [16] and agent.policy.distribution == "beta"
    assert agent.policy.optimizer.defaults["weight_decay"] == 5e-4  # the rest of the preset's policy_kwargs stays
    decayed = make_agent("ppo", FakeBatchEnv(batch_size=8), env_id="CoverSelect-v0", learning_rate="lin_1e-3",
                         final_learning_rate=1e-4, policy_kwargs="dict(activation_fn=nn.Tanh)")
    assert math.isclose(decayed.lr_schedule(1.0), 1e-3) and math.isclose(decayed.lr_schedule(0.0), 1e-4)
    assert decayed.policy.activation_fn is torch.nn.Tanh
    for bad, match in [(dict(algo="sac"), "algo"), (dict(env_id="CartPole-v1"), "no ppo preset"),
                       (dict(layout="per_batch"), "layout"), (dict(learning_rate="exp_1e-3"), "learning_rate"),
                       (dict(n_minibatches=0), "n_minibatches"), (dict(algo="a2c", n_minibatches=2), "PPO's rollout"), (dict(normalize=True), "normalize"),
                       (dict(vec_env_wrapper="rl_zoo3.wrappers.HistoryWrapper"), "vec_env_wrapper"),
                       (dict(callback=["rl_zoo3.callbacks.RawStatisticsCallback"]), "callback"),
                       (dict(policy_kwargs="[1, 2]"), "policy_kwargs"), (dict(policy_kwargs="dict(a=os)"), "NameError")]:
        kwargs = dict(algo="ppo", env_id="DataAgent-v0") | bad
        with pytest.raises(ValueError, match=match):
            make_agent(kwargs.pop("algo"), FakeBatchEnv(), **kwargs)


def test_env_id_from_spec_or_entry_point():
    assert env_id_of(gym.make("CoverSelect-v0", **TINY)) == "CoverSelect-v0"
    assert env_id_of(DataAgentEnv(**TINY)) == "DataAgent-v0"
    with pytest.raises(ValueError, match="env_id"):
        env_id_of(FakeBatchEnv())


@pytest.mark.parametrize("layout", ["batch", "per_sample"])
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_trains_on_both_envs_with_finite_losses(env_id, algo, layout):
    env = gym.make(env_id, **TINY)
    agent = make_agent(algo, env, layout, seed=0)
    steps = env.unwrapped.episode_steps  # 2 epochs of 10 batches of 16: 320 sample steps
    records = learn_and_record(agent, steps * agent.get_env().num_envs)
    losses = ["train/value_loss", "train/policy_gradient_loss" if algo == "ppo" else "train/policy_loss"]
    assert len(records) >= (2 if algo == "ppo" else 10)
    assert all(np.isfinite(r[k]) for r in records for k in losses)
    assert agent.num_timesteps >= steps * agent.get_env().num_envs


@pytest.fixture(scope="module")
def readme_sac():
    """Step 2 of the README's "Plug in your own algorithm": SAC on DataAgent-v0 through a per-sample
    embedding, trained for one episode, once for every test that reads it (SAC is the slowest agent here)."""
    env = gym.make("DataAgent-v0", dataset="synthetic", model="mlp", trainer=dict(epochs=2, batch_size=16),
                   data=dict(train_size=160))
    agent = SAC("MlpPolicy", env, learning_starts=8, buffer_size=1_000, batch_size=8,
                policy_kwargs=dict(features_extractor_class=SampleFlattenExtractor))
    records = learn_and_record(agent, env.unwrapped.episode_steps)  # one episode = one training run
    return env, agent, records


def test_sac_plugs_in_with_a_sample_extractor(readme_sac):
    env, agent, records = readme_sac
    assert agent.actor.features_extractor.features_dim == 16 * 8  # batch of 16, default embedding of 8
    assert records and all(np.isfinite(r[k]) for r in records for k in ("train/actor_loss", "train/critic_loss"))
    assert agent.num_timesteps == env.unwrapped.episode_steps


def test_envs_pickle_and_run_in_spawned_subprocesses():
    fresh = CoverSelectEnv(**TINY)
    clone = pickle.loads(pickle.dumps(fresh))
    np.testing.assert_array_equal(clone.reset(seed=5)[0], fresh.reset(seed=5)[0])

    tiny = {k: v for k, v in TINY.items() if k != "device"}
    fns = [functools.partial(DataAgentEnv, device=device, **tiny) for device in ("cpu", "cpu")]
    # fresh interpreters (not fork): the env factories must unpickle from scratch. The server preloads
    # the env package and torch._dynamo (imported by the first optimizer), so the workers start warm.
    multiprocessing.set_forkserver_preload(["envs", "torch._dynamo"])
    venv = SubprocVecEnv(fns, start_method="forkserver")
    try:
        assert [str(d) for d in venv.get_attr("device")] == ["cpu", "cpu"]
        agent = make_agent("ppo", venv, env_id="DataAgent-v0", seed=0, n_steps=4)
        records = learn_and_record(agent, 2 * 8)
        assert len(records) == 2 and all(np.isfinite(r["train/value_loss"]) for r in records)
    finally:
        venv.close()


def test_per_sample_mode_rejects_a_vec_env():
    with pytest.raises(ValueError, match="ONE env"):
        make_agent("ppo", PerSampleVecEnv(FakeBatchEnv()), "per_sample", env_id="DataAgent-v0")


def test_readme_plug_in_your_own_algorithm(readme_sac):
    """The README's "Plug in your own algorithm" example, with a tiny config (step 2, SAC, is the fixture)."""
    import numpy as np
    from stable_baselines3 import A2C

    import envs  # noqa: F401  registers DataAgent-v0 and CoverSelect-v0
    from agents import PerSampleVecEnv

    env = gym.make("DataAgent-v0", dataset="synthetic", model="mlp", trainer=dict(epochs=2, batch_size=16),
                   data=dict(train_size=160))

    # 1. Any function of the (batch_size, state_dim) state that returns one score in [-1, 1] per sample.
    def my_scores(obs: np.ndarray) -> np.ndarray:
        return np.tanh(obs.mean(axis=1))

    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(my_scores(obs))
        done = terminated or truncated
    print(info["final_test"], info["backprop_fraction"])

    # 2. Any SB3 algorithm: flat-input algorithms read the batch through a shared per-sample embedding.
    _, agent, _ = readme_sac

    # 3. Stock per-sample agents: every batch position is a sub-env with its own reward.
    per_sample = A2C("MlpPolicy", PerSampleVecEnv(env), n_steps=1)
    per_sample.learn(total_timesteps=env.unwrapped.episode_steps * env.observation_space.shape[0])

    assert info["final_test"]["top1"] > 90.0 and 0.0 < info["backprop_fraction"] < 1.0  # chance: 25%; epoch 1 pruned
    assert agent.num_timesteps == env.unwrapped.episode_steps
    assert per_sample.num_timesteps == env.unwrapped.episode_steps * 16
