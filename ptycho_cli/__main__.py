import sys

from . import main

# Guarded: Dask's worker processes are spawned and import the main module again.
if __name__ == "__main__":
    sys.exit(main())
