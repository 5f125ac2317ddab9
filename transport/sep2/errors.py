"""Typed errors of the 2030.5 XML codec.

Remote errors (the peer sent something we refuse) all derive from :class:`Sep2DecodeError` and name
the element path that failed, so a log line says *where* a server's document was wrong. Local errors
(we asked to serialise something that cannot be written) derive from :class:`Sep2EncodeError`.
"""

from __future__ import annotations

__all__ = [
    "DocumentRejected",
    "MalformedXml",
    "SchemaViolation",
    "Sep2CodecError",
    "Sep2DecodeError",
    "Sep2EncodeError",
    "UnexpectedDocument",
]


class Sep2CodecError(Exception):
    """Base of every codec error."""


class Sep2DecodeError(Sep2CodecError, ValueError):
    """A received document was refused; ``path`` is the element path (``/DERControlList/...``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class DocumentRejected(Sep2DecodeError):
    """Hardening refused the document before or while parsing: size, depth, DTD, entities."""


class MalformedXml(Sep2DecodeError):
    """The bytes are not well-formed XML (or use a construct the hardened parser forbids)."""


class UnexpectedDocument(Sep2DecodeError):
    """Well-formed XML, but its document element is not the resource that was asked for."""


class SchemaViolation(Sep2DecodeError):
    """An element or attribute is missing, of the wrong type or out of its schema range."""


class Sep2EncodeError(Sep2CodecError, ValueError):
    """A struct cannot be serialised (a value outside its schema type)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
