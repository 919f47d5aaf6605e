"""The error every reader raises on bad input: it names the file, the image id and what was expected."""

from __future__ import annotations

from pathlib import Path

from wsjds.errors import UserError


class DatasetError(UserError, ValueError):
    """Bad or missing dataset input. ``path`` and ``image_id`` say where; the message says what."""

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
