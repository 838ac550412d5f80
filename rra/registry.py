"""What the apps plug into the platform. rra imports no app: each app adds its parts here
in its AppConfig.ready(), and the platform runs whatever is registered.

- PRUNERS: housekeeping jobs by kind, ``prune(now=...) -> rows deleted``
  (rra/housekeeping.py runs them after the platform's own).
- GAUGES: scrape-time metric producers, ``() -> Iterable[Metric]`` (rra/metrics.py);
  one that raises is logged and left out of that scrape.
- WORKER_SWEEPS: recovery sweeps by name, ``() -> counts`` run every
  WORKER_SWEEP_INTERVAL_S by the worker (rra/management/commands/worker.py).
- WORKER_WARM_UPS: ``()`` run once before the worker takes its first task.
- WORKER_SERVICES: ``start(stop: threading.Event) -> service or None``: threads the
  worker starts beside its task loop (not with --batch); a service's ``abandon()`` is
  called on exit and returns what it had to give up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

PRUNERS: dict[str, Callable[..., int]] = {}
GAUGES: list[Callable[[], Iterable[Any]]] = []
WORKER_SWEEPS: dict[str, Callable[[], dict[str, int]]] = {}
WORKER_WARM_UPS: list[Callable[[], None]] = []
WORKER_SERVICES: list[Callable[[threading.Event], Any]] = []
