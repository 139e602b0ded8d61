"""The paper's experiments as code: grids (YAML), `dema sweep` to run them, run records, `dema report`."""
