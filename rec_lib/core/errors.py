"""Errors a user can act on. Jobs print their message on one line and exit non-zero."""


class RecError(Exception):
    """Base class: a problem with the user's input, configuration or environment."""

    exit_code = 2


class ConfigError(RecError):
    """A config file or setting is missing, unknown or out of range."""


class InputError(RecError):
    """An input export cannot be read or lacks a required column. Nothing has been written."""


class EnvironmentSetupError(RecError):
    """The local environment lacks something set-up provides (e.g. the Delta jars)."""

    exit_code = 3
