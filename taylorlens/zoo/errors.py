"""Errors of the zoo that several of its modules raise."""


class MissingDataError(FileNotFoundError):
    """A data set (or weight file) is not on this machine; the message says what installs it."""
