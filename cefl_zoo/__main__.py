"""``python -m cefl_zoo`` runs the ``cefl-zoo`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
