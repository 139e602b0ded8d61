"""Small subcommands of the `dema` CLI."""
