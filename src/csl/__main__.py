"""``python -m csl ...`` (what ``torchrun -m csl`` runs in a PyTorchJob pod) = the ``csl`` CLI."""

import sys

from csl.cli import main

sys.exit(main())
