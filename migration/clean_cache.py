"""Find and remove the pre-refactor group cache files: ``ptycho-group clean-cache``.

Kept in the repository for users who run it from a checkout::

    python migration/clean_cache.py --dry-run PATH...

The code is :mod:`ptycho_cli.cache_cleaner` (the wheel installs no package
named ``migration``).
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run from a checkout that may not be installed: the packages live beside this folder.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ptycho_cli.cache_cleaner import main

    sys.exit(main())
