"""Use cases, one module or folder per stage: they return values, raise MokaError, log, and never print."""
