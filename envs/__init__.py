"""Learned data selection as Gymnasium environments, on one shared inner trainer and cost ledger."""

from envs.data import DATASET_NAMES, DeviceDataset, load_dataset
from envs.ledger import CostLedger
from envs.models import MODEL_NAMES, build_model
from envs.store import SampleStore
from envs.trainer import DivergenceError, Trainer, TrainerConfig, resolve_device, seed_everything

__all__ = [
    "DATASET_NAMES", "MODEL_NAMES", "CostLedger", "DeviceDataset", "DivergenceError", "SampleStore",
    "Trainer", "TrainerConfig", "build_model", "load_dataset", "resolve_device", "seed_everything",
]
