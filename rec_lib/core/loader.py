"""Loading a config: a YAML file (which may extend a base file: `extends: base.yaml`), then
`key=value` settings, into a job's config class, strictly: an unknown key (a typo) or a missing one
stops the job with a message that names it, before any Spark work starts.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Type, TypeVar

import yaml

from rec_lib.core.errors import ConfigError
from rec_lib.core.sections import KNOWN_SECTIONS, SECTION_CLASSES

C = TypeVar("C")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


# a dotted key, then "=": each part starts with a letter or "_" and may hold hyphens after it, so a
# column name can be a part (train.attribute_types.Year-Of-Publication=numeric)
_SETTING_START = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*=")
_OPENERS, _CLOSERS = "[{", "]}"


def split_settings(text: str) -> List[str]:
    """One string of space-separated `key=value` settings (a --set argument, SET, a job parameter)
    -> the settings. A space outside quotes and brackets ends a setting, so YAML values may hold
    spaces inside them: `evaluate.ks=[0, 1] run.note="a b"` is two settings.
    As in YAML, a quote opens only where a value or a list item starts (`it's` is plain text)."""
    out: List[str] = []
    depth, quote, prev = 0, "", " "
    for piece in re.split(r"(\s+)", text.strip()):
        if not piece:
            continue
        inside = depth > 0 or bool(quote)
        if piece.isspace() or inside:
            out[-1] += piece
        elif _SETTING_START.match(piece):
            out.append(piece)
        else:
            raise ConfigError(f"setting {piece!r} is not of the form key=value (e.g. demo.seed=7; "
                              'quote a value that holds spaces: key="a b")')
        for ch in piece:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"" and (prev.isspace() or prev in "=[{,:"):
                quote = ch
            elif ch in _OPENERS:
                depth += 1
            elif ch in _CLOSERS:
                depth = max(depth - 1, 0)
            prev = ch
    return [setting.rstrip() for setting in out]


def parse_overrides(settings: Sequence[str]) -> Dict[str, Any]:
    """`["a.b=1", "c=x"]` -> `{"a.b": 1, "c": "x"}`; values are parsed as YAML scalars."""
    parsed: Dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"setting {setting!r} is not of the form key=value (e.g. demo.seed=7)")
        try:
            parsed[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"setting {setting!r}: the value is not valid YAML ({exc.problem or exc})") from exc
    return parsed


def _apply_override(tree: Dict[str, Any], dotted: str, value: Any, source: str) -> None:
    node = tree
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"unknown config key {dotted!r} (no section {where!r} in {source})")
        node = node[part]
    node[parts[-1]] = value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` (from YAML or a --set string) as the type `hint` of config key `key`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(value, [a for a in args if a is not type(None)][0], key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (dict, Dict):
        return _coerce_mapping(value, args[1], key)
    if origin in (list, List):
        return _coerce_list(value, args[0], key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint in (int, float):
        return _coerce_number(value, hint, key)
    if hint is str:
        if value is None:
            raise ConfigError(f"config key {key!r} must be text, got nothing")
        if isinstance(value, bool):  # YAML reads yes/no/on/off/true/false as booleans: the text is gone
            raise ConfigError(f"config key {key!r} must be text, got the YAML boolean {str(value).lower()}; "
                              f"quote the value to mean the word ({key}=\"yes\")")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key!r}")


def _coerce_mapping(value: Any, value_hint: Any, key: str) -> Dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
    return {str(k): _coerce(v, value_hint, f"{key}.{k}") for k, v in value.items()}


def _coerce_list(value: Any, element_hint: Any, key: str) -> List[Any]:
    if value is None:
        value = []
    if isinstance(value, str):  # --set key=a,b,c
        value = [v for v in value.split(",") if v]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
    return [_coerce(v, element_hint, f"{key}[]") for v in value]


def _coerce_number(value: Any, hint: type, key: str) -> Any:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text: accept it as a number
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
    if hint is int and float(value) != int(value):
        raise ConfigError(f"config key {key!r} must be a whole number, got {value!r}")
    return hint(value)


def _build(cls: Type[C], data: Any, prefix: str) -> C:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix or '<root>'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    dotted = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: k)
    if not prefix:
        unknown = set(data) - set(KNOWN_SECTIONS)
    else:
        unknown = set(data) - set(names)
    if unknown:
        known = sorted(KNOWN_SECTIONS) if not prefix else names
        raise ConfigError(f"unknown config key {dotted(sorted(unknown)[0])!r}; known here: {known}")
    # a key added after a release has a default, so a config file written before it still loads
    optional = {f.name for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    missing = [n for n in names if n not in data and n not in optional]
    if missing:
        raise ConfigError(f"missing config key {dotted(missing[0])!r}")
    return cls(**{n: _coerce(data[n], hints[n], dotted(n)) for n in names if n in data})


def _serve_what_the_gate_passed(tree: Dict[str, Any]) -> None:
    """score.serve, where the config does not set it, is champion when evaluate.gate names baselines
    (a gate whose decision scoring ignored would be no gate), else latest (ScoreSection's default)."""
    score, evaluate = tree.get("score"), tree.get("evaluate")
    if isinstance(score, dict) and "serve" not in score and isinstance(evaluate, dict) and evaluate.get("gate"):
        score["serve"] = "champion"


EXTENDS = "extends"  # a file's top-level key naming the file it overlays, relative to it


def merged(base: Dict[str, Any], overlay: Dict[str, Any]) -> Dict[str, Any]:
    """`overlay` on `base`: mappings merge key by key (recursively), anything else the overlay
    sets replaces the base's value."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _yaml_file(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (e.g. --conf-file conf/local.yaml)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must be a mapping of sections, got {type(tree).__name__}")
    return tree


def read_tree(conf_file: str | Path) -> Dict[str, Any]:
    """The YAML file as one tree: where it names a base (`extends: base.yaml`, relative to the file),
    the base's tree (itself read the same way) with this file's values on it."""
    path, seen, chain = Path(conf_file), [], []
    while True:
        if path.resolve() in seen:
            raise ConfigError(f"config file {str(path)!r} extends itself: {' -> '.join(map(str, seen + [path.resolve()]))}")
        seen.append(path.resolve())
        tree = _yaml_file(path)
        chain.append(tree)
        base = tree.pop(EXTENDS, None)
        if base is None:
            break
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{str(path)!r}: {EXTENDS} must name a YAML file, got {base!r}")
        path = path.parent / base
    out: Dict[str, Any] = {}
    for tree in reversed(chain):
        out = merged(out, tree)
    return out


def _mapping_defaults(tree: Dict[str, Any]) -> None:
    """Put, in each section the tree holds, the default of every mapping key the file leaves out
    (`input.max_quarantine_share`): a setting can then change one entry of it
    (`input.max_quarantine_share.items=0.9`) and the others keep their defaults, as when the file
    spelled the mapping out. Every known section, not only the job's: settings shared by several
    jobs reach sections a job does not read."""
    for name, section in SECTION_CLASSES.items():
        body = tree.get(name)
        if not isinstance(body, dict):
            continue
        for f in dataclasses.fields(section):
            if f.name not in body and f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
                if isinstance(default, dict):
                    body[f.name] = default


def load_config(cls: Type[C], conf_file: str | Path, settings: Sequence[str] = ()) -> C:
    """Load `cls` from a YAML file (with the files it extends), then apply `key=value` settings;
    validate and return it."""
    path = Path(conf_file)
    tree = read_tree(path)
    _mapping_defaults(tree)
    for key, value in parse_overrides(settings).items():
        _apply_override(tree, key, value, str(path))
    _serve_what_the_gate_passed(tree)
    config = _build(cls, tree, "")
    validate = getattr(config, "validate", None)
    return validate() if validate else config


def replace(config: C, **sections: Any) -> C:
    """A copy of a frozen config with some sections replaced (handy in tests)."""
    return dataclasses.replace(config, **sections)


