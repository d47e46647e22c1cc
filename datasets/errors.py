"""The error every dataset reader and check raises (kept light: the CLI imports it before any data)."""


class DatasetError(ValueError):
    """A dataset folder or file does not have the expected layout or content."""
