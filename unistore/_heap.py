"""Keep the collector's full passes from stalling the event loop.

Importing aioboto3 and azure-storage-blob and building their clients leaves a few hundred
thousand long-lived objects (service models, generated operation tables, modules). Every full
(generation 2) collection walks all of them on the loop thread: measured here during a 1 GiB
fan-out, one such pass took 25-90 ms of CPU, the longest stall of the whole upload. The objects
never die, so walking them finds nothing.

Once a provider has built its client, `settle()` moves every object alive at that moment into
the permanent generation (`gc.freeze()`), out of the collector's reach; later objects are
collected as usual. Cyclic garbage alive at that instant is kept too: a one-off cost of set-up
objects. `STORAGE_GC_FREEZE=false` turns it off (for applications that manage the collector
themselves, or that create and drop many clients).
"""

from __future__ import annotations

import gc

_enabled = True


def set_freeze(enabled: bool) -> None:
    """Process-wide switch, set from `STORAGE_GC_FREEZE` by `Storage.from_settings`."""
    global _enabled
    _enabled = enabled


def settle() -> None:
    """Called by a provider right after it built an SDK client; O(1) in CPython."""
    if _enabled:
        gc.freeze()
