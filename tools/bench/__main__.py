import sys

from tools.bench.cli import main

if __name__ == "__main__":  # the pre-fill's worker processes import this module too
    sys.exit(main())
