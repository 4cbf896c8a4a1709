"""One exception family for Overlay.

Every error a user can cause (bad path, bad file, bad value) is an
:class:`OverlayError` whose message says *what* is wrong, *where* (file,
field, value) and *what to do*. The CLI prints these without a traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class OverlayError(Exception):
    """Base class: a user-facing problem with a clear message."""


class InputError(OverlayError, ValueError):
    """A value given by the user (question, setting, id) is invalid."""


class StateFileError(OverlayError):
    """A persisted state file (``.safetensors``, database, store) is missing, malformed or of another format."""


class ModelError(OverlayError):
    """The GGUF model or the embedding model cannot be loaded or used."""


class CorpusError(OverlayError):
    """The corpus is missing, empty or cannot be parsed."""


class RetrievalError(OverlayError):
    """The passage store (ChromaDB) cannot be opened, queried or written."""


class VerificationError(OverlayError):
    """A review item or verdict is unknown or a verdict is not allowed."""


class BusyError(OverlayError):
    """Too many answers are in flight in this process (the bound is ``OVERLAY_MAX_IN_FLIGHT``); retry later.

    The HTTP analogue is 503 Service Unavailable. Attributes: ``in_flight`` (answers running when refused) and
    ``limit`` (the bound)."""

    def __init__(self, message: str, *, in_flight: int, limit: int):
        super().__init__(message)
        self.in_flight = in_flight
        self.limit = limit
