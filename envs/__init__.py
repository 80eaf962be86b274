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
    "DATASET_NAMES", "ENV_IDS", "MODEL_NAMES", "CostLedger", "CoverSelectEnv", "DataAgentEnv", "DataConfig", "DeviceDataset", "DivergenceError", "FeatureModel", "SampleStore",
    "Trainer", "TrainerConfig", "build_model", "load_dataset", "resolve_device", "seed_everything",
]

make_forked_children_safe()  # forked vector-env workers would hang in torch otherwise (envs/core/workers.py)

#: the environments by Gymnasium id, each with its entry point: the one list every CLI, registry and adapter reads
ENTRY_POINTS = {"DataAgent-v0": "envs.data_agent.env:DataAgentEnv", "CoverSelect-v0": "envs.cover_select.env:CoverSelectEnv"}
ENV_IDS = tuple(ENTRY_POINTS)
for _id, _entry_point in ENTRY_POINTS.items():
    gymnasium.register(id=_id, entry_point=_entry_point)
