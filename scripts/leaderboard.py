#!/usr/bin/env python
"""fastMRI leaderboard for reconstruction directories (same as ``fastmri-untrained evaluate``).

Example:
    python scripts/leaderboard.py --target-path data/val --challenge multicoil \\
        --predictions-path outputs/conv-decoder outputs/unet outputs/varnet --out outputs/leaderboard
"""

import sys

from fastmri_untrained.leaderboard import main

if __name__ == "__main__":
    sys.exit(main())
