"""finder: a local photo finder.

Index a disk once (a CNN embedding per image, kept in a FAISS index beside a SQLite
catalog), then find photos by few-shot classes or by example. The Python API is
:class:`finder.library.Library`; ``finder.show.cli`` is a thin command-line layer over it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
