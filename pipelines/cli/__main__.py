"""``python -m pipelines.cli``: the ``gpt4scene`` command line."""

import sys

from pipelines.cli import main

sys.exit(main())
