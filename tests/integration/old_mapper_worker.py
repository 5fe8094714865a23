"""A processors worker running the NexusProMail mapper *before a fix*: it does not know
the ``complained`` type yet, so a correctly signed complaint lands in the DLQ with
``unknown_event_type``. Everything else is the real worker (``test_redrive``)."""

from __future__ import annotations

import sys

from processors.__main__ import main
from processors.mappers import nexuspromail

if __name__ == "__main__":
    del nexuspromail.TYPES["complained"]
    sys.exit(main())
