"""``python -m ops.training``: the training entry point that torchrun, the deepspeed launcher and Ray run."""

import sys

from ops.training.entry import main

sys.exit(main())
