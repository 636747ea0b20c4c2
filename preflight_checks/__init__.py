"""The built-in checks, one module each, registered through entry points."""
