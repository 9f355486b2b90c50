"""Settings dataclasses state each knob once: its default, its help text and, as a ``Literal`` type, its choices.

In the style of LLaMA-Factory's ``hparams`` dataclasses, a settings field is declared with ``setting(default, help)``
(``field(metadata={"help": ...})``); extra metadata (``ge``, ``gt``, ``le``, ``choices``) bounds its value. The layers
that expose settings derive their forms from the dataclass: ``add_setting_arguments`` builds argparse flags here
(``gpt4scene``), ``resources.config.settings_config`` builds Dagster ``Config`` classes (the launchpad).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal


def setting(default: Any, help: str, **bounds: Any) -> Any:
    """A dataclass field with its default, its help text and optional bounds (``ge``, ``gt``, ``le``, ``choices``)."""
    return dataclasses.field(default=default, metadata={"help": help, **bounds})


@dataclass(frozen=True)
class SettingField:
    """One field of a settings dataclass: name, resolved type, default, help, choices (if fixed) and bounds."""

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    bounds: dict[str, Any]

    @property
    def item_type(self) -> Any:
        """The element type of a ``tuple[X, ...]`` field (else the field's own type), ``Optional`` removed."""
        if typing.get_origin(self.type) not in (tuple, typing.Union, types.UnionType):
            return self.type
        return next(arg for arg in typing.get_args(self.type) if arg is not type(None) and arg is not Ellipsis)

    @property
    def is_sequence(self) -> bool:
        return typing.get_origin(self.type) is tuple


def literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal`` type (``None`` for any other type)."""
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None


def setting_fields(settings_cls: type) -> list[SettingField]:
    """The fields of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(settings_cls)
    out = []
    for item in dataclasses.fields(settings_cls):
        metadata = dict(item.metadata)
        help_text = metadata.pop("help", "")
        choices = metadata.pop("choices", None)
        field_ = SettingField(item.name, hints[item.name], item.default, help_text, None, metadata)
        choices = tuple(choices) if choices is not None else literal_choices(field_.item_type)
        out.append(dataclasses.replace(field_, choices=choices))
    return out


def setting_field(settings_cls: type, name: str) -> SettingField:
    """One named field of a settings dataclass."""
    return next(item for item in setting_fields(settings_cls) if item.name == name)


def add_setting_arguments(
    parser: argparse.ArgumentParser,
    settings_cls: type,
    flags: dict[str, str],
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add one flag per field of ``flags`` (field name → flag, e.g. ``{"n_frames": "--frames"}``): the field's help,
    default (or ``defaults[name]``), type and choices. A bool is a ``store_true`` switch; a tuple field is a
    repeatable flag whose default, when none is given, is the field's; an ``int | None`` field takes an int."""
    defaults = defaults or {}
    by_name = {item.name: item for item in setting_fields(settings_cls)}
    for name, flag in flags.items():
        item = by_name[name]
        default = defaults.get(name, item.default)
        if item.type is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=item.help)
            continue
        kind = item.item_type
        options: dict[str, Any] = {"dest": name, "help": item.help, "choices": item.choices}
        if literal_choices(kind) is None:
            options["type"] = kind
        if item.is_sequence:
            options["help"] = f"{item.help} (repeatable; default {' '.join(map(str, default))})"
            parser.add_argument(flag, action="append", **options)
        else:
            parser.add_argument(flag, default=default, **options)


def sequence_or_default(values: list[Any] | None, settings_cls: type, name: str) -> tuple[Any, ...]:
    """A repeatable flag's values as a tuple, or the field's default when the flag was not given."""
    return tuple(values) if values else setting_field(settings_cls, name).default
