"""``python -m offline_zoo.bench ...`` is ``zoo-bench ...``."""

import sys

from offline_zoo.cli import bench_main

if __name__ == "__main__":
    sys.exit(bench_main())
