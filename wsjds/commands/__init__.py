"""Sub-commands of the ``wsjds`` CLI: one module per stage, each with ``register(subparsers)``."""
