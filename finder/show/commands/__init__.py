"""The commands of ``finder``, one module a group, each command a plain function;
``finder.show.cli`` lists them on the app."""
