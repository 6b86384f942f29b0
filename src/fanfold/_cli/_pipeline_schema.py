"""The YAML pipeline's schema, checked at the edge: what a pipeline file may say, and the errors.

:class:`PipelineSpec` and its parts are frozen Pydantic models of a YAML pipeline (see
:mod:`fanfold._cli._pipeline`); :func:`explain` turns each validation error into one line that names
the file, the field path, the bad value and the fix. :func:`output_model` makes a Pydantic model
from an ``output:`` schema (a mapping of field -> type, or ``'module:Class'``), and
:func:`import_object` finds the Python object a ``module:attr`` names.
"""

from __future__ import annotations

import difflib
import importlib
import keyword
import re
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from fanfold._errors import UsageError


class PipelineError(UsageError):
    """A pipeline that cannot run: the message names the file, the field, the value and the fix."""


# -- the YAML schema --------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsSpec(_Spec):
    concurrency: Annotated[int, Field(ge=1)] | None = None
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[float, Field(gt=0)] | None = None
    input_tokens_per_minute: Annotated[float, Field(gt=0)] | None = None
    output_tokens_per_minute: Annotated[float, Field(gt=0)] | None = None


class BudgetSpec(_Spec):
    tokens: Annotated[int, Field(ge=0)] | None = None
    cost: Annotated[float, Field(ge=0)] | None = None
    requests: Annotated[int, Field(ge=0)] | None = None


class RetrySpec(_Spec):
    attempts: Annotated[int, Field(ge=1)] = 8
    initial: Annotated[float, Field(ge=0)] = 0.5
    max_delay: Annotated[float, Field(ge=0)] = 30.0
    timeout: Annotated[float, Field(gt=0)] | None = 600.0


class PriceSpec(_Spec):
    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]


class MapSpec(_Spec):
    type: Literal["map"]


class VoteSpec(_Spec):
    type: Literal["vote"]
    n: Annotated[int, Field(ge=1)] = 5
    by: str | None = None
    early_stop: bool = True


class MapReduceSpec(_Spec):
    type: Literal["map-reduce"]
    reduce: Annotated[str, Field(min_length=1)]
    fan_in: Annotated[int, Field(ge=2)] = 10
    output: str | dict[str, Any] | None = None


class MemberSpec(_Spec):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    description: str | None = None
    instructions: str | None = None
    output: str | dict[str, Any] | None = None
    model: str | None = None


class TeamSpec(_Spec):
    type: Literal["team"]
    members: Annotated[list[MemberSpec], Field(min_length=1)]
    merge: str | None = None
    mode: Literal["plan", "delegate"] = "plan"
    max_subtasks: Annotated[int, Field(ge=1)] = 100
    max_replans: Annotated[int, Field(ge=0)] = 2


PatternSpec = Annotated[MapSpec | VoteSpec | MapReduceSpec | TeamSpec, Field(discriminator="type")]


