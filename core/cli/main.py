"""Command line: `python -m core size|compare ...`.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`,
imported lazily so `size` never pays for onnxruntime/torch imports.
A bad argument exits non-zero with one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from core.errors import QuantLensError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "size": ("core.cli.size", "Memory needed by a model at each precision (weights, KV cache, overhead)."),
    "compare": ("core.cli.compare", "Quantize a model with ONNX Runtime and compare it against its reference."),
    "worker": ("core.cli.worker", "Take compare jobs from a shared Redis queue (QUANTLENS_QUEUE) on this host."),
    "reconcile": ("core.cli.reconcile", "A llama.cpp / Ollama / vLLM load log beside the prediction, per component."),
}

EXIT_USAGE = 2
EXIT_FAILURE = 1


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; scripts want one line they can show or grep."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Only the chosen subcommand's module is imported, so a problem in one never breaks another."""
    parser = _OneLineParser(prog="python -m core", description="QuantLens engine command line.")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}", parser_class=_OneLineParser)
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM so every `finally` runs: the worker's group is killed, folders go."""


def _terminated(signum, frame) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in SUBCOMMANDS:  # a subcommand may rewrite values argparse would misread (`--params -7B`)
        prepare = getattr(importlib.import_module(SUBCOMMANDS[command][0]), "prepare_argv", None)
        argv = prepare(argv) if prepare else argv
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    # a deploy's SIGTERM: stop the job and remove its folder (the default action would skip every `finally`)
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return int(args._module.run(args) or 0)
    except QuantLensError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except _Terminated:
        sys.stderr.write("error: terminated; the job was stopped and its files removed [terminated]\n")
        return 143
    except Exception as exc:  # a bug or an unforeseen input: still one line for scripts, never a traceback
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {str(exc)[:300]} [internal_error]\n")
        return EXIT_FAILURE
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
