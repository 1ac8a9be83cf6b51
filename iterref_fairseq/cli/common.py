"""What every ``iterref-*`` console script shares: one flag convention (fairseq's where it has one), one way to
report bad input, and the exit status.

* Exit status: ``main(argv=None) -> int`` returns 0 on success. Bad input (a missing checkpoint, data directory or
  file, a checkpoint of the wrong model type, an invalid value) is one line on stderr, ``PROG: error: MESSAGE``,
  naming the input and the fix, and exit status 2 (argparse's status for a usage error), never a traceback.
  Code raises :class:`CLIError`; :func:`console_main` turns it into that line and the status.
* Flags: ``DATA`` (positional, as in fairseq-train / fairseq-generate; ``--data`` is a deprecated alias),
  ``--path`` (checkpoint of the model under study), ``--gen-subset`` (split to decode or score), ``--cpu`` (CUDA is
  used when available unless ``--cpu``), ``--out`` (the main output), ``--max-examples`` (the first N examples;
  ``--max-sentences`` is fairseq's batch size and is refused), ``--batch-size``.
* Deprecated flag names stay accepted for one release: using one prints ``PROG: warning: OLD is deprecated, use
  NEW`` on stderr and then behaves as NEW (:func:`add_argument` with ``deprecated=``).

This module imports only the standard library (torch is imported by :func:`resolve_device` when called).
"""
import argparse
import os
import sys
from typing import Callable, List, Optional, Sequence

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """Bad input: the message names the input and the fix (one line); ``main`` prints it and returns 2."""


def warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)


def console_main(prog: str, body: Callable[[Optional[List[str]]], Optional[int]],
                 argv: Optional[List[str]] = None) -> int:
    """Runs ``body(argv)``; returns its status (0 when it returns None) or 2 with ``PROG: error: ...`` on stderr
    when it raises :class:`CLIError`. argparse errors exit with status 2 themselves (usage + the same line)."""
    try:
        status = body(argv)
    except CLIError as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return 0 if status is None else int(status)


# ---------------------------------------------------------------------- parser and flags
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose namespaces remember the command line (``args.argv``: the program name, then the
    arguments as given), so that a results JSON can record the command that produced it (:func:`provenance`)."""

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        ns.argv = [self.prog] + list(sys.argv[1:] if args is None else args)
        return ns


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The script's parser: ``prog`` is the console-script name (also when run through a deprecated alias), the
    description keeps the module docstring's layout."""
    return _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def provenance(args: argparse.Namespace) -> dict:
    """The ``provenance`` record of a results JSON (command, commit, seed, hardware, versions) for a run with the
    parsed ``args`` of :func:`new_parser` (see :func:`iterref_fairseq.provenance.run_metadata`)."""
    from ..provenance import run_metadata

    meta = run_metadata(getattr(args, "argv", None), seed=getattr(args, "seed", None))
    if meta["seed"] is None:
        prog = (getattr(args, "argv", None) or ["this command"])[0]
        meta["note"] = f"seed is null: {prog} takes no seed"
    return meta


def _deprecated(base, old_names: Sequence[str], use: str):
    """A subclass of the argparse action ``base`` that warns when given under one of ``old_names``."""

    class DeprecatedAlias(base):
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in old_names:
                warn(parser.prog, f"{option_string} is deprecated, use {use}")
            super().__call__(parser, namespace, values, option_string)

    return DeprecatedAlias


def add_argument(parser, *names: str, deprecated: Sequence[str] = (), **kwargs) -> argparse.Action:
    """``parser.add_argument(*names, *deprecated, **kwargs)`` where using one of the ``deprecated`` option strings
    warns (``PROG: warning: OLD is deprecated, use NEW``) and then acts exactly as the first of ``names``."""
    if not deprecated:
        return parser.add_argument(*names, **kwargs)
    if not kwargs.get("help"):
        raise ValueError(f"{names[0]}: a flag with deprecated aliases needs a help string")
    base = parser._registry_get("action", kwargs.get("action"), kwargs.get("action"))
    kwargs["action"] = _deprecated(base, tuple(deprecated), names[0])
    kwargs["help"] = kwargs["help"] + f" (deprecated alias: {', '.join(deprecated)})"
    return parser.add_argument(*names, *deprecated, **kwargs)


def add_deprecated_flag(parser, name: str, use: str, help: str, **kwargs) -> argparse.Action:
    """An old flag without a new flag of the same meaning (``use`` says what replaces it); it still works (stores
    its value, in ``dest``) for one release and warns when used."""
    action = parser._registry_get("action", kwargs.pop("action", None), None)
    return parser.add_argument(name, action=_deprecated(action, (name,), use), help=f"deprecated: {help}",
                               **kwargs)


def add_data_argument(parser, help: str) -> None:
    """The data directory as fairseq's positional ``DATA``; ``--data DIR`` is still accepted (deprecated)."""
    parser.add_argument("data", nargs="?", metavar="DATA", help=help)
    add_deprecated_flag(parser, "--data", "the positional argument DATA", dest="data_flag", metavar="DIR",
                        help="the data directory; pass it as the positional DATA instead")


def resolve_data(args, must_exist: bool = True, fix: str = "") -> str:
    """The data directory given either as DATA or with --data (exactly one); checks that it exists."""
    given = [d for d in (args.data, args.data_flag) if d is not None]
    if not given:
        raise CLIError("the data directory is missing: pass it as the positional argument DATA "
                       "(as in fairseq-generate DATA ...)" + (f"; {fix}" if fix else ""))
    if len(given) == 2:
        raise CLIError(f"the data directory is given twice (DATA {args.data} and --data {args.data_flag}): "
                       "pass it once, as the positional argument DATA")
    data = str(given[0])
    if must_exist and not os.path.isdir(data):
        raise CLIError(f"data directory not found: {data}" + (f" ({fix})" if fix else ""))
    args.data = data
    return data


