"""The report tests build many small reports; rliable's stratified bootstrap of the aggregates is most
of their time (about 15 s a report on 2 busy cores at 10,000 resamples). No test here checks the
aggregates' intervals to the decimal, so they resample 1,000 times; the claims' own bootstrap
(dema.experiments.report.rule) keeps its 10,000, which the tests do check."""

import importlib

import pytest


@pytest.fixture(autouse=True)
def fewer_aggregate_resamples(monkeypatch):
    # the module, not the package attribute of the same name (the `aggregates` function)
    module = importlib.import_module("dema.experiments.report.aggregates")
    monkeypatch.setattr(module, "BOOTSTRAP_RESAMPLES", 1_000)
