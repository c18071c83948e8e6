"""`python -m taylorlens` runs the command line."""

import sys

from taylorlens.cli import main

sys.exit(main())
