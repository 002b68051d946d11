"""Collection rules for the whole tree (pytest --doctest-modules imports every module under src/)."""
from __future__ import annotations

import importlib.util

# A framework adapter imports its framework when imported: without the extra there is nothing to collect.
collect_ignore = [path for path, package in [("src/sagemix/integrations/lightning.py", "lightning")]
                  if importlib.util.find_spec(package) is None]
