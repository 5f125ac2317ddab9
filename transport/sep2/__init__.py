"""IEEE 2030.5 wire model and XML codec (issue #3).

``resources`` holds the schema-shaped structs; ``codec`` turns bytes into them and back, hardened;
``mapping`` translates between them and the domain values of ``events``. See ARCHITECTURE.md,
"Wire model and XML codec".
"""

from transport.sep2.codec import (
    CSIPAUS_NAMESPACES,
    CSIPAUS_NS,
    CSIPAUS_NS_V13,
    CSIPAUS_NS_V13_STORAGE,
    SEP_NS,
    Limits,
    decode,
    decode_any,
    encode,
)
from transport.sep2.errors import (
    DocumentRejected,
    MalformedXml,
    SchemaViolation,
    Sep2CodecError,
    Sep2DecodeError,
    Sep2EncodeError,
    UnexpectedDocument,
)
from transport.sep2.hexbinary import (
    HexBinary8,
    HexBinary16,
    HexBinary32,
    HexBinary48,
    HexBinary64,
    HexBinary128,
    HexBinary160,
    HexBinaryValue,
)

__all__ = [
    "CSIPAUS_NAMESPACES",
    "CSIPAUS_NS",
    "CSIPAUS_NS_V13",
    "CSIPAUS_NS_V13_STORAGE",
    "SEP_NS",
    "DocumentRejected",
    "HexBinary8",
    "HexBinary16",
    "HexBinary32",
    "HexBinary48",
    "HexBinary64",
    "HexBinary128",
    "HexBinary160",
    "HexBinaryValue",
    "Limits",
    "MalformedXml",
    "SchemaViolation",
    "Sep2CodecError",
    "Sep2DecodeError",
    "Sep2EncodeError",
    "UnexpectedDocument",
    "decode",
    "decode_any",
    "encode",
]
