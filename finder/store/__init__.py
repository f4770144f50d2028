"""Store: the SQLite catalog, the raw vectors on disk and the search index over them.

- ``catalog.py``: images, classes, examples and meta in SQLite.
- ``vectors.py``: :class:`~finder.store.vectors.VectorStore`, the façade over the rest: add,
  remove, get, reconcile, ``search_similar``/``search_linear`` with exact scores, the saved index.
- ``raw.py``: the append-only raw log (vectors, ids, tombstones, checksums, generations,
  compaction, crash and damage repair); ``files.py``: the durable-file helpers it uses.
- ``tiers/``: the search index tiers behind one ``Tier`` protocol (``flat.py``, ``ivf.py``,
  ``pca.py``) and ``plan()``, which picks one for a library size and memory budget.
- ``exact.py``: the one definition of an exact score, and the threads scans run on.
"""
