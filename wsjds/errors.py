"""The base of the errors a user acts on (bad input, a run that cannot go on): the CLI prints their
message and exits with code 2, without a traceback. Each kind subclasses it where it is raised."""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix; the message names the file, key or id and what was expected."""
