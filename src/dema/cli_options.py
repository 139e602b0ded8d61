"""The one way dema's commands read their options (argparse, from the standard library).

Every command builds its parser with `command_parser(prog, ...)` (subcommands with its
`add_subparsers().add_parser`, which makes the same kind), so every command parses alike:

- options are written out in full: an abbreviation (`--ep` for `--episodes`) would change meaning
  the day another option starts the same way;
- a boolean is one `action="flag"` option: `--x` sets it, `--no-x` clears it. The old form with a
  value, `--x True` / `--x False` (what `dema train` took before), is still read;
- a bad command line is one line, `dema CMD: error: ...`, and exit status 2.

`add_dataclass_options` and `dataclass_values` turn a (nested) dataclass into options and back
(`--seed`, `--optim.lr`, `--model.n-layer`): `dema train`'s TrainConfig is its options.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from typing import Any

_TRUE, _FALSE = ("true",), ("false",)  # the old form's values, in any case: True, False, true, ...
_NOT_BOOLEANS = ("yes", "no", "on", "off", "1", "0", "y", "n")  # what a user may try instead: refused
BOOLEANS_NOTE = "booleans: --x sets one, --no-x clears it (the old form --x True / --x False still works)"


class Flag(argparse.Action):
    """A boolean option: `--x` sets it and `--no-x` clears it (argparse's BooleanOptionalAction,
    written out so that its help reads the same on every Python)."""

    def __init__(self, option_strings, dest, default=False, help=None, **kwargs):
        strings = list(option_strings) + ["--no-" + s[2:] for s in option_strings if s.startswith("--")]
        if help is not None and isinstance(default, bool):
            help += f" (default: {_shown(default)})"
        super().__init__(strings, dest, nargs=0, default=default, help=help, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no-"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; help wrapped at spaces only (`dt-official`, `--no-x` stay whole)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class CommandParser(argparse.ArgumentParser):
    """argparse with dema's conventions (this module's docstring); make one with `command_parser`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.register("action", "flag", Flag)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else [str(a) for a in args]
        return super().parse_known_args(self._without_old_booleans(args), namespace)

    def _without_old_booleans(self, args: list[str]) -> list[str]:
        """`--x True` -> `--x`, `--x False` (or `--x=False`) -> `--no-x`, for this parser's flags."""
        flags = {s for action in self._actions if isinstance(action, Flag)
                 for s in action.option_strings if not s.startswith("--no-")}
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                return out + args[i:]
            name, eq, value = arg.partition("=")
            if name in flags and not eq and i + 1 < len(args) and args[i + 1].lower() in _TRUE + _FALSE:
                value, i = args[i + 1], i + 1
            elif name in flags and not eq and i + 1 < len(args) and args[i + 1].lower() in _NOT_BOOLEANS:
                self.error(f"{name} takes no value ({name} sets it, --no-{name[2:]} clears it), "
                           f"or the old form's True or False, not {args[i + 1]!r}")
            if name in flags and value.lower() in _TRUE + _FALSE:
                arg = name if value.lower() in _TRUE else "--no-" + name[2:]
            out.append(arg)
            i += 1
        return out

    def format_help(self) -> str:
        text = super().format_help()
        if any(isinstance(action, Flag) for action in self._actions):
            text += "\n" + BOOLEANS_NOTE + "\n"
        return text

    def error(self, message: str):
        """One line and exit 2 (argparse prints the whole usage first, which buries the message)."""
        hint = f"; `{self.prog} --help` lists the options" if message.startswith("unrecognized arguments") else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def command_parser(prog: str, description: str | None = None, **kwargs) -> CommandParser:
    """The parser of one `dema` command: every command makes its parser here."""
    return CommandParser(prog=prog, description=description, **kwargs)


# ----------------------------------------------------------------------------- dataclasses as options