def add_device_arguments(parser, cuda_alias: bool = False) -> None:
    """fairseq's ``--cpu``: CUDA is used when available unless ``--cpu``. ``cuda_alias`` keeps the old ``--cuda``
    flag accepted as a deprecated no-op."""
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is available")
    if cuda_alias:
        parser.add_argument("--cuda", action=_DeprecatedNoOp, nargs=0,
                            help="deprecated, has no effect: CUDA is used when available unless --cpu")


class _DeprecatedNoOp(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        warn(parser.prog, f"{option_string} is deprecated and has no effect: CUDA is used when available "
                          "unless --cpu")


def resolve_device(args):
    """``torch.device('cuda')`` when CUDA is available and ``--cpu`` was not given, else the CPU."""
    import torch

    use_cuda = torch.cuda.is_available() and not getattr(args, "cpu", False)
    return torch.device("cuda" if use_cuda else "cpu")


def add_gen_subset_argument(parser, default: str, help: str, deprecated: Sequence[str] = ()) -> None:
    add_argument(parser, "--gen-subset", default=default, metavar="SPLIT", deprecated=deprecated,
                 help=help)


def add_max_examples_argument(parser, default: int, help: str, deprecated: Sequence[str] = (),
                              batch_flag: str = "--batch-size") -> None:
    """``--max-examples N`` (the first N examples), and ``--max-sentences`` refused: in fairseq it is the batch
    size, so accepting it here as a number of examples would silently mean something else."""
    add_argument(parser, "--max-examples", type=int, default=default, metavar="N", deprecated=deprecated,
                 help=help)
    parser.add_argument("--max-sentences", nargs="?", action=_RefuseMaxSentences, batch_flag=batch_flag,
                        help=argparse.SUPPRESS)


class _RefuseMaxSentences(argparse.Action):
    def __init__(self, *args, batch_flag: str = "--batch-size", **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_flag = batch_flag

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is fairseq's batch size, not a number of examples: use --max-examples N "
                     f"to use the first N examples (and {self.batch_flag} for the batch size)")


# ---------------------------------------------------------------------- inputs
def check_file(path, what: str, fix: str) -> str:
    if not os.path.isfile(str(path)):
        raise CLIError(f"{what} not found: {path} ({fix})")
    return str(path)


def check_positive(**values) -> None:
    """``check_positive(num_samples=..., ...)``: every value >= 1, else a CLIError naming the flag."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def check_out_dir(out, what: str = "--out") -> None:
    """The directory that will hold ``out`` exists or can be created (created here)."""
    parent = os.path.dirname(os.path.abspath(str(out)))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise CLIError(f"{what} {out}: cannot create its directory {parent} ({err.strerror}); choose another "
                       f"{what}") from None


def load_insertion_model(args, data: str, fix: str):
    """``(model, task, device)`` of the flexmdm / lflexmdm checkpoint ``args.path`` (a model with the tau-leaping
    sampler's ``rates`` hook), in eval mode on the device of ``args`` (:func:`resolve_device`)."""
    models, _cfg, task = load_checkpoint(args.path, data, fix)
    model = models[0].eval()
    if not hasattr(model, "rates"):
        raise CLIError(f"{args.path} is not an insertion model (no 'rates' hook); --path needs a flexmdm / "
                       "lflexmdm checkpoint (--arch flexmdm* / lflexmdm*)")
    device = resolve_device(args)
    return model.to(device), task, device


def load_checkpoint_state(path, data: str, fix: str) -> dict:
    """A fairseq checkpoint's state read once on CPU (pass it to :func:`load_checkpoint` as ``state``, and read its
    update count with :func:`checkpoint_updates`); a missing or unreadable file is a :class:`CLIError`."""
    check_file(path, "checkpoint", fix)
    import iterref_fairseq  # noqa: F401  (registers the plugin, applies the checkpoint-loading shims)
    from fairseq import checkpoint_utils

    from ..compat import CheckpointError

    try:
        return checkpoint_utils.load_checkpoint_to_cpu(str(path), arg_overrides={"data": data})
    except CheckpointError as err:  # names the path and the fix
        raise CLIError(str(err)) from None


def checkpoint_updates(state: dict) -> Optional[int]:
    """The number of updates a loaded checkpoint state records (None when it has no optimizer history)."""
    return (state.get("optimizer_history") or [{}])[-1].get("num_updates")


def load_checkpoint(path, data: str, fix: str, overrides: Optional[dict] = None, state=None):
    """``(models, cfg, task)`` of a fairseq checkpoint with the plugin registered; a missing or unreadable
    checkpoint, or one that does not fit ``data`` (the models' ``dictionary mismatch`` / ``vocabulary mismatch``
    ValueErrors, a missing dictionary), is a :class:`CLIError`."""
    check_file(path, "checkpoint", fix)
    import iterref_fairseq  # noqa: F401  (registers the plugin, applies the checkpoint-loading shims)
    from fairseq import checkpoint_utils

    from ..compat import CheckpointError

    try:
        return checkpoint_utils.load_model_ensemble_and_task(
            [str(path)], arg_overrides={"data": data, **(overrides or {})}, state=state)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from None
