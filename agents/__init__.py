"""SB3 agents for the batch envs: a permutation-equivariant batch policy, the per-sample ``VecEnv``
adapter, feature extractors for other algorithms, :func:`make_agent` with the papers' presets (RL Zoo files in
``agents/hyperparams``, with their hooks in :mod:`agents.zoo`), and the drop-in :class:`Selector` that runs a
trained policy (or a baseline) in any training loop."""

from agents.adapters import PerSampleVecEnv
from agents.distributions import SampleBetaDistribution, SampleGaussianDistribution
from agents.policies import BatchOfSamplesPolicy, PooledCriticExtractor, SampleFlattenExtractor, SampleRowsExtractor
from agents.presets import (ALGOS, LAYOUTS, agent_kwargs, env_id_of, episode_steps, hyperparams_file, load_hyperparams,
                            make_agent, preset_layout)
from agents.resume import agent_state, load_agent_state
from agents.selector import Selector, load_policy

__all__ = [
    "ALGOS", "LAYOUTS", "BatchOfSamplesPolicy", "PerSampleVecEnv", "PooledCriticExtractor", "SampleBetaDistribution",
    "SampleFlattenExtractor", "SampleGaussianDistribution", "SampleRowsExtractor", "Selector", "agent_kwargs", "agent_state",
    "env_id_of", "episode_steps", "hyperparams_file", "load_agent_state", "load_hyperparams", "load_policy", "make_agent",
    "preset_layout",
]
