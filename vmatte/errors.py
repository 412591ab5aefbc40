"""The one exception type the command line turns into a clear message and a non-zero exit."""


class VmatteError(Exception):
    """A problem the user can act on (bad input, missing weights, unwritable output).

    The message is shown as is, without a traceback, so it must say what went wrong and what to do.
    """
