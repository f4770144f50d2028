"""finder's own exceptions. Each carries its meaning: one line a person can act on, the argument
it is about, an exit code for the CLI and an HTTP status for the web API; the CLI prints it on
stderr and exits non-zero, never with a traceback.

A message names the arguments it is about as :class:`Arg` parts, never as one audience spells
them: each edge words them for its own (:meth:`FinderError.worded`): the CLI names its flags
(``--min-prob``), the API its fields (``min_prob``), ``str()`` the Python keyword::

    raise UsageError(Arg("min_prob"), " must be between 0 and 1")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    """An argument named in a message, by its Python keyword (``min_prob``). ``command``: an
    option of that ``finder`` command, which the message tells the person to run (every edge
    words it as that command's flag)."""

    name: str
    command: str | None = None

    def __str__(self) -> str:
        return self.name


Part = str | Arg
"""A piece of a message: text, or an argument each edge names for its audience."""


def worded(parts: Iterable[Part], name: Callable[[Arg], str] = str) -> str:
    """``parts`` as one string, each :class:`Arg` named by ``name``."""
    return "".join(name(p) if isinstance(p, Arg) else str(p) for p in parts)


def flag(arg: Arg) -> str:
    """The command-line flag of an argument by the usual rule: ``min_prob`` → ``--min-prob``
    (the CLI words its own exceptions to the rule)."""
    return "--" + arg.name.replace("_", "-")


class FinderError(Exception):
    """Base class: ``str(error)`` is a one-line message for the user; ``worded`` names its
    arguments for an audience. ``exit_code``: the CLI's; ``http_status``: the web API's."""

    exit_code = 1
    http_status = 400

    def __init__(self, *parts: Part) -> None:
        super().__init__(*parts)
        self.parts = parts

    @property
    def field(self) -> str | None:
        """The argument the error is about (the first the message names), if any."""
        return next((p.name for p in self.parts if isinstance(p, Arg) and not p.command), None)

    def worded(self, name: Callable[[Arg], str] = str) -> str:
        """The message, each argument named by ``name`` (an option of a command to run is
        always its flag)."""
        return worded(self.parts, lambda a: flag(a) if a.command else name(a))

    def __str__(self) -> str:
        return self.worded()


class UsageError(FinderError):
    """Bad input: a missing root, a bad flag value, an example that is not an image."""

    exit_code = 2


class DecodeError(FinderError):
    """A file could not be decoded as an image; ``str`` is a short reason."""

    http_status = 422


class BackboneError(FinderError):
    """A backbone could not be built or run (unknown name, bad model file, bad layer)."""


class WeightsUnavailable(BackboneError):
    """Pretrained weights could not be had (no network, bad file)."""


class LibraryError(FinderError):
    """The library is unusable as asked: empty, locked, made with another backbone."""

    http_status = 409


class BackboneMismatch(LibraryError):
    """The library's vectors were made by another backbone than the one asked for."""


class LibraryLocked(LibraryError):
    """Another finder process is writing to this library. ``owner``: its record when it keeps
    one (:mod:`finder.store.owner`: ``pid``, ``command``, ``argv``, ``following``)."""

    def __init__(self, *parts: Part, owner: dict | None = None) -> None:
        super().__init__(*parts)
        self.owner = owner


class LibraryDamaged(LibraryError):
    """The library's files hold damage that a crash cannot explain (a bad disk, a hand edit):
    the message says what, and names ``finder repair``."""

    exit_code = 3


class UnknownClass(FinderError):
    """No class of that name has been learned."""

    http_status = 404


class ClassExists(UsageError):
    """A class already holds the name asked for (a rename onto it, a restore under it)."""

    http_status = 409


class UnknownImage(FinderError):
    """No indexed image has that id (the web page asks for images by id only)."""

    http_status = 404


class ExportError(FinderError):
    """A file could not be exported or a sidecar written (disk full, permissions, bad XMP)."""


class ClusterError(FinderError):
    """A cluster run could not start or go on (Ray missing, no cluster, a node that cannot
    read the photos)."""
