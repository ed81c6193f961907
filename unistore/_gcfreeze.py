"""Keep the collector's full passes from stalling the event loop.

Importing aioboto3 and azure-storage-blob and building their clients leaves a few hundred
thousand long-lived objects (service models, generated operation tables, modules). Every full
(generation 2) collection walks all of them on the loop thread: measured here during a 1 GiB
fan-out, one such pass took 25-90 ms of CPU, the longest stall of the whole upload. The objects
never die, so walking them finds nothing.

Once the first provider has built its client, `settle()` moves every object alive at that moment
into the permanent generation (`gc.freeze()`), out of the collector's reach; later objects are
collected as usual. It does so once per process: frozen objects are never collected, so a
process that makes and drops a `Storage` per task (a Celery worker) must not freeze each new
client; only the first one (and any cyclic garbage alive at that instant) stays for good.
`STORAGE_GC_FREEZE=false` turns it off (for applications that manage the collector themselves).
"""

from __future__ import annotations

import gc

_enabled = True
_done = False


def set_freeze(enabled: bool) -> None:
    """Process-wide switch, set from `STORAGE_GC_FREEZE` by `Storage.from_settings`."""
    global _enabled
    _enabled = enabled


def settle() -> None:
    """Called by a provider right after it built an SDK client; freezes on the first call only
    (O(1) in CPython)."""
    global _done
    if _enabled and not _done:
        _done = True
        gc.freeze()
