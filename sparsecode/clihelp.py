"""How ``--help`` reads: Typer's own rendering, told what to show through its features.

Each option says what it is through Typer's parameters: ``help``, ``show_default`` (a default that
is a description, such as ``32 for topk, batchtopk``, shows as Typer writes one: in parentheses),
``metavar`` and ``rich_help_panel`` (train's settings come in panels: model, other objectives,
optimisation, unit health, hardware). A choice (:func:`choice`, :func:`choices_of`) shows
``<choice>`` and lists its values in its help, where they wrap between words at any width (as
uv and pip list them); in the type column they were one word that a narrow terminal cut
mid-word (``word 2vec-bin``).

What Typer cannot be told, :class:`Command` and :class:`Group` do in one place, through the same
``metavar`` every parameter has:

- a flag shows no value (``--force``, not ``--force <bool>``): Typer writes ``<bool>`` after every
  flag, its own ``--help`` and ``--install-completion`` included, and has no setting for it;
- an argument is its upper-case name (``EMBEDDINGS``), and the usage line shows a required one
  bare, an optional one in brackets (``[WORDS]...``): Typer writes ``{embeddings}``, braces that
  in usage conventions (docopt, POSIX) mean "one of".

:func:`setting_options` declares a command's options from a settings dataclass
(:class:`~sparsecode.config.TrainConfig`): each default, help text and choice comes from the
field, and every setting is named by its flag (:func:`flag`), in ``--help`` as in error messages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable, Iterator, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .config import OBJECTIVE_DEFAULTS, SPARSITIES
from .errors import name_settings
from .terminal import error_line


def flag(setting: str) -> str:
    """How the command line names a setting: ``k_anneal_from`` -> ``--k-anneal-from``."""
    return "--" + setting.replace("_", "-")


def flagged(text: str) -> str:
    """A settings text (``{name}`` for a setting, see :func:`sparsecode.config.setting`) with
    every setting written as its flag."""
    return name_settings(text, flag)


#: What the type column shows for an option that takes one of a few values (listed in its help).
CHOICE_METAVAR = "<choice>"


def choices_of(values: Sequence[str], help: str) -> dict:
    """Typer's settings of an option that takes one of ``values``: its help followed by the values
    (``[choices: topk, batchtopk, ...]``, wrapped between words), :data:`CHOICE_METAVAR`, and the
    values for shell completion."""
    return {"help": help + " " + escape(f"[choices: {', '.join(values)}]"), "metavar": CHOICE_METAVAR,
            "autocompletion": lambda: list(values)}


def choice(default: str, values: Sequence[str], help: str, *decls: str) -> Any:
    """A string option restricted to ``values``: ``--help`` lists them and the shell completes them;
    the library checks the value (one line, like every other user error)."""
    return typer.Option(default, *decls, **choices_of(values, help))


def by_objective(name: str) -> str:
    """The default of a per-objective setting (:data:`~sparsecode.config.OBJECTIVE_DEFAULTS`) as
    ``--help`` shows it: ``32 for topk, batchtopk``, ``0.2 for spine, else 0``."""
    groups: dict[Any, list[str]] = {}
    for objective, value in OBJECTIVE_DEFAULTS[name].items():
        groups.setdefault(value, []).append(objective)
    text = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    parts = sorted(groups.items(), key=lambda item: SPARSITIES.index(item[1][0]))
    if len(parts) > 1 and sum(len(o) for _, o in parts) == len(SPARSITIES):  # every objective: the odd one out
        common, *others = sorted(parts, key=lambda item: -len(item[1]))
        return ", ".join(f"{text(v)} for {', '.join(o)}" for v, o in others) + f", else {text(common[0])}"
    return "; ".join(f"{text(v)} for {', '.join(o)}" for v, o in parts)


def setting_options(settings_class: type, only: Sequence[str] | None = None,
                    panels: dict[str, Sequence[str]] | None = None) -> Callable:
    """Decorator of a command with a parameter ``settings``: in its place the command takes one
    option per field of the dataclass ``settings_class`` offered as an option (``only``: these
    fields alone), and receives their values as the dict ``settings`` (a list field as the text
    given, such as ``80,40``).

    Typer reads the options from the command's ``__signature__``: default, help, choices and the
    default shown all come from the field (:func:`sparsecode.config.setting`); a per-objective
    setting shows its defaults by objective (:func:`by_objective`). ``panels``: the help panel of
    each setting (``{"Model": ("hidden", ...), ...}``), in the order ``--help`` shows the panels;
    every option a panel names must exist, and every setting have a panel."""
    fields = [f for f in dataclasses.fields(settings_class)
              if (f.name in only if only is not None else f.metadata.get("option", False))]
    hints = typing.get_type_hints(settings_class)
    panel_of = {name: panel for panel, names in (panels or {}).items() for name in names}
    if panels is not None:
        assert sorted(panel_of) == sorted(f.name for f in fields), "a setting without a panel, or a panel's unknown one"
        order = list(panel_of)  # Typer shows the panels in the order of their first option
        fields.sort(key=lambda f: order.index(f.name))

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        params = []
        for param in signature.parameters.values():
            if param.name == "settings":
                params.extend(_field_parameter(f, hints[f.name], panel_of.get(f.name)) for f in fields)
            else:
                params.append(param)

        @functools.wraps(command)
        def with_settings(**kwargs):
            settings = {f.name: kwargs.pop(f.name) for f in fields}
            return command(**kwargs, settings=settings)

        with_settings.__signature__ = signature.replace(parameters=params)
        with_settings.__annotations__ = {p.name: p.annotation for p in params}
        return with_settings

    return decorate


def _field_parameter(f: dataclasses.Field, hint, panel: str | None = None) -> inspect.Parameter:
    """The command-line option of a settings field: its type, default, help, choices and panel."""
    meta = f.metadata
    default = "" if typing.get_origin(hint) is list else f.default
    cli_type = str if typing.get_origin(hint) is list else hint
    if type(None) in typing.get_args(hint):
        cli_type = Optional[next(a for a in typing.get_args(hint) if a is not type(None))]
    shown = by_objective(f.name) if f.name in OBJECTIVE_DEFAULTS else meta.get("shown")
    described = choices_of(meta["choices"], flagged(meta["help"])) if meta.get("choices") else {"help": flagged(meta["help"])}
    option = typer.Option(default, flag(f.name), show_default=flagged(shown) if shown is not None else True,
                          rich_help_panel=panel, **described)
    return inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=cli_type)


def _as_documented(params: list) -> list:
    """What Typer cannot be told per parameter (see the module docstring), through the metavar it
    shows in the parameter's place: none for a flag, the upper-case name for an argument."""
    for param in params:
        if param.metavar is not None:
            continue
        if isinstance(param, TyperOption) and param.is_flag and not param.count:
            param.metavar = ""
        elif isinstance(param, TyperArgument):
            param.metavar = (param.name or "").upper()
    return params


