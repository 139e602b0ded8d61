"""Models: one SequencePolicy trunk, configured by ModelConfig (block kind, token layout, sizes).

The configs and the model registry import no torch, so a command can list or check model names
without it (`dema bench --help`); the trunk (`SequencePolicy`, `build_policy`) imports it on first use.
"""

from __future__ import annotations

from dema.models.config import Activation, BlockKind, ModelConfig, TokenLayout
from dema.models.registry import MODELS, PRESET_DATASETS, REGISTRY, ModelSpec, learning_rate, model_config


def build_policy(cfg: ModelConfig, state_dim: int, act_dim: int, discrete: bool = False) -> SequencePolicy:
    """The policy for a config; act_dim is the number of actions when discrete."""
    from dema.models.policy import SequencePolicy

    return SequencePolicy(cfg, state_dim, act_dim, discrete)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def __getattr__(name: str):
    if name == "SequencePolicy":  # `from dema.models import SequencePolicy`: torch only when asked for
        from dema.models.policy import SequencePolicy

        return SequencePolicy
    raise AttributeError(f"module 'dema.models' has no attribute {name!r}")


__all__ = ["Activation", "BlockKind", "ModelConfig", "TokenLayout", "SequencePolicy", "MODELS", "REGISTRY",
           "ModelSpec", "PRESET_DATASETS", "model_config", "learning_rate", "build_policy", "count_parameters"]
