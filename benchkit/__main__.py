"""`python -m benchkit ...` runs the `benchkit` command line."""
import sys

from benchkit.cli import main

sys.exit(main())
