"""``python -m trainer.retrain JOB.json``: the retraining child process (:mod:`trainer.retrain.child`)."""

import sys

from trainer.retrain.child import main

sys.exit(main())
