"""`python -m core size|compare`: compute the data with the engine, then print it (table, JSON or CSV).

Modules: main (argument parsing, one-line errors, exit codes), size, compare. Each subcommand module is imported
only when chosen, so `size` never pays for onnxruntime or torch.
"""

from core.cli.main import EXIT_FAILURE, EXIT_USAGE, build_parser, main

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "build_parser", "main"]
