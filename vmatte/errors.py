"""The one exception type the command line turns into a clear message and a non-zero exit."""

import errno


class VmatteError(Exception):
    """A problem the user can act on (bad input, missing weights, unwritable output).

    The message is shown as is, without a traceback, so it must say what went wrong and what to do.
    """


# errno values that mean the output's storage is full: no space, a file-size limit (RLIMIT_FSIZE, FAT32), quota.
DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def disk_full_cause(error: BaseException | None) -> OSError | None:
    """The 'storage full' OSError behind ``error`` (itself, or what it was raised from or while handling)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return error
        error = error.__cause__ or error.__context__
    return None