class PipelineSpec(_Spec):
    """A YAML pipeline, as parsed. See the module docstring."""

    model: str
    instructions: str | None = None
    prompt: str | None = None
    output: str | dict[str, Any] | None = None
    pattern: PatternSpec = MapSpec(type="map")
    key: str | None = None
    limits: LimitsSpec = LimitsSpec()
    budget: BudgetSpec | None = None
    retries: RetrySpec | None = None
    timeout: Annotated[float, Field(gt=0)] | None = None
    deadline: Annotated[float, Field(gt=0)] | None = None
    base_url: str | None = None
    price: PriceSpec | None = None
    max_row_bytes: Annotated[int, Field(ge=1)] | None = None
    name: str | None = None
    description: str | None = None

    @field_validator("model")
    @classmethod
    def _model_string(cls, value: str) -> str:
        provider, _, name = value.partition(":")
        if not provider or not name:
            raise ValueError("name the model as 'provider:model'")
        return value

    @field_validator("pattern", mode="before")
    @classmethod
    def _pattern_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("retries", mode="before")
    @classmethod
    def _retries_shorthand(cls, value: Any) -> Any:
        return {"attempts": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("prompt")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                list(string.Formatter().parse(value))
            except ValueError as exc:
                message = f"not a valid template ({exc}); write row fields as {{name}} and a brace as {{{{"
                raise ValueError(message) from None
        return value


# What to do about each field, for the error messages: by the last two names of the field's path
# ("price.output"), else by its last name ("output").
FIXES = {
    "model": "name the model as 'provider:model', e.g. 'openai:gpt-5-mini' or 'anthropic:claude-sonnet-4-5'",
    "n": "pass how many samples each row's vote draws, a whole number >= 1",
    "fan_in": "pass how many results one reducer call takes, a whole number >= 2",
    "reduce": "give the reducer's instructions: how to merge a list of the map step's results into one",
    "concurrency": "pass how many calls may run at once, a whole number >= 1",
    "attempts": "pass how many attempts each model request gets, a whole number >= 1 (1: no retry)",
    "deadline": "pass the seconds the whole run may take, > 0",
    "timeout": "pass seconds > 0",
    "max_row_bytes": "pass the largest row to read, in bytes >= 1 (default 4194304, 4 MiB)",
    "prompt": "write a template over each row's fields, e.g. 'Subject: {subject}\\n\\n{body}'",
    "type": "pass one of: map, vote, map-reduce, team",
    "output": "pass a mapping of field -> type (string, integer, number, boolean, list[string], [a, b, c], "
    "or a nested mapping), or a Pydantic model as 'module:Class'",
    "price.input": "pass the price in dollars per million input tokens, a number >= 0 (e.g. 0.25)",
    "price.output": "pass the price in dollars per million output tokens, a number >= 0 (e.g. 2.0)",
}
_PATTERN_TAGS = ("map", "vote", "map-reduce", "team")


def _fix_for(path: tuple[str | int, ...]) -> str | None:
    names = [p for p in path if isinstance(p, str)]
    for key in (".".join(names[-2:]), names[-1]) if names else ():
        if key in FIXES:
            return FIXES[key]
    return None


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def explain(error: Any, file: str) -> str:
    """One line for one Pydantic error: ``file: pattern.n: ... (got 0); pass ...``."""
    loc = tuple(error["loc"])
    tag = None
    if len(loc) >= 2 and loc[0] == "pattern" and loc[1] in _PATTERN_TAGS:
        tag, loc = str(loc[1]), (loc[0], *loc[2:])  # the union's tag is not part of the field's path
    kind, value = error["type"], error.get("input")
    path = _dotted(loc)
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1], tag)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{file}: {path}: unknown field; {hint}the fields here are: {', '.join(known)}"
    if kind == "missing":
        fix = _fix_for(loc)
        return f"{file}: {path}: required" + (f"; {fix}" if fix else "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        value = value.get("type") if isinstance(value, dict) else value
        return f"{file}: pattern.type: {short(value)} is not a pattern; pass one of: {', '.join(_PATTERN_TAGS)}"
    message = error["msg"].removeprefix("Value error, ")
    fix = _fix_for(loc)
    return f"{file}: {path}: {message} (got {short(value)})" + (f"; {fix}" if fix and fix not in message else "")


def _known_fields(loc: tuple[str | int, ...], tag: str | None) -> list[str]:
    """The fields of the mapping at ``loc`` (``tag``: the pattern's type, when under ``pattern``)."""
    if loc[:1] == ("pattern",):
        pattern: dict[str, type[BaseModel]] = {"map": MapSpec, "vote": VoteSpec, "map-reduce": MapReduceSpec,
                                               "team": TeamSpec}  # fmt: skip
        model: type[BaseModel] = MemberSpec if "members" in loc else pattern.get(tag or "map", MapSpec)
        return list(model.model_fields)
    model = PipelineSpec
    for part in loc:
        annotation = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        found = next((a for a in inner if issubclass(a, BaseModel)), None)
        if found is None:
            return []
        model = found
    return list(model.model_fields)


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- output schemas ---------------------------------------------------------------------------

_SCALARS: dict[str, type] = {
    "string": str,
    "str": str,
    "integer": int,
    "int": int,
    "number": float,
    "float": float,
    "boolean": bool,
    "bool": bool,
}
_LIST = re.compile(r"list\[\s*(\w+)\s*\]")


def output_model(schema: str | Mapping[str, Any], *, file: str, path: str, name: str = "Output") -> type[BaseModel]:
    """A Pydantic model from an output schema: a mapping of field -> type, or ``'module:Class'``.

    A type is ``string``, ``integer``, ``number`` or ``boolean``; ``list[<that>]``; a list of
    strings (one of them, an enum); a nested mapping (an object); or a list holding one mapping
    (a list of objects). A trailing ``?`` makes a field optional.
    """
    if isinstance(schema, str):
        found = import_object(schema, file=file, what=f"{path} (a Pydantic model)")
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise PipelineError(f"{file}: {path}: {schema!r} is {found!r}, not a Pydantic model; {FIXES['output']}")
        return found
    if not isinstance(schema, Mapping) or not schema:
        raise PipelineError(f"{file}: {path}: got {short(schema)}; {FIXES['output']}")
    fields: dict[str, Any] = {}
    for field_name, spec in schema.items():
        where = f"{path}.{field_name}"
        if not (isinstance(field_name, str) and field_name.isidentifier() and not field_name.startswith("_")):
            raise PipelineError(f"{file}: {where}: field names are letters, digits and '_', not starting with '_'")
        if keyword.iskeyword(field_name):
            raise PipelineError(f"{file}: {where}: {field_name!r} is a Python keyword; name the field otherwise")
        optional = isinstance(spec, str) and spec.strip().endswith("?")
        annotation = _field_type(spec.strip().removesuffix("?") if optional else spec, file, where, field_name)
        fields[field_name] = (annotation | None, None) if optional else (annotation, ...)
    model: type[BaseModel] = create_model(name, **fields)
    return model


def _field_type(spec: Any, file: str, where: str, field_name: str) -> Any:
    if isinstance(spec, str):
        text = spec.strip()
        listed = _LIST.fullmatch(text)
        scalar = _SCALARS.get(listed.group(1) if listed else text)
        if scalar is not None:
            return list[scalar] if listed else scalar  # type: ignore[valid-type]
    elif isinstance(spec, list) and len(spec) == 1 and isinstance(spec[0], Mapping):
        return list[output_model(spec[0], file=file, path=f"{where}[0]", name=field_name.title())]  # type: ignore[misc]
    elif isinstance(spec, list) and spec and all(isinstance(v, str) for v in spec):
        return Literal[tuple(spec)]
    elif isinstance(spec, list) and any(isinstance(v, bool) for v in spec):
        raise PipelineError(
            f"{file}: {where}: {short(spec)}: YAML reads yes, no, on and off as true and false; quote the "
            "allowed values: ['yes', 'no']"
        )
    elif isinstance(spec, Mapping):
        return output_model(spec, file=file, path=where, name=field_name.title())
    types = ", ".join(sorted({"string", "integer", "number", "boolean"}))
    raise PipelineError(
        f"{file}: {where}: {short(spec)} is not a type; pass one of {types}, list[string], a list of "
        "allowed strings [a, b, c], a nested mapping, or a list of one mapping (a list of objects)"
    )


# -- importing Python objects -----------------------------------------------------------------

_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_import_target(text: str) -> bool:
    """Whether ``text`` looks like ``module:attr`` (and so is not a file name)."""
    return _TARGET.fullmatch(text) is not None


def import_object(target: str, *, file: str = "", what: str = "pipeline") -> Any:
    """The object ``module:attr`` names; the working directory is searched first, as for ``python -m``."""
    where = f"{file}: " if file else ""
    if not is_import_target(target):
        raise PipelineError(f"{where}{what}: {target!r} is not 'module:attr'; name a Python object, e.g. 'jobs:grade'")
    module_name, attr = target.split(":", 1)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(
            f"{where}{what}: cannot import {module_name!r} for {target!r}: {type(exc).__name__}: {exc}; run from "
            "the directory that holds it, or add its directory to PYTHONPATH"
        ) from exc
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            public = sorted(n for n in dir(found) if n.isidentifier() and not n.startswith("_"))[:20]
            raise PipelineError(f"{where}{what}: {module_name!r} has no {attr!r}; it has: {', '.join(public)}")
        found = getattr(found, part)
    return found
