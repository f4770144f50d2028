"""The commands of ``finder``, one module a group. Importing this package registers them on
the app, in the order ``finder --help`` lists them."""

from importlib import import_module

ORDER = ("index", "classes", "dupes", "serve", "evaluate")

for _module in ORDER:
    import_module(f"{__name__}.{_module}")
