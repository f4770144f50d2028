"""finder's own exceptions. Each message is one line a person can act on; the CLI prints
it on stderr and exits non-zero, never with a traceback."""


class FinderError(Exception):
    """Base class: ``str(error)`` is a one-line message for the user."""

    exit_code = 1


class UsageError(FinderError):
    """Bad input: a missing root, a bad flag value, an example that is not an image."""

    exit_code = 2


class DecodeError(FinderError):
    """A file could not be decoded as an image; ``str`` is a short reason."""


class BackboneError(FinderError):
    """A backbone could not be built or run (unknown name, bad model file, bad layer)."""


class WeightsUnavailable(BackboneError):
    """Pretrained weights could not be had (no network, bad file)."""


class LibraryError(FinderError):
    """The library is unusable as asked: empty, locked, made with another backbone."""


class BackboneMismatch(LibraryError):
    """The library's vectors were made by another backbone than the one asked for."""


class LibraryLocked(LibraryError):
    """Another finder process is writing to this library."""


class LibraryDamaged(LibraryError):
    """The library's files hold damage that a crash cannot explain (a bad disk, a hand edit):
    the message says what, and names ``finder repair``."""

    exit_code = 3


class UnknownClass(FinderError):
    """No class of that name has been learned."""


class UnknownImage(FinderError):
    """No indexed image has that id (the web page asks for images by id only)."""


class ExportError(FinderError):
    """A file could not be exported or a sidecar written (disk full, permissions, bad XMP)."""


class ClusterError(FinderError):
    """A cluster run could not start or go on (Ray missing, no cluster, a node that cannot
    read the photos)."""
