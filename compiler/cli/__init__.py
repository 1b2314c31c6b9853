"""The `specops` command line (top layer): commands parse options, call the stages below, and
render through `views`. `main` is the console-script entry point; each command's module is
imported only when that command runs (see app.COMMANDS)."""

from specops.cli.app import main

__all__ = ["main"]
