"""The errors a user acts on, by kind, in one place: the CLI prints their message and exits with
code 2, without a traceback. Every message names the file (and image id) or the config key, and
what was expected.

- :class:`DatasetError`: the user's input (annotations, images, tags, imported proposals) is bad
  or missing.
- :class:`ArtifactError`: a file the pipeline wrote (an HDF5 store, a results or metrics file) is
  malformed, or does not fit the stage that reads it.
- :class:`ConfigError`: the config breaks the schema or a cross-reference.

Stages add their own kinds where they raise them (``TrainingError``, ``DistributedError``).
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something the user must fix; the message names the file, key or id and what was expected."""


class LocatedError(UserError, ValueError):
    """A problem in one file (and image): ``path`` and ``image_id`` say where, the message what."""

    def __init__(self, message: str, *, path: str | Path | None = None, image_id: str | None = None):
        self.path = None if path is None else Path(path)
        self.image_id = image_id
        where = []
        if image_id is not None:
            where.append(f"image id {image_id!r}")
        if path is not None:
            where.append(f"file {str(path)!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class DatasetError(LocatedError):
    """Bad or missing dataset input."""


class ArtifactError(LocatedError):
    """A pipeline artifact that cannot be read as the stage expects (rebuild it with its rule)."""


class ConfigError(UserError, ValueError):
    """The config (config.yaml plus any --configfile) breaks the schema; the message names each key."""


class MissingDatasetError(UserError, FileNotFoundError):
    """A configured dataset is not on disk; the message says where it should be and what to do."""
