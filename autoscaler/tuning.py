"""Interpreter settings for a service that keeps many objects and runs a busy loop thread.

The service calls :func:`after_load` after it applies a (re)loaded set of specs. Both settings
were measured with ``bench/scale.py`` (figures in ``bench/RESULTS.md``, "Scale").

**Garbage collection.** CPython frees objects by reference counting; its cyclic collector only
exists to find reference cycles, and it does so by scanning tracked container objects: the
youngest generation after every 700 net allocations, all of them now and then. The service holds
its specs and the runtime state of every object for as long as it runs, and each pass of the
loop replaces every autoscaler's decision. With 10,000 autoscalers that is close to a million
tracked objects; a full collection took more than a second and one started at nearly every pass,
doubling its cost. Nothing in a healthy pass forms a cycle, so those scans found nothing.

* :func:`after_load` moves every object alive at that moment (the specs just loaded, the runtime
  state) out of the collector's generations with :func:`gc.freeze`, so no collection scans them
  again. They are still freed by reference counting when a later reload drops them; only a
  reference cycle among them would outlive its use, and specs and runtime objects hold none.
* :func:`after_first_pass` does the same once more after the first pass that follows a load:
  that pass builds the runtime state of every new object (its plan, decision, history and
  conditions), which then lives as long as the specs. Left in the generations, those objects
  were scanned by every full collection: 300–700 ms with the event loop waiting, measured at
  10,000 autoscalers in the first minute after start-up.
* It raises the thresholds (:data:`THRESHOLDS`): a young collection after ``[0]`` net
  allocations, and a full one only after ``[2]`` collections of the middle generation (CPython
  also waits until the objects added since the last full collection are a quarter of those it
  kept). A pass over 10,000 autoscalers holds some 100,000 new objects at its peak (the next
  decisions before they replace the last ones, calls queued for the workers); with the young
  threshold above that peak, most of them are freed by reference counting before any scan
  (measured: one 130 ms young collection per pass at 100,000, none in 20 passes at 500,000).
  Cycles (from exceptions, say) are still found, a little later.

**Thread switches.** The loop thread computes for most of a second per full pass while the HTTP
server's threads answer requests. Every time a request's thread releases the GIL (hashing or
compressing a body, reading or writing a socket, handing work between the event loop and a
worker thread) it waits for a busy thread to give the GIL back, by default up to 5 ms, several
times per request. :data:`SWITCH_INTERVAL_SECONDS` makes a busy thread give it up sooner.

**Freed memory.** Loading a large spec file allocates far more (YAML nodes, line numbers) than
the specs it keeps. :func:`after_load` asks the C allocator to return what was freed to the
operating system (``malloc_trim``, where the C library is glibc; 9 of the 56 MiB a load of
3,000 autoscalers and node groups added).
"""

from __future__ import annotations

import ctypes
import gc
import sys

#: ``gc.set_threshold`` values while the service runs (CPython's defaults: 700, 10, 10).
THRESHOLDS = (500_000, 10, 100)
#: ``sys.setswitchinterval`` while the service runs (CPython's default: 0.005).
SWITCH_INTERVAL_SECONDS = 0.001


def after_load() -> None:
    """Freeze what is alive now; use :data:`THRESHOLDS` and :data:`SWITCH_INTERVAL_SECONDS`."""
    if gc.get_threshold() != THRESHOLDS:
        gc.set_threshold(*THRESHOLDS)
    if sys.getswitchinterval() != SWITCH_INTERVAL_SECONDS:
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    gc.freeze()
    _trim_malloc()


def after_first_pass() -> None:
    """Freeze what is alive now: the runtime state the first pass after a load has built."""
    gc.freeze()


def _trim_malloc() -> None:
    """Return freed C heap memory to the OS (glibc only; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 or malloc_trim)
        return
    trim(0)
