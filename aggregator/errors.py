"""The exceptions the program reports to the user.

AggregatorError
├── ConfigError (config.py)   the config cannot be used: exit 2
└── StartupError              a part cannot start (port in use, state dir not writable): exit 1
"""


class AggregatorError(Exception):
    """Base of the errors that end the program with a message rather than a traceback."""


class StartupError(AggregatorError):
    """A part of the pipeline cannot start; the message names the part and the reason."""
