"""Dagster ``Config`` classes derived from the ops settings dataclasses (``ops.core.settings``).

``settings_config(PromptSettings, ...)`` is a ``dg.Config`` subclass with one field per settings field: the same
name and default, the help text as the launchpad's description, the bounds (``ge``, ``gt``, ``le``) as pydantic
constraints, and fixed choices (a ``Literal`` type or ``choices`` metadata) as an enum, so the launchpad refuses a
bad value before the run starts. Assets subclass it to add a docstring and their ``settings()`` conversion.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from ops.core.settings import SettingField, setting_fields


class SettingsConfig(dg.Config):
    """Base of the derived configs: ``settings_values`` gives the values as the settings dataclass takes them."""

    def settings_values(self) -> dict[str, Any]:
        """Field values with choices as plain values and lists as tuples."""
        return {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in self.model_dump(mode="json").items()
        }


@functools.cache
def _choice_enum(settings_cls: type, name: str, choices: tuple[str, ...]) -> type[enum.Enum]:
    """One enum per settings field (Dagster config types are known by name, so each is built once)."""
    title = settings_cls.__name__ + "".join(part.title() for part in name.split("_"))
    return enum.Enum(title, {choice: choice for choice in choices}, type=str, module=__name__)


def _config_field(settings_cls: type, item: SettingField) -> tuple[Any, Any]:
    kind = item.item_type
    if item.choices is not None:
        kind = _choice_enum(settings_cls, item.name, tuple(item.choices))
    annotation = list[kind] if item.is_sequence else kind
    default = list(item.default) if item.is_sequence else item.default
    # Dagster's schema takes the plain default; validate_default turns it into the enum in the model.
    return annotation, Field(default=default, validate_default=True, description=item.help, **item.bounds)


def settings_config(
    settings_cls: type,
    names: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    base: type[SettingsConfig] = SettingsConfig,
) -> type[SettingsConfig]:
    """A ``Config`` class (subclass of ``base``) with the fields ``names`` of ``settings_cls`` (default: all but
    ``exclude``), in the dataclass's order."""
    wanted = set(names) if names is not None else None
    fields = {
        item.name: _config_field(settings_cls, item)
        for item in setting_fields(settings_cls)
        if (wanted is None or item.name in wanted) and item.name not in exclude
    }
    return create_model(f"{settings_cls.__name__}Fields", __base__=base, **fields)
