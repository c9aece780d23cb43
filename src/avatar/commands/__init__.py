"""Subcommands that live in their own module: each has ``add_parser(sub)`` and ``run(args)``."""
