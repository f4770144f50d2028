"""Store: the SQLite catalog, the raw vectors on disk and the search index over them."""
