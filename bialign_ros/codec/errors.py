"""The exception raised for every malformed image or unsupported conversion."""


class CodecError(ValueError):
    """An image message or array cannot be read, converted or written as asked."""
