"""The exceptions the program reports to the user.

AggregatorError
├── ConfigError (config.py)   the config cannot be used: exit 2
├── StartupError              a part cannot start (port in use, state dir not writable): exit 1
└── InputMissing              a path to read does not exist (--no-follow): exit 1 after the rest
"""


class AggregatorError(Exception):
    """Base of the errors that end the program with a message rather than a traceback."""


class StartupError(AggregatorError):
    """A part of the pipeline cannot start; the message names the part and the reason."""


class InputMissing(AggregatorError):
    """Paths named to be read (not globs) that do not exist, with ``--no-follow``: the other
    inputs are read through, then the program ends with exit 1."""
