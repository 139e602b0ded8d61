"""What a run is, independent of how it is trained or scored: its configuration (`config`), its
directory of files (`directory`), its resume state train_state.pt (`checkpoint`) and its lock
(`lock`). Both `dema.train` and `dema.evaluation` import this package; it imports neither."""

from dema.run.config import TrainConfig, preset_config
from dema.run.directory import CHECKPOINTS, EVAL_FIELDS, METRIC_FIELDS, LoadedRun, NormStats, RunDir

__all__ = ["TrainConfig", "preset_config", "RunDir", "LoadedRun", "NormStats", "CHECKPOINTS", "EVAL_FIELDS",
           "METRIC_FIELDS"]
