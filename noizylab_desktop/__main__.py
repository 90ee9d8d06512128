"""`python -m noizylab_desktop` is the `noizylab` command."""

from __future__ import annotations

from noizylab_desktop.cli.main import main

raise SystemExit(main())
