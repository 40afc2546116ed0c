"""A subcommand's flags, defined once: their names and values come from the definition."""

from absl import flags


class FlagDefiner:
    """`define.string(name, default, help)` is `flags.DEFINE_string` into one `FlagValues`.

    Args:
        flag_values: the `absl.flags.FlagValues` the flags go into.

    Example:

    ```python
    def define_flags(flag_values=flags.FLAGS):
        define = FlagDefiner(flag_values)
        define.integer("epochs", 100, "Training epochs.")
    ```
    """

    def __init__(self, flag_values):
        self._flag_values = flag_values

    def __getattr__(self, kind):
        definition = getattr(flags, f"DEFINE_{kind}")

        def define(*args, **kwargs):
            return definition(*args, flag_values=self._flag_values, **kwargs)

        return define


def flag_names(define_flags):
    """The names `define_flags(flag_values)` defines (defined into a scratch `FlagValues`)."""
    scratch = flags.FlagValues()
    define_flags(scratch)
    return frozenset(scratch)


def config_from_flags(define_flags, flag_values=flags.FLAGS):
    """`{name: value}` of the (parsed) flags that `define_flags` defines."""
    return {name: flag_values[name].value for name in sorted(flag_names(define_flags))}
