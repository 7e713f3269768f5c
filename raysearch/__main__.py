"""``python -m raysearch`` runs the command line."""

import sys

from raysearch.cli import main

if __name__ == "__main__":  # spawned worker processes (raysearch compare) import this module too
    sys.exit(main())
