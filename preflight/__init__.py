"""preflight: host preflight and drift checker."""

__version__ = "0.1.0"
