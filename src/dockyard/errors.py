"""Error types shared by every layer.

Each error carries the HTTP status the Engine API answers with (clients branch on it: a 404 makes
`docker run` pull and `docker inspect` try the next object kind) and the message docker prints.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class: an error with a docker-style message and an HTTP status."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DockyardError):
    """The request is malformed (bad reference, bad flag value, bad filter)."""

    status = 400


class NotFound(DockyardError):
    """No such image, container, layer or blob."""

    status = 404


class Conflict(DockyardError):
    """The request conflicts with the current state (image in use, name taken)."""

    status = 409


class Forbidden(DockyardError):
    """The operation is refused (e.g. deleting an image without force while tagged twice)."""

    status = 403


class NotModified(DockyardError):
    """Nothing to do (starting a running container, stopping a stopped one): HTTP 304."""

    status = 304


class InvalidArchive(InvalidParameter):
    """A tar, layer or image archive is corrupt or hostile; nothing of it was stored."""


class DigestMismatch(InvalidParameter):
    """Content did not hash to the digest it claimed."""


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, DockyardError) else 500
