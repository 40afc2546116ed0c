"""The command line's error contract: one `error:` line and exit status 2.

Every expected failure of a subcommand (bad flags or data, an unwritable or
full `--output_dir`, a lock held by another run, an unreadable checkpoint, a
non-finite loss) is printed as one line starting with `error:` that names the
path or value, and the process exits with status 2. Tracebacks are printed
only with `--verbose 2`, or for an unexpected exception (a bug). Ctrl-C exits
with status 130 and says how to resume.
"""

import errno
import sys
import traceback

# Exit status of every expected failure (argparse and absl use 2 for bad
# usage too).
EXIT_ERROR = 2


class CLIError(Exception):
    """An expected failure of a subcommand, found before or during a run.

    Its message is printed as one `error: ...` line and the process exits
    with status 2.
    """


class PretrainError(CLIError, ValueError):
    """Bad flags, data or run folder of `keras-simclr pretrain`, found before or during a run."""


def _expected_types():
    from keras_simclr.evaluation import NonFiniteLossError

    # ValueError covers bad flags and bad data raised by the library
    # (including keras_simclr.data.BadImagesError); OSError covers missing,
    # unwritable and full paths.
    return (CLIError, ValueError, OSError, NonFiniteLossError)


def describe_os_error(error, action="write"):
    """`OSError` -> one line naming the path, the reason and the errno name."""
    path = error.filename if error.filename is not None else "(unknown path)"
    reason = error.strerror or str(error)
    name = errno.errorcode.get(error.errno, "")
    suffix = f" [{name}]" if name else ""
    return f"cannot {action} {path}: {reason}{suffix}"


def _one_line(error):
    if isinstance(error, OSError) and not isinstance(error, CLIError) and error.strerror:
        action = "read" if isinstance(error, FileNotFoundError) else "access"
        return describe_os_error(error, action)
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def run_subcommand(function, config, verbose=1, prog="keras-simclr"):
    """Calls `function(config)`; maps expected failures to `error:` + exit 2.

    Args:
        function: the subcommand's run function, taking the config dict.
        config: the flags by name.
        verbose: with 2, the traceback is printed before the `error:` line.
        prog: the program name, printed after the error for context.

    Returns:
        what `function` returns.

    Raises:
        SystemExit: with status 2 after an expected failure.
    """
    try:
        return function(config)
    except KeyboardInterrupt:
        print(
            f"\n{prog}: interrupted. Run the same command again to resume from the "
            "last completed epoch.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    except _expected_types() as error:
        if verbose >= 2:
            traceback.print_exc()
        print(f"error: {_one_line(error)}", file=sys.stderr)
        if verbose < 2:
            print(f"({prog}: --verbose 2 shows the traceback)", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(EXIT_ERROR) from None
