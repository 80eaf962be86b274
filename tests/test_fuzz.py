"""Property-based fuzzing of everything a user types: actions, env constructor options and CLI options.

The property is always the same: a valid input works, and an invalid one is a clear error that names
what is wrong (a ``ValueError``/``TypeError`` from the envs, a one-line ``error:`` naming the option from
the CLI). Never another exception, never a traceback. Examples are derandomised, so CI sees the same ones.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import envs  # noqa: F401
import experiments.run.training as training
import experiments.train as train
from envs import CoverSelectEnv, DataAgentEnv
from tiny import tiny_env

FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
BATCH = 8
ENV_KW = tiny_env(train_size=64, batch_size=BATCH)

# --- actions ------------------------------------------------------------------------------------

REAL_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_]
arrays = hnp.arrays(
    dtype=st.sampled_from([*REAL_DTYPES, np.complex64]),
    shape=st.one_of(st.just((BATCH,)), hnp.array_shapes(min_dims=0, max_dims=3, max_side=BATCH + 1)),
)  # float elements include NaN and infinities
float_arrays = hnp.arrays(np.float64, st.sampled_from([(BATCH,), (BATCH - 1,), (1, BATCH)]),
                          elements=st.floats(allow_nan=True, allow_infinity=True, width=64))
actions = st.one_of(arrays, float_arrays, st.lists(st.floats(), min_size=BATCH, max_size=BATCH),
                    st.lists(st.one_of(st.floats(), st.text(max_size=2)), max_size=BATCH + 1),
                    st.none(), st.text(max_size=BATCH), st.floats(), st.dictionaries(st.text(max_size=2), st.integers()))


def _valid(action) -> bool:
    try:
        a = np.asarray(action)
    except ValueError:
        return False
    return a.dtype.kind in "biuf" and a.shape == (BATCH,) and bool(np.isfinite(a).all())


@pytest.fixture(scope="module", params=["DataAgent-v0", "CoverSelect-v0"])
def env(request):
    env = gym.make(request.param, **ENV_KW).unwrapped
    env.reset(seed=0)
    return env


@FUZZ
@given(action=actions)
def test_any_action_is_taken_or_refused_clearly_and_the_episode_goes_on(env, action):
    if _valid(action):
        event("a valid action")
        obs, reward, _, truncated, info = env.step(action)
        assert math.isfinite(reward) and np.isfinite(obs).all() and "error" not in info
        if truncated:
            env.reset(seed=0)
        return
    event("an invalid action")
    with pytest.raises((TypeError, ValueError), match="^action "):
        env.step(action)
    env.step(np.zeros(BATCH, np.float32))  # a refused action leaves the episode intact
    if env._done:
        env.reset(seed=0)


# --- env constructor options --------------------------------------------------------------------

junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2))
def either(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value or junk, about half and half."""
    return st.one_of(valid, junk)


COMMON = {
    "dataset": either(st.sampled_from(["digits", "synthetic", "mnist-typo", "imagefolder:/missing"])),
    "model": either(st.sampled_from(["mlp", "cnn", "resnet18", "vgg"])),
    "device": st.sampled_from(["cpu", "auto", "cuda", "cuda:3", "foo", 7]),
}
GROUPS = {  # the options an env takes inside its trainer= and data= mappings
    "trainer": {
        "batch_size": either(st.integers(1, 80)), "epochs": either(st.integers(0, 4)), "lr": either(st.floats(1e-4, 1.0)),
        "schedule": either(st.sampled_from(["cosine", "constant", "step"])), "momentum": either(st.floats(0, 0.99)),
        "nesterov": either(st.booleans()), "weight_decay": either(st.floats(0, 0.01)),
        "label_smoothing": either(st.floats(0, 0.5)), "amp": either(st.booleans()), "augment": either(st.booleans()),
        "eval_batch_size": either(st.integers(1, 4096)), "threads": either(st.integers(-1, 2)),
    },
    "data": {
        "train_size": either(st.integers(-1, 600)), "task": either(st.sampled_from(["clean", "noisy:asym:0.3", "redundant:0.3",
                                                                                  "imbalanced:1e9", "noisy:2", "bogus"])),
        "seed": either(st.integers(0, 2**32 - 1)),
    },
}
OPTIONS = {
    DataAgentEnv: {**COMMON, "keep_ratio": either(st.floats(0.2, 1.0)), "anneal": either(st.floats(0, 1)),
                   "loss_weight": either(st.floats(0.5, 4.0)), "reward_norm": either(st.booleans()),
                   "state": either(st.sampled_from(["features", "signals", "both", "pixels"])),
                   "reward": either(st.sampled_from(["composite", "loss", "entropy", "accuracy"]))},
    CoverSelectEnv: {**COMMON, "keep_ratio": either(st.floats(0.05, 0.95)), "reward_norm": either(st.booleans()),
                     "chunk_bytes": either(st.integers(1, 2**28)), "quantile_samples": either(st.integers(2, 5000)),
                     "train_on": either(st.sampled_from(["all", "selected", "half"])),
                     "epsilon": either(st.sampled_from(["mean", "median", "quantile:0.3", "quantile:2", "max", 0.5]))},
}
ALL_OPTIONS = {cls: {**{name: (None, s) for name, s in options.items()},
                     **{name: (group, s) for group, grouped in GROUPS.items() for name, s in grouped.items()}}
               for cls, options in OPTIONS.items()}


