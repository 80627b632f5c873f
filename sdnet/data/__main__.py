"""``python -m sdnet.data --bench``: throughput of the device loader (see ``sdnet.data.loader``).

An entry point on the package rather than ``python -m sdnet.data.loader``, because the package
imports its loader module first, and running an already imported module as ``__main__`` makes a
second copy of it (Python warns about that).
"""

from sdnet.data.loader import main

if __name__ == "__main__":
    main()
