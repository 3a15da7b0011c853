"""One module per `nbops` subcommand: `add_parser(subparsers)` and a handler that makes one
library call. Library imports happen inside handlers so `nbops --help` stays fast."""
