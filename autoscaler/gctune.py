"""Garbage-collector settings for a service that keeps many objects for a long time.

CPython frees objects by reference counting; its cyclic collector only exists to find reference
cycles, and it does so by scanning tracked container objects: the youngest generation after every
700 net allocations, all of them now and then. The service holds its specs and the runtime state
of every object for as long as it runs, and each pass of the loop replaces every autoscaler's
decision. With 10,000 autoscalers that is close to a million tracked objects, a full collection
took more than a second, and one started at nearly every pass, doubling its cost
(``bench/scale.py``; figures in ``bench/RESULTS.md``, "Scale"). Nothing in a healthy pass forms a
cycle, so those scans found nothing.

:func:`after_load` is called by the service after it applies a (re)loaded set of specs:

* it moves every object alive at that moment (the specs just loaded, the runtime state) out of
  the collector's generations with :func:`gc.freeze`, so no collection scans them again. They
  are still freed by reference counting when a later reload drops them; only a reference cycle
  among them would outlive its use, and specs and runtime objects hold none.
* it raises the thresholds (once): a young collection after :data:`THRESHOLDS` ``[0]`` net
  allocations, and a full one only after ``[2]`` collections of the middle generation (CPython
  also waits until the objects added since the last full collection are a quarter of those it
  kept). Cycles (from exceptions, say) are still found, a little later.
"""

from __future__ import annotations

import gc

#: ``gc.set_threshold`` values while the service runs (CPython's defaults: 700, 10, 10).
THRESHOLDS = (100_000, 10, 100)


def after_load() -> None:
    """Freeze what is alive now and use :data:`THRESHOLDS` (see the module docstring)."""
    if gc.get_threshold() != THRESHOLDS:
        gc.set_threshold(*THRESHOLDS)
    gc.freeze()
