"""`python -m core` entry point."""

import sys

from core.cli.main import main

sys.exit(main())
