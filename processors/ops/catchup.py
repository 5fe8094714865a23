"""Follow a consumer group through a backlog until it has committed every input to its
end: what ``rebuild run`` and ``replay --follow`` wait for, with a progress bar."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from processors.ops.common import OpsError
from processors.ops.kafkaio import group_lag
from processors.ops.progress import progress

# What a generation reads, in the order records flow: the raw log, then its two hops.
ROLES = ("raw", "email.events", "message.events")
POLL_S = 2.0
QUIET_POLLS = 3


async def wait_caught_up(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    timeout: float,
    *,
    roles: Sequence[str] | None = None,
    stopped: Callable[[], str | None] = lambda: None,
) -> None:
    """Show progress through the first topic's backlog (as it stands now) until ``group``
    has no lag on any of ``topics`` for a few polls in a row (the later topics are fed by
    the first: their lag reaches zero only once it has been drained through them).

    ``stopped`` says why waiting is pointless (e.g. the worker exited), or None.
    """
    names = list(roles or topics)
    total = (await group_lag(bootstrap, group, topics[:1]))[topics[0]]
    began, quiet = time.monotonic(), 0
    with progress(names[0], total) as bar:
        while quiet < QUIET_POLLS:
            if (why := stopped()) is not None:
                raise OpsError(why)
            if time.monotonic() - began > timeout:
                raise OpsError(f"{group} not caught up after {timeout:.0f} s")
            await asyncio.sleep(POLL_S)
            lag = await group_lag(bootstrap, group, topics)
            first = lag[topics[0]]
            # New records arriving meanwhile grow the backlog: the total follows.
            total = max(total, first)
            lags = ", ".join(f"{n} lag {lag[t]:,}" for n, t in zip(names, topics, strict=True))
            bar.update(total - first, total, lags)
            quiet = quiet + 1 if not any(lag.values()) else 0