@pytest.mark.parametrize("cls", [DataAgentEnv, CoverSelectEnv])
@FUZZ
@given(data=st.data())
def test_any_constructor_options_build_the_env_or_name_the_bad_option(cls, data):
    names = data.draw(st.lists(st.sampled_from(sorted(ALL_OPTIONS[cls])), min_size=1, max_size=3, unique=True))
    kw = {**ENV_KW, "trainer": dict(ENV_KW["trainer"]), "data": dict(ENV_KW["data"])}
    for name in names:
        group, strategy = ALL_OPTIONS[cls][name]
        (kw if group is None else kw[group])[name] = data.draw(strategy, label=name)
    try:
        env = cls(**kw)
    except (ValueError, TypeError, FileNotFoundError) as err:
        event(f"refused: {type(err).__name__}")
        message = str(err)
        assert "\n" not in message and any(name in message for name in (*kw, *kw["trainer"], *kw["data"])), message
        return
    event("built")
    assert env.action_space.shape == (kw["trainer"]["batch_size"],)


# --- CLI options --------------------------------------------------------------------------------

numbers_as_text = st.one_of(st.integers(-3, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                            st.sampled_from(["", "abc", "1e400", "-0", "0x10", "1_000"]))
CLI = {
    "--lr": numbers_as_text, "--epochs": numbers_as_text, "--batch-size": numbers_as_text,
    "--train-size": numbers_as_text, "--keep-ratio": numbers_as_text,
    "--anneal": numbers_as_text, "--weight-decay": numbers_as_text, "--label-smoothing": numbers_as_text,
    "--seed": numbers_as_text, "--checkpoint-every": numbers_as_text, "--keep-checkpoints": numbers_as_text,
    "--momentum": numbers_as_text, "--eval-batch-size": numbers_as_text,
    "--threads": numbers_as_text, "--epsilon": st.one_of(numbers_as_text, st.sampled_from(["mean", "quantile:x"])),
    "--task": st.sampled_from(["noisy:asym:0.2", "noisy:pairflip", "imbalanced:0.5", "mixed"]), "--state": st.sampled_from(["signals", "pixels"]),
    "--device": st.sampled_from(["cpu", "cuda", "tpu"]), "--agent-device": st.sampled_from(["cpu", "cuda", "tpu"]),
    "--dataset": st.sampled_from(["synthetic", "mnist-typo", "imagefolder:/missing"]),
    "--hyperparams": st.sampled_from(["n_steps=0", "n_steps=abc", "gamma=2", "foo=1", "=3", "ent_coef=0.1"]),
    "--load-agent": st.sampled_from(["missing.zip", "/dev/null"]),
}
CLI_BASE = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "64", "--batch-size", "8", "--epochs", "1",
            "--no-progress", "--reference", "none"]


class _ReachedTraining(Exception):
    """The options were valid: the run was about to train."""


def _option_names() -> set[str]:
    names = set()
    for action in train.build_parser()._actions:
        for flag in action.option_strings:
            names |= {flag, flag.lstrip("-").replace("-", "_")}
    return names - {"-h", "h"}


@FUZZ
@given(data=st.data())
def test_any_cli_options_run_or_give_a_one_line_error_naming_an_option(tmp_path, monkeypatch, capsys, data):
    def reached(*args, **kwargs):
        raise _ReachedTraining

    monkeypatch.setattr(training, "run_agent", reached)
    flags = data.draw(st.lists(st.sampled_from(sorted(CLI)), min_size=1, max_size=3, unique=True))
    argv = [*CLI_BASE, "--out", str(tmp_path / "run")]
    for flag in flags:
        argv += [flag, data.draw(CLI[flag], label=flag)]
    if "--epsilon" in flags and "--state" not in flags:
        argv += ["--env", "CoverSelect-v0"]
    capsys.readouterr()
    try:
        train.main(argv)
    except _ReachedTraining:
        event("valid: reached training")
        return
    except SystemExit as stop:
        assert stop.code == 2, stop.code
    else:
        raise AssertionError("main returned without training")
    error = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage lines, then "prog: error: ..."
    event("refused")
    assert ": error: " in error, error  # a message of several lines would leave a fragment here
    assert any(name in error for name in _option_names()), error
