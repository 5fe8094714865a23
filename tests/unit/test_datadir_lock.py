"""A worker locks its data dir: a second worker on the same dir exits with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from processors.__main__ import claim_datadir
from processors.settings import load_settings

HOLD = """
import sys, time
from pathlib import Path
from processors.__main__ import claim_datadir
from processors.settings import load_settings
lock = claim_datadir(load_settings(datadir=Path(sys.argv[1]), generation="g1"))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_worker_on_the_same_datadir_exits_naming_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit) as exc:
            claim_datadir(load_settings(datadir=tmp_path, generation="g1"))
        assert str(tmp_path / "g1") in str(exc.value)
        assert "MAILPULSE_PROCESSORS__DATADIR" in str(exc.value)
        # Another generation's dir is another lock.
        claim_datadir(load_settings(datadir=tmp_path, generation="g2")).release()
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its process, however it ended (here: SIGKILL).
    claim_datadir(load_settings(datadir=tmp_path, generation="g1")).release()
