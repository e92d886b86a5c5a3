"""`python -m eventfwd.cli`: the `eventfwd` command without its console script on PATH."""

from eventfwd.cli.main import main

main()
