"""Learned data selection as Gymnasium environments, on one shared inner trainer and cost ledger."""

import gymnasium

from envs.core.data import DATASET_NAMES, DataConfig, DeviceDataset, load_dataset
from envs.core.ledger import CostLedger
from envs.core.models import MODEL_NAMES, build_model
from envs.core.own_model import FeatureModel
from envs.core.store import SampleStore
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig, resolve_device, seed_everything
from envs.core.workers import make_forked_children_safe
from envs.cover_select.env import CoverSelectEnv
from envs.data_agent.env import DataAgentEnv

__all__ = [
    "DATASET_NAMES", "MODEL_NAMES", "CostLedger", "CoverSelectEnv", "DataAgentEnv", "DataConfig", "DeviceDataset", "DivergenceError", "FeatureModel", "SampleStore",
    "Trainer", "TrainerConfig", "build_model", "load_dataset", "resolve_device", "seed_everything",
]

make_forked_children_safe()  # forked vector-env workers would hang in torch otherwise (envs/core/workers.py)

gymnasium.register(id="DataAgent-v0", entry_point="envs.data_agent.env:DataAgentEnv")
gymnasium.register(id="CoverSelect-v0", entry_point="envs.cover_select.env:CoverSelectEnv")
