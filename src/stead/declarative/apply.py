"""Running a plan: each project's changes in dependency order, several projects at once.

Agents are made first (every project may use them), then the projects (a new one with its
connections, secret references, hosted secrets and environments, in one request:
:attr:`stead.declarative.plan.Change.includes`), then the agents' allow-lists; then each
project's remaining contents run as one chain, in phase order
(:attr:`stead.declarative.plan.Change.phase`), with up to ``parallelism`` chains at a time:
the projects of a file do not depend on each other (:func:`stages`).

A run that stops (an error, Ctrl-C, a lost connection) stops starting changes, lets the ones
already sent finish, and leaves every change it finished in place; planning again from the
server's state shows what is left, and applying again finishes it. Creates carry an
``Idempotency-Key`` (the SDK adds one per call and keeps it across retries), so a retried
request never makes a second object. A 429 pauses every worker until its ``Retry-After``
has passed (the SDK client's shared pause).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

from stead.declarative.plan import Change, Context, Plan
from stead.wire import name_key

#: How many projects ``stead apply`` changes at once unless told otherwise.
DEFAULT_PARALLELISM = 10


def stages(changes: list[Change]) -> list[list[list[Change]]]:
    """Split pending changes (in execution order) into stages run one after the other, each a
    list of chains that may run at once (a chain's changes run in order): the agents; the
    projects themselves; the agents' allow-lists (they name projects, and a restricted agent
    must allow a project before its environments are made); then one chain per project with
    everything it holds, in phase order."""
    agents: list[list[Change]] = []
    projects: list[list[Change]] = []
    allow_lists: list[list[Change]] = []
    contents: dict[str, list[Change]] = {}
    for change in changes:
        if change.run is None:
            continue  # made by another change's run (its ``includes``)
        if change.kind == "agent":
            agents.append([change])
        elif change.kind == "project":
            projects.append([change])
        elif change.kind == "allow list":
            allow_lists.append([change])
        else:
            assert change.project is not None
            contents.setdefault(name_key(change.project), []).append(change)
    return [agents, projects, allow_lists, list(contents.values())]


def apply_plan(
    plan: Plan,
    context: Context,
    *,
    progress: Callable[[int, int, Change], None] = lambda done, total, change: None,
    parallelism: int = 1,
) -> int:
    """Make every pending change of ``plan``; return how many were made.

    With ``parallelism`` above 1, that many projects are changed at once (a project's own
    changes always run one after the other, in dependency order). ``progress(done, total,
    change)`` is called, from the thread that made it, after each change (``done`` from 1).

    Raises:
        ValueError: the plan has errors, or ``parallelism`` is below 1 (nothing is changed).
        stead.sdk.SteadError: an API call failed; changes finished before (and those already
            under way in other projects) stay made, nothing more is started.
        KeyboardInterrupt: interrupted; the changes under way finish first.
    """
    if plan.errors:
        raise ValueError("the plan has errors; fix the file first")
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    pending = plan.pending
    total = len(pending)
    lock = threading.Lock()
    stop = threading.Event()
    done = 0

    def chain(changes: list[Change]) -> None:
        nonlocal done
        for change in changes:
            if stop.is_set():
                return
            assert change.run is not None
            try:
                change.run(context)
            except BaseException:
                stop.set()
                raise
            for made in (change, *change.includes):
                with lock:
                    done += 1
                    count = done
                progress(count, total, made)

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="stead-apply") as pool:
        for stage in stages(pending):
            _wait([pool.submit(chain, c) for c in stage], stop)
    return done


def _wait(futures: list[Future[None]], stop: threading.Event) -> None:
    """Wait for ``futures``; at the first failure (or Ctrl-C) stop starting changes, let those
    under way finish, and raise the first error."""
    try:
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:
        stop.set()
        for future in futures:
            future.cancel()
        wait(futures)
        raise
    failed = [f for f in futures if f.done() and not f.cancelled() and f.exception()]
    if failed:
        stop.set()
        for future in futures:
            future.cancel()
        wait(futures)
        error = failed[0].exception()
        assert error is not None
        raise error
