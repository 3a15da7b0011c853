"""Tests of the example projects' own code (examples/<name>/), importable from here."""

from __future__ import annotations

import sys
from pathlib import Path

FRAUD_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"

if str(FRAUD_EXAMPLE) not in sys.path:
    sys.path.insert(0, str(FRAUD_EXAMPLE))
