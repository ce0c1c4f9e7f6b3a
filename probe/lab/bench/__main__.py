"""``python -m probe.lab.bench`` (``make bench``): run the benchmark and print its figures."""

import sys

from probe.lab.bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
