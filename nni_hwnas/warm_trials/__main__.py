"""``python -m nni_hwnas.warm_trials``: the warm trial command (:mod:`nni_hwnas.warm_trials.client`)."""

import sys

from nni_hwnas.warm_trials.client import main

sys.exit(main())
