"""Running a plan: each change in dependency order, with a progress callback.

A run that stops (an error, Ctrl-C, a lost connection) leaves every change it finished in place;
planning again from the server's state shows what is left, and applying again finishes it.
Creates carry an ``Idempotency-Key`` (the SDK adds one per call and keeps it across retries), so
a retried request never makes a second object.
"""

from __future__ import annotations

from collections.abc import Callable

from stead.declarative.plan import Change, Context, Plan


def apply_plan(
    plan: Plan,
    context: Context,
    *,
    progress: Callable[[int, int, Change], None] = lambda done, total, change: None,
) -> int:
    """Make every pending change of ``plan``, in execution order; return how many were made.

    ``progress(index, total, change)`` is called before each change (``index`` from 1).

    Raises:
        ValueError: the plan has errors (nothing is changed).
        stead.sdk.SteadError: an API call failed; earlier changes stay made.
    """
    if plan.errors:
        raise ValueError("the plan has errors; fix the file first")
    pending = plan.pending
    for index, change in enumerate(pending, start=1):
        progress(index, len(pending), change)
        assert change.run is not None
        change.run(context)
    return len(pending)
