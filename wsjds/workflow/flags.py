"""Config options -> the CLI flags a rule passes to ``wsjds``."""

from __future__ import annotations

import shlex
from collections.abc import Mapping


def cli_flags(options: Mapping) -> str:
    """``{"num_test": 80, "object_size": [0.2, 0.5]}`` -> ``--num-test 80 --object-size 0.2 0.5``."""
    parts = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in value)]))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)
