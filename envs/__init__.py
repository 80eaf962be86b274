"""Learned data selection as Gymnasium environments, on one shared inner trainer and cost ledger."""

import gymnasium

from envs.cover_select import CoverSelectEnv
from envs.data import DATASET_NAMES, DataConfig, DeviceDataset, load_dataset
from envs.data_agent import DataAgentEnv
from envs.ledger import CostLedger
from envs.models import MODEL_NAMES, build_model
from envs.own_model import FeatureModel
from envs.store import SampleStore
from envs.trainer import DivergenceError, Trainer, TrainerConfig, resolve_device, seed_everything
from envs.workers import make_forked_children_safe

__all__ = [
    "DATASET_NAMES", "MODEL_NAMES", "CostLedger", "CoverSelectEnv", "DataAgentEnv", "DataConfig", "DeviceDataset", "DivergenceError", "FeatureModel", "SampleStore",
    "Trainer", "TrainerConfig", "build_model", "load_dataset", "resolve_device", "seed_everything",
]

make_forked_children_safe()  # forked vector-env workers would hang in torch otherwise (envs/workers.py)

gymnasium.register(id="DataAgent-v0", entry_point="envs.data_agent:DataAgentEnv")
gymnasium.register(id="CoverSelect-v0", entry_point="envs.cover_select:CoverSelectEnv")
