"""Experiment configs are small frozen dataclasses; ``--set key=value`` overrides are type-checked.

An unknown key or a value of the wrong type raises ``ConfigError`` with one line that lists what is
valid, which the command line turns into exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing


class ConfigError(ValueError):
    """A bad ``--set`` override: unknown key or a value that does not fit the field's type."""


# The longest --set value taken (Linux's longest path): a longer one is a mistake, refused without echoing it.
MAX_VALUE_CHARACTERS = 4_096
# Sane bounds (inclusive) for keys the experiments share: a value outside is a typo (an extra zero) that
# would start a run of months or a model that cannot fit in memory, refused before anything runs. A
# Config adds or overrides bounds for its own keys in a `BOUNDS` class attribute; any other integer key
# must stay within +-INTEGER_LIMIT.
WIDTH = (1, 100_000)
BOUNDS = {
    "epochs": (1, 100_000), "anomaly_epochs": (1, 100_000), "episodes": (1, 10_000_000),
    "batch_size": (1, 1_000_000), "steps_per_execution": (1, 100_000),
    "hidden_units": WIDTH, "recurrent_units": WIDTH, "dense_units": WIDTH, "embedding_dim": WIDTH, "noise_dim": WIDTH,
    "code_size": WIDTH, "filters": WIDTH, "conv_filters": WIDTH, "base_filters": WIDTH, "generator_filters": WIDTH,
    "discriminator_filters": WIDTH, "attention_heads": (1, 1_000), "layers": (1, 1_000), "hidden_layers": (1, 1_000),
    "depth": (1, 100),
}
INTEGER_LIMIT = 1_000_000_000
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
NOT_FINITE = "expected a finite number"


def describe_type(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return f"comma-separated {describe_type(typing.get_args(annotation)[0])}s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else describe_type(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + "/".join(str(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def parse_value(text: str, annotation):
    """Parse ``text`` into ``annotation``; raise ValueError with a short reason when it does not fit."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and text.strip().lower() in {"none", "null", ""}:
            return None
        reasons = []
        for option in options:
            if option is type(None):
                continue
            try:
                return parse_value(text, option)
            except ValueError as error:
                reasons.append(str(error))
        # 'nan' for a `float | None` field is a number, just not a usable one: say that, not only the type.
        if NOT_FINITE in reasons:
            raise ValueError(NOT_FINITE)
        raise ValueError(f"expected {describe_type(annotation)}")
    if origin is typing.Literal:
        for allowed in typing.get_args(annotation):
            if text == str(allowed):
                return allowed
        raise ValueError(f"expected {describe_type(annotation)}")
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        parts = [part for part in text.replace(" ", "").strip("[]()").split(",") if part]
        return tuple(parse_value(part, item_type) for part in parts)
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false")
    if annotation is int:
        # int() also reads other scripts' digits ('٣' is 3): a value typed here is ASCII or a mistake.
        try:
            if not text.isascii():
                raise ValueError
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if annotation is float:
        return parse_finite_float(text)
    if annotation is str:
        return text
    raise ValueError(f"unsupported field type {annotation!r}")


def parse_finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite. float() accepts 'nan', 'inf', 'infinity' and '1e999',
    and the configs' checks cannot catch them: NaN passes `learning_rate <= 0` (every comparison with
    NaN is false) and inf passes `l2 >= 0`, so the run would train on garbage."""
    try:
        if not text.isascii():
            raise ValueError
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError(NOT_FINITE)
    return value


def field_types(config_class) -> dict[str, object]:
    hints = typing.get_type_hints(config_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_class)}


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def bounds_of(config_class) -> dict[str, tuple]:
    return {**BOUNDS, **getattr(config_class, "BOUNDS", {})}


def check_bounds(key: str, value, bounds: dict[str, tuple]) -> None:
    """Raise ConfigError naming the key when an integer value lies outside its bounds."""
    if isinstance(value, tuple):  # Layer widths as a list: each one bounded.
        for item in value:
            check_bounds(key, item, bounds)
        return
    if isinstance(value, bool) or not isinstance(value, int):
        return
    low, high = bounds.get(key, (-INTEGER_LIMIT, INTEGER_LIMIT))
    if not low <= value <= high:
        raise ConfigError(f"{key} must be between {low:,} and {high:,}, got {value:,}")


def apply_overrides(config, overrides: dict[str, str]):
    """Return a copy of ``config`` with string overrides parsed against the dataclass field types."""
    types_by_name = field_types(type(config))
    valid = ", ".join(types_by_name)
    bounds = bounds_of(type(config))
    parsed = {}
    for key, text in overrides.items():
        if key not in types_by_name:
            raise ConfigError(f"unknown config key '{_shorten(key)}'; valid keys: {valid}")
        if not isinstance(text, str):  # A Python value (the API, tests): parsed as its text would be.
            text = str(text).lower() if isinstance(text, bool) else str(text)
        if len(text) > MAX_VALUE_CHARACTERS:
            raise ConfigError(f"the value for '{key}' is {len(text):,} characters long (at most "
                              f"{MAX_VALUE_CHARACTERS:,}); not a setting - check the command line")
        try:
            parsed[key] = parse_value(text, types_by_name[key])
        except ValueError as error:
            expected = describe_type(types_by_name[key])
            # "expected an integer" already says int; "comma-separated ints" or a choice adds something.
            hint = "" if expected in ("int", "float", "bool", "str") or str(error) == f"expected {expected}" \
                else f"; expected {expected}"
            if "=" in text:  # 'epochs=2,learning_rate=0.1': two settings in one.
                hint += "; several settings: one --set per key=value, or separate them with spaces"
            raise ConfigError(f"bad value for '{key}': {_shorten(repr(text))} ({error}{hint})") from None
        check_bounds(key, parsed[key], bounds)
    config = dataclasses.replace(config, **parsed)
    # Configs may check their own invariants (positive epochs, known optimizer...).
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as error:
            # A config's own check may list several keys: name the ones this command set.
            which = f" (--set {', '.join(f'{key}={parsed[key]}' for key in parsed)})" if parsed else ""
            raise ConfigError(f"{error}{which}") from None
    return config


def shown(value) -> str:
    """A config value as the user would type it in --set (tuples comma-separated, booleans lower case)."""
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_table(configs: dict[str, object]) -> list[tuple[str, str, str, str]]:
    """For each field of the variants' configs (variant name -> config): its name, its type, the value most
    variants use, and the variants that depart from it ("fc_sgd: 0.01, fc_adam: 0.0001"), as text."""
    config_class = type(next(iter(configs.values())))
    types_by_name = field_types(config_class)
    rows = []
    for field in dataclasses.fields(config_class):
        values = [getattr(config, field.name) for config in configs.values()]
        default = max(values, key=values.count)
        others = ", ".join(f"{name}: {shown(getattr(config, field.name))}" for name, config in configs.items()
                           if getattr(config, field.name) != default)
        rows.append((field.name, describe_type(types_by_name[field.name]), shown(default), others))
    return rows


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """Turn ``["epochs=3", "learning_rate=0.1 batch_size=32"]`` into a dict, checking the form."""
    overrides: dict[str, str] = {}
    for assignment in assignments:
        for item in assignment.split():
            key, separator, value = item.partition("=")
            if not separator or not key:
                raise ConfigError(f"bad override '{item}': expected key=value, e.g. epochs=3")
            overrides[key.strip()] = value.strip()
    return overrides


def to_json(config) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)
