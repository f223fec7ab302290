"""`python -m backchannel` is the `backchannel` command."""

from backchannel.server.cli import main

raise SystemExit(main())
