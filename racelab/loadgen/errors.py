class LoadError(Exception):
    """A load run could not start or finish; the message says what to do about it."""


class ToolMissing(LoadError):
    pass
