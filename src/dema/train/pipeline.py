"""From a config to a scored run: train (or resume) it, score its final weights, write eval.json.

    result, report = train_and_evaluate(config)                  # `dema train`
    result, report = train_and_evaluate(config, resume, score=True)  # `dema sweep`: eval.json marks a finished cell
    result, report = train_and_evaluate(config, score=True, checkpoints=("final",), log=log)  # `dema demo`

The one road every command takes (`dema train`, `dema sweep`, `dema demo`), so that a score means the
same whichever command produced it: the evaluation is `dema eval`'s (`evaluate_run`), under the run's
lock, and eval.json is written only for a run trained to its last update.
"""

from __future__ import annotations

from dema.evaluation.evaluate import evaluate_run
from dema.run import RunDir, TrainConfig
from dema.train.loop import TrainResult, train


def train_and_evaluate(config: TrainConfig, resume: bool = False, *, score: bool | None = None,
                       checkpoints: tuple[str, ...] = ("final", "best"), log=print) -> tuple[TrainResult, dict | None]:
    """Train (or resume) the run of `config`; once it has trained all its updates, score
    `checkpoints` and write eval.json. Returns the training result and eval.json's content (None
    when nothing was scored: training stopped early, or `score` is False).

    `score` defaults to `config.eval.at_end`. A resumed run's config.json records the config it was
    resumed with (the schedule and evaluation may change on resume)."""
    result = train(config, resume=resume, log=log)
    run = RunDir(result.run_dir)
    report = None
    with run.lock():  # the final evaluation, like `dema eval`, holds the run
        if resume:
            run.write_config(config)
        finished = result.step == config.schedule.updates
        if finished and (config.eval.at_end if score is None else score):
            log(f"evaluating {config.eval.episodes} episodes per target and seed...")
            report = evaluate_run(result.run_dir, checkpoints=checkpoints)
            run.write_eval(report)
    return result, report
