"""Errors the CLI turns into exit 64 with one line on stderr."""


class UsageError(Exception):
    """Bad flag, unknown check id, bad output path: exit 64."""


class ConfigError(UsageError):
    """Unreadable or invalid configuration file: exit 64, naming the file and the key."""
