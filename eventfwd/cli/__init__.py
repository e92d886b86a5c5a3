"""The operator's command line, `eventfwd` (commands registered in `eventfwd.cli.main`)."""
