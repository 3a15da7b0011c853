"""`python -m nbops.runtime --package DIR predict|serve`: the runtime's command line on any package folder."""

import sys

from .cli import main

sys.exit(main())
