"""The Definitions object: a table of contents. Logic lives in resources/ and assets/."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
