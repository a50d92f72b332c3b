"""How ``--help`` reads: the conventions of git, pip and uv, applied to every Typer parameter.

Typer's own rendering prints a type after flags (``--force <bool>``), wraps required arguments in
braces on the usage line (``{embeddings}``), shows choices as ``<auto|glove>`` and a descriptive
default in parentheses (``[default: (by objective)]``). The command classes here restyle every
parameter of the app once, where Typer builds them, so that no option has to say it again:

- a flag shows no value: ``--force``;
- an argument is its upper-case name, on the usage line and in the panel: ``EMBEDDINGS``,
  ``[WORDS]...`` when optional;
- a choice shows its values, ``--sparsity [topk|batchtopk|kl|l1|spine]`` (an option declared with
  :func:`choice`, or an ``Enum``);
- a default given as a description (``show_default="32 for topk, batchtopk"``) shows as it is.

A command line that does not parse is one line too, as every other user error
(:func:`usage_error_line`): ``error: --k must be a whole number (got '3.5')``, exit status 2, not
Typer's box; ``-h`` is ``--help``, and ``sparsecode help [COMMAND]`` shows that help.

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


def choices_metavar(values: Sequence[str]) -> str:
    return "[" + "|".join(values) + "]"


def choice(default: str, values: Sequence[str], help: str, *decls: str) -> Any:
    """A string option restricted to ``values``: ``--help`` lists them and the shell completes them;
    the library checks the value (one line, like every other user error)."""
    return typer.Option(default, *decls, help=help, **_choices(values))


def _choices(values: Sequence[str]) -> dict:
    """What makes an option a choice: ``--help`` lists the values, the shell completes them."""
    return {"metavar": choices_metavar(values), "autocompletion": lambda: list(values)}


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


def setting_options(settings_class: type, only: Sequence[str] | None = None) -> Callable:
    """Decorator of a command with a parameter ``settings``: in its place the command takes one
    option per field of the dataclass ``settings_class`` offered as an option (``only``: these
    fields alone), and receives their values as the dict ``settings`` (a list field as the text
    given, such as ``80,40``).

    Typer reads the options from the command's ``__signature__``: default, help, choices and the
    default shown all come from the field (:func:`sparsecode.config.setting`); a per-objective
    setting shows its defaults by objective (:func:`by_objective`)."""
    fields = [f for f in dataclasses.fields(settings_class)
              if (f.name in only if only is not None else f.metadata.get("option", False))]
    hints = typing.get_type_hints(settings_class)

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        params = []
        for param in signature.parameters.values():
            if param.name == "settings":
                params.extend(_field_parameter(f, hints[f.name]) for f in fields)
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


def _field_parameter(f: dataclasses.Field, hint) -> inspect.Parameter:
    """The command-line option of a settings field: its type, default, help and choices."""
    meta = f.metadata
    default = "" if typing.get_origin(hint) is list else f.default
    cli_type = str if typing.get_origin(hint) is list else hint
    if type(None) in typing.get_args(hint):
        cli_type = Optional[next(a for a in typing.get_args(hint) if a is not type(None))]
    shown = by_objective(f.name) if f.name in OBJECTIVE_DEFAULTS else meta.get("shown")
    extra = _choices(meta["choices"]) if meta.get("choices") else {}
    option = typer.Option(default, flag(f.name), help=flagged(meta["help"]),
                          show_default=flagged(shown) if shown is not None else True, **extra)
    return inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=cli_type)


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


def _checked_number(process_value):
    """``process_value`` of a parameter, whose failure to read a number says what it needs and got."""
    def process(self, ctx, value):
        try:
            return process_value(self, ctx, value)
        except typer.BadParameter as exc:
            kind = _number_kind(self)
            if kind is None or not isinstance(value, str) or type(exc) is not typer.BadParameter:
                raise
            raise typer.BadParameter(f"must be {kind} (got {value!r})", ctx=ctx, param=self) from None
    return process


def usage_error_line(exc) -> str:
    """A command line that does not parse, as one line: ``--k must be a whole number (got '3.5')``,
    ``no such option: --hiden (did you mean --hidden?); see 'sparsecode train --help'``."""
    ctx, param = getattr(exc, "ctx", None), getattr(exc, "param", None)
    if type(exc) is typer.BadParameter and param is not None:
        hint = next((o for o in param.opts if o.startswith("--")), None) or param.human_readable_name
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


class _Option(TyperOption):
    process_value = _checked_number(TyperOption.process_value)

    def display_type_rich(self, ctx) -> str | None:
        if self.is_flag and not self.count:
            return ""
        desc = self.type_descriptor
        if self.metavar is None and desc.is_choice and desc.choices:
            return choices_metavar([getattr(c, "value", c) for c in desc.choices])
        return super().display_type_rich(ctx)

    def _get_default_string(self, *, ctx, show_default_is_str: bool, default_value) -> str:
        if show_default_is_str:
            return str(self.show_default)
        if default_value == "" or default_value is None:
            return ""
        return super()._get_default_string(ctx=ctx, show_default_is_str=False, default_value=default_value)


class _Argument(TyperArgument):
    process_value = _checked_number(TyperArgument.process_value)

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def display_type_rich(self, ctx) -> str | None:
        return ""  # the name says what it is, the help what it holds

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _restyle(params: list) -> list:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _Option  # a subclass adding no state: only how it is shown changes
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    return params


class Command(TyperCommand):
    """A command whose parameters show as described in the module docstring."""

    def get_params(self, ctx):
        return _restyle(super().get_params(ctx))


class Group(TyperGroup):
    """The app: its own options and every command's, restyled; a command line that does not
    parse is one line; ``help [COMMAND]`` is ``[COMMAND] --help``."""

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for cmd in self.commands.values():
            if type(cmd) is TyperCommand:
                cmd.__class__ = Command  # as for parameters: only how it is shown changes

    def get_params(self, ctx):
        return _restyle(super().get_params(ctx))

    def make_context(self, info_name, args, parent=None, **extra):
        if args[:1] == ["help"] and "help" not in self.commands:  # as git and pip: 'help train' is 'train --help'
            args = [*args[1:2], "--help"]
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_usage_errors():  # a command that is not one, and every command's own parsing
            return super().invoke(ctx)
