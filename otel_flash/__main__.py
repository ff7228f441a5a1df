"""``python -m otel_flash`` runs the ``otel-flash`` command line."""

import sys

from otel_flash.cli import main

sys.exit(main())
