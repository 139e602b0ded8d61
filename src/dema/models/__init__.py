"""Models: one SequencePolicy trunk, configured by ModelConfig (block kind, token layout, sizes)."""

from dema.models.config import Activation, BlockKind, ModelConfig, TokenLayout
from dema.models.policy import SequencePolicy
from dema.models.registry import MODELS, PRESET_DATASETS, REGISTRY, ModelSpec, learning_rate, model_config


def build_policy(cfg: ModelConfig, state_dim: int, act_dim: int, discrete: bool = False) -> SequencePolicy:
    """The policy for a config; act_dim is the number of actions when discrete."""
    return SequencePolicy(cfg, state_dim, act_dim, discrete)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["Activation", "BlockKind", "ModelConfig", "TokenLayout", "SequencePolicy", "MODELS", "REGISTRY",
           "ModelSpec", "PRESET_DATASETS", "model_config", "learning_rate", "build_policy", "count_parameters"]
