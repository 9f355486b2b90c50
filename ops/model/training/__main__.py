"""``python -m ops.model.training``: one training process reporting to the console.

Dagster runs ``resources.training_worker`` instead.
"""

import sys

from ops.model.training.entry import main

sys.exit(main())
