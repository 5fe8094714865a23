"""``python -m bench.proc_cpuprof OUT [worker args]``: a processors worker under cProfile
timed by the thread's *CPU* clock, so a profile shows where CPU goes, not where the
worker waits (a wall-clock profile charges idle ``epoll`` and preempted ``send`` calls)."""

from __future__ import annotations

import cProfile
import sys
import time

from processors.__main__ import main as worker_main


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out, rest = args[0], args[1:]
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        return worker_main(rest)
    except SystemExit as exc:  # Faust's worker leaves through sys.exit
        return exc.code if isinstance(exc.code, int) else 0
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main())