def _usage(command, ctx) -> list[str]:
    """The usage line's pieces: ``[OPTIONS]``, then each argument bare when required, in brackets
    when optional, ``...`` when it takes several."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.metavar if param.required else f"[{param.metavar}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


#: Click's base of every error of the command line's parsing (Typer re-exports only BadParameter).
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
#: What a number option's value must be, by its type.
_NUMBER_KINDS = {int: "a whole number", float: "a number"}


def _number_kind(param) -> str | None:
    """``a whole number`` or ``a number`` for an int or float parameter (optional or not), else None."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for t in (annotation, *typing.get_args(annotation)):
        if t in _NUMBER_KINDS:
            return _NUMBER_KINDS[t]
    return None


def _plain_numbers(params: list) -> list:
    """Each int or float parameter's failure to read a number says what it needs and what it got
    (``--k must be a whole number (got '3.5')``); Typer's own message names neither."""
    for param in params:
        kind = _number_kind(param)
        if kind is None or getattr(param, "_plain_number", False):
            continue

        def process(ctx, value, original=param.process_value, param=param, kind=kind):
            try:
                return original(ctx, value)
            except typer.BadParameter as exc:
                if not isinstance(value, str) or type(exc) is not typer.BadParameter:
                    raise
                raise typer.BadParameter(f"must be {kind} (got {value!r})", ctx=ctx, param=param) from None

        param.process_value, param._plain_number = process, True
    return params


def usage_error_line(exc) -> str:
    """A command line that does not parse, as one line: ``--k must be a whole number (got '3.5')``,
    ``no such option: --hiden (did you mean --hidden?); see 'sparsecode train --help'``."""
    ctx, param = getattr(exc, "ctx", None), getattr(exc, "param", None)
    if type(exc) is typer.BadParameter and param is not None:
        hint = next((o for o in param.opts if o.startswith("--")), None) or (param.name or "").upper()
        text = exc.message.removeprefix("Value error, ").rstrip(".")  # how pydantic, under Typer, writes some
        return f"{hint} {text}" if text.startswith("must ") else f"{hint}: {text}"
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    message = message.replace(". Did you mean", " (did you mean").replace("? ", "?) ") if "Did you mean" in message \
        else message
    if message.endswith("?"):
        message += ")"
    return message + (f"; see '{ctx.command_path} --help'" if ctx is not None else "")


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A command line that does not parse: :func:`usage_error_line` on stderr, exit status 2."""
    try:
        yield
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help, as Typer shows it
            raise
        Console(stderr=True, highlight=False, emoji=False).print(error_line(usage_error_line(exc)), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


class Command(TyperCommand):
    """A command whose parameters show as described in the module docstring."""

    def get_params(self, ctx):
        return _plain_numbers(_as_documented(super().get_params(ctx)))

    def collect_usage_pieces(self, ctx):
        return _usage(self, ctx)


class Group(TyperGroup):
    """The app: its own flags shown as the commands' are; a command line that does not parse is
    one line; ``help [COMMAND]`` is ``[COMMAND] --help``."""

    def get_params(self, ctx):
        return _plain_numbers(_as_documented(super().get_params(ctx)))

    def make_context(self, info_name, args, parent=None, **extra):
        if args[:1] == ["help"] and "help" not in self.commands:  # as git and pip: 'help train' is 'train --help'
            args = [*args[1:2], "--help"]
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_usage_errors():  # a command that is not one, and every command's own parsing
            return super().invoke(ctx)
