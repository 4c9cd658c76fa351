"""``python -m kgrec.cli``: the same as the ``kgrec`` command."""

import sys

from kgrec.cli import main

sys.exit(main())
