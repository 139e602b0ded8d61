"""User-facing errors: the CLI prints their message on one line and exits non-zero, no traceback."""


class DemaError(Exception):
    """A problem with the user's input (file, name, option). The message names it and the fix."""


class DataError(DemaError):
    """A dataset file that is missing, corrupt, or does not fit what it is used for."""


class ConfigError(DemaError):
    """A configuration value that is unknown or out of range."""
