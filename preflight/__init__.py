"""preflight: host preflight and drift checker."""

import sys

# A run writes nothing but the report it was asked for: not even bytecode caches, should the
# installation lack them (pip and dpkg precompile, so normally nothing would be written anyway).
sys.dont_write_bytecode = True

__version__ = "0.1.0"
