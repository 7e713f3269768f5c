"""``python -m raysearch`` runs the command line."""

import sys

from raysearch.cli import main

sys.exit(main())
