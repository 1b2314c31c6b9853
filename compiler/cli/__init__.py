"""The `specops` command line (top layer): commands parse options, call the stages below, and
render through the views. `main` is the console-script entry point."""

from specops.cli import diff, lock, ops
from specops.cli.app import main

ops.register(main)
diff.register(main)
lock.register(main)

__all__ = ["main"]
