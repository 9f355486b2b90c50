"""``python -m ops.training``: one training process reporting to the console (Dagster runs ``resources.training_worker``)."""

import sys

from ops.training.entry import main

sys.exit(main())
