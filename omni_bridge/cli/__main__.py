"""`python -m omni_bridge.cli`: the `omni-bridge` command, for tests, benchmarks and a checkout without the script."""

import sys

from omni_bridge.cli import main

sys.exit(main())