def add_dataclass_options(parser: argparse.ArgumentParser, default: Any, skip: set[str] = frozenset(),
                          prefix: str = "", group=None) -> list[str]:
    """One option per field of the dataclass instance `default`: `--name` (underscores written as
    hyphens; the underscore spelling is read too), a nested dataclass's fields as `--name.field` in
    a group of their own. The type comes from the annotation, the help from the field's docstring or
    comment (`field_docs`), the shown default from `default`. The options default to nothing, so
    `dataclass_values` returns only what the command line gave. Returns the options' dests."""
    hints = typing.get_type_hints(type(default))
    docs = field_docs(type(default))
    container = group or parser
    dests: list[str] = []
    for f in dataclasses.fields(default):
        if f.name in skip:
            continue
        path, value, kind = prefix + f.name, getattr(default, f.name), hints[f.name]
        if dataclasses.is_dataclass(kind):
            sub = parser.add_argument_group(f"{path} options", _one_paragraph(class_doc(type(value))) or None)
            dests += add_dataclass_options(parser, value, prefix=path + ".", group=sub)
            continue
        options = _option_kwargs(kind, path)
        help_ = _one_paragraph(f"{docs.get(f.name, '')} (default: {_shown(value)})").replace("%", "%%")
        spelled = "--" + path.replace("_", "-")
        container.add_argument(spelled, dest=path, default=argparse.SUPPRESS, help=help_, **options)
        if "_" in path:  # the spelling tyro also read: kept working, not listed
            container.add_argument("--" + path, dest=path, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                   **options)
        dests.append(path)
    return dests


def dataclass_values(namespace: argparse.Namespace, dests: list[str]) -> dict[str, Any]:
    """{"optim.lr": 0.0003, ...}: the options of `add_dataclass_options` the command line gave."""
    given = vars(namespace)
    return {d: tuple(given[d]) if isinstance(given[d], list) else given[d] for d in dests if d in given}


def replace_fields(default: Any, values: dict[str, Any]) -> Any:
    """`default` with the dotted fields of `values` replaced (nested dataclasses rebuilt, so a frozen
    one checks itself again)."""
    here: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        head, dot, rest = path.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            here[head] = value
    for head, inner in nested.items():
        here[head] = replace_fields(getattr(default, head), inner)
    return dataclasses.replace(default, **here) if here else default


def _option_kwargs(kind, path: str) -> dict[str, Any]:
    """add_argument's type, nargs and metavar for a field of type `kind`."""
    if kind is bool:
        return {"action": "flag"}
    if kind in (int, float, str):
        return {"type": kind, "metavar": kind.__name__.upper()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"type": _enum_reader(kind), "metavar": "{" + ",".join(m.value for m in kind) + "}"}
    if typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        if len(items) == 2 and items[1] is Ellipsis:
            return {"type": items[0], "nargs": "*", "metavar": items[0].__name__.upper()}
        if len(set(items)) == 1:
            return {"type": items[0], "nargs": len(items), "metavar": items[0].__name__.upper()}
    raise TypeError(f"{path}: no command-line form for a field of type {kind}")


def _enum_reader(kind: type[enum.Enum]):
    """An enum member from its value (`attention`, as config.json writes it) or its name
    (`ATTENTION`, the form `dema train` took before)."""

    def read(text: str) -> enum.Enum:
        for member in kind:
            if text in (member.value, member.name):
                return member
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(m.value for m in kind)}")

    read.__name__ = kind.__name__  # argparse names the type in its own messages
    return read


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) if value else "none"
    if value == "":
        return "''"
    return str(value)


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


def class_doc(klass) -> str:
    """The docstring the class's source writes (a dataclass without one gets its signature as __doc__)."""
    source = _source(klass)
    return (ast.get_docstring(ast.parse(source).body[0]) or "") if source else ""


def field_docs(klass) -> dict[str, str]:
    """Each field's description as its class's source writes it: the string under the field, else the
    comment at the end of its line, else the comment lines right above it."""
    source = _source(klass)
    if not source:
        return {}
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    body = ast.parse(source).body[0].body
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:] + [None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = after.value.value
        elif node.end_lineno in comments:
            docs[node.target.id] = comments[node.end_lineno]
        else:
            above, line = [], node.lineno - 1
            while line in comments and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            if above:
                docs[node.target.id] = " ".join(above)
    return docs


def _source(klass) -> str:
    try:
        return textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source (a frozen application): options without help
        return ""
