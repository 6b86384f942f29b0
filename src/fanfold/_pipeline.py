"""Batch pipelines for ``fanfold run``: a YAML file, or a Python object named ``module:attr``.

A YAML pipeline names a model, its instructions, a prompt template over each row's fields, the
output schema, the pattern that runs on each row (``map``, ``vote``, ``map-reduce``, or
``team``: the pipeline's agent leads members of its own) and the run's limits, budget, retries
and deadline::

    model: openai:gpt-5-mini
    instructions: Classify the support ticket.
    prompt: "Subject: {subject}\\n\\n{body}"
    output: {category: [billing, bug, account, other], urgent: boolean, summary: string}
    pattern: {type: vote, n: 3, by: category}
    limits: {concurrency: 32, requests_per_minute: 500}
    budget: {cost: 2.50}

:func:`load_pipeline` checks all of it before any call (the schema is Pydantic, at the edge) and
names the file, the field path, the bad value and the fix. :meth:`Pipeline.build` then makes the
agents (a missing API key is named there, still before any call). A ``module:attr`` pipeline is a
Python object: an agent run on each row's value (any function or agent, ``ff.vote(...)``, ...),
``ff.map(agent)`` or ``ff.map_reduce(map=..., reduce=...)`` over the rows, or a function of no
arguments that returns one of those.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import keyword
import re
import string
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from fanfold._errors import UsageError
from fanfold._governor import RateLimit
from fanfold._limits import Limits
from fanfold._map_reduce import MapReduce
from fanfold._patterns import Map
from fanfold._policy import Collect, FailurePolicy
from fanfold._retry import RetryPolicy
from fanfold._usage import Budget, Price

PROVIDERS = ("openai", "openai-chat", "openai-responses", "anthropic", "google-gla", "google-vertex", "groq",
             "mistral", "bedrock", "cohere", "deepseek", "grok", "openrouter", "huggingface")  # fmt: skip
"""Provider prefixes a ``--rpm`` for a Python pipeline applies to (its models are not known here)."""


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


# What to do about each field, for the error messages (the last element of the field's path).
_FIXES = {
    "model": "name the model as 'provider:model', e.g. 'openai:gpt-5-mini' or 'anthropic:claude-sonnet-4-5'",
    "n": "pass how many samples each row's vote draws, a whole number >= 1",
    "fan_in": "pass how many results one reducer call takes, a whole number >= 2",
    "reduce": "give the reducer's instructions: how to merge a list of the map step's results into one",
    "concurrency": "pass how many calls may run at once, a whole number >= 1",
    "attempts": "pass how many attempts each model request gets, a whole number >= 1 (1: no retry)",
    "deadline": "pass the seconds the whole run may take, > 0",
    "timeout": "pass seconds > 0",
    "prompt": "write a template over each row's fields, e.g. 'Subject: {subject}\\n\\n{body}'",
    "type": "pass one of: map, vote, map-reduce, team",
    "output": "pass a mapping of field -> type (string, integer, number, boolean, list[string], [a, b, c], "
    "or a nested mapping), or a Pydantic model as 'module:Class'",
}
_PATTERN_TAGS = ("map", "vote", "map-reduce", "team")


def _fix_for(path: tuple[str | int, ...]) -> str | None:
    names = [p for p in path if isinstance(p, str)]
    return _FIXES.get(names[-1]) if names else None


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _explain(error: Any, file: str) -> str:
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
        return f"{file}: pattern.type: {_short(value)} is not a pattern; pass one of: {', '.join(_PATTERN_TAGS)}"
    message = error["msg"].removeprefix("Value error, ")
    fix = _fix_for(loc)
    return f"{file}: {path}: {message} (got {_short(value)})" + (f"; {fix}" if fix and fix not in message else "")


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


def _short(value: Any, limit: int = 60) -> str:
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
            raise PipelineError(f"{file}: {path}: {schema!r} is {found!r}, not a Pydantic model; {_FIXES['output']}")
        return found
    if not isinstance(schema, Mapping) or not schema:
        raise PipelineError(f"{file}: {path}: got {_short(schema)}; {_FIXES['output']}")
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
            f"{file}: {where}: {_short(spec)}: YAML reads yes, no, on and off as true and false; quote the "
            "allowed values: ['yes', 'no']"
        )
    elif isinstance(spec, Mapping):
        return output_model(spec, file=file, path=where, name=field_name.title())
    types = ", ".join(sorted({"string", "integer", "number", "boolean"}))
    raise PipelineError(
        f"{file}: {where}: {_short(spec)} is not a type; pass one of {types}, list[string], a list of "
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


# -- pipelines --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """What the command line changes in a pipeline. ``api_key`` comes only from code (the demo's
    simulator); it is never a flag, never saved and never printed."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    price: Price | None = None
    concurrency: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    budget_tokens: int | None = None
    budget_cost: float | None = None
    budget_requests: int | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """A pipeline made runnable: the agent run on each row, and the run's options.

    ``prepare`` turns a row's value into the agent's input (a YAML pipeline's prompt template);
    it raises ``ValueError`` or ``TypeError`` naming what the row lacks. ``reducer`` is set for
    map-reduce. ``finish`` turns the agent's value into the row's (a team's: answer and missing).
    """

    agent: Any
    prepare: Callable[[Any], Any] | None = None
    key: Callable[[Any], Hashable] | None = None
    key_field: str | None = None
    policy: FailurePolicy = dataclasses.field(default_factory=Collect)
    timeout: float | None = None
    reducer: Any = None
    fan_in: int = 10
    finish: Callable[[Any], Any] | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    retry: RetryPolicy | None = None
    budget: Budget | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A loaded pipeline: a checked YAML spec, or a Python object. Nothing is called yet."""

    source: str
    spec: PipelineSpec | None = None
    output_type: Any = str
    reduce_type: Any = str
    obj: Any = None
    member_types: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.spec is not None and self.spec.name:
            return self.spec.name
        return self.source if self.spec is None else Path(self.source).stem

    @property
    def pattern(self) -> str:
        return "python" if self.spec is None else self.spec.pattern.type

    def build(self, overrides: Overrides | None = None) -> Built:
        """The runnable pipeline. Raises :class:`~fanfold.UsageError` (naming the variable) when a
        model's API key is missing."""
        o = overrides or Overrides()
        if self.spec is None:
            return _build_python(self, o)
        return _build_yaml(self, self.spec, o)


def load_pipeline(source: str | Path) -> Pipeline:
    """Load and check a pipeline: a YAML file, or a Python object as ``module:attr``."""
    text = str(source)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return _load_yaml(path)
    if is_import_target(text):
        obj = import_object(text)
        if _is_factory(obj):
            obj = obj()
        return Pipeline(text, obj=obj)
    raise PipelineError(
        f"pipeline {text!r}: no such file; pass a YAML pipeline (pipeline.yaml) or a Python object as module:attr"
    )


def _load_yaml(path: Path) -> Pipeline:
    file = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"pipeline {file!r}: no such file; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"pipeline {file!r}: cannot read it: {exc}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineError(f"{file}{at}: not valid YAML: {problem}; fix the syntax there") from exc
    if not isinstance(data, dict):
        raise PipelineError(
            f"{file}: a pipeline is a YAML mapping with at least 'model:' (and instructions, prompt, output, "
            f"pattern, limits, ...); got {type(data).__name__}"
        )
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        lines = [_explain(error, file) for error in exc.errors()]
        raise PipelineError("\n".join(lines)) from None
    member_types: dict[str, Any] = {}
    if isinstance(spec.pattern, TeamSpec):
        member_types = _check_team(spec.pattern, file)
    if isinstance(spec.pattern, MapReduceSpec):
        for name in ("key", "timeout"):
            if getattr(spec, name) is not None:
                raise PipelineError(
                    f"{file}: {name}: not supported with pattern map-reduce yet (its map step takes no {name}); "
                    "leave it out, or use pattern map"
                )
    output_type: Any = str if spec.output is None else output_model(spec.output, file=file, path="output")
    reduce_type: Any = str
    if isinstance(spec.pattern, MapReduceSpec) and spec.pattern.output is not None:
        reduce_type = output_model(spec.pattern.output, file=file, path="pattern.output", name="Reduction")
    if isinstance(spec.pattern, VoteSpec) and spec.pattern.by is not None:
        fields = list(getattr(output_type, "model_fields", {}))
        if spec.pattern.by not in fields:
            raise PipelineError(
                f"{file}: pattern.by: {spec.pattern.by!r} is not a field of the output; pass one of: "
                f"{', '.join(fields) or '(none: give the pipeline an output schema first)'}"
            )
    return Pipeline(file, spec, output_type, reduce_type, member_types=member_types)


def _check_team(team: TeamSpec, file: str) -> dict[str, Any]:
    """Each member's output type, by name; names are unique and ``merge`` names a way or a member."""
    types: dict[str, Any] = {}
    for i, m in enumerate(team.members):
        where = f"pattern.members[{i}]"
        if m.name in types:
            raise PipelineError(f"{file}: {where}.name: {m.name!r} names two members; give each its own name")
        if m.model is not None and ":" not in m.model.strip(":"):
            raise PipelineError(f"{file}: {where}.model: {m.model!r}; {_FIXES['model']}")
        types[m.name] = str if m.output is None else output_model(m.output, file=file, path=f"{where}.output")
    merges = ("concat", "vote", "leader", *types)
    if team.merge is not None and team.merge not in merges:
        raise PipelineError(f"{file}: pattern.merge: {team.merge!r}; pass one of: {', '.join(merges)}")
    return types


def _is_factory(obj: Any) -> bool:
    """A plain function that takes no argument builds the pipeline (an agent takes the row)."""
    if not inspect.isfunction(obj):
        return False
    required = [
        p
        for p in inspect.signature(obj).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def _limits(spec_limits: LimitsSpec | None, o: Overrides, resources: tuple[str, ...]) -> Limits:
    s = spec_limits or LimitsSpec()
    rates = {
        "requests_per_minute": o.requests_per_minute or s.requests_per_minute,
        "tokens_per_minute": o.tokens_per_minute or s.tokens_per_minute,
        "input_tokens_per_minute": s.input_tokens_per_minute,
        "output_tokens_per_minute": s.output_tokens_per_minute,
    }
    limit = RateLimit(**rates) if any(v is not None for v in rates.values()) else None  # type: ignore[arg-type]
    concurrency = o.concurrency or s.concurrency or Limits().concurrency
    return Limits(concurrency=concurrency, resources=dict.fromkeys(resources, limit) if limit else {})


def _budget(spec_budget: BudgetSpec | None, o: Overrides) -> Budget | None:
    s = spec_budget or BudgetSpec()
    tokens = o.budget_tokens if o.budget_tokens is not None else s.tokens
    cost = o.budget_cost if o.budget_cost is not None else s.cost
    requests = o.budget_requests if o.budget_requests is not None else s.requests
    if tokens is None and cost is None and requests is None:
        return None
    return Budget(tokens=tokens, cost=cost, requests=requests)


def _build_yaml(pipeline: Pipeline, spec: PipelineSpec, o: Overrides) -> Built:
    from fanfold._calls import PROVIDER_RETRY
    from fanfold._llm import llm
    from fanfold._vote import vote

    model = o.model or spec.model
    retry = None
    if spec.retries is not None:
        r = spec.retries
        retry = RetryPolicy(
            retry_on=PROVIDER_RETRY.retry_on, attempts=r.attempts, initial=r.initial, max_delay=r.max_delay,
            timeout=r.timeout,
        )  # fmt: skip
    price = o.price or (Price(input=spec.price.input, output=spec.price.output) if spec.price else None)
    common: dict[str, Any] = {
        "base_url": o.base_url or spec.base_url,
        "api_key": o.api_key,
        "price": price,
        "retry": retry,
    }
    agent: Any = llm(model, name=pipeline.name, instructions=spec.instructions, output_type=pipeline.output_type,
                     **common)  # fmt: skip
    pattern = spec.pattern
    reducer = None
    fan_in = 10
    if isinstance(pattern, VoteSpec):
        by = pattern.by
        agent = vote(agent, n=pattern.n, early_stop=pattern.early_stop,
                     key=None if by is None else (lambda answer: _hashable(getattr(answer, by))))  # fmt: skip
    elif isinstance(pattern, MapReduceSpec):
        reducer = llm(model, name=f"{pipeline.name}-reduce", instructions=pattern.reduce,
                      output_type=pipeline.reduce_type, prompt=_reduce_prompt, **common)  # fmt: skip
        fan_in = pattern.fan_in
    elif isinstance(pattern, TeamSpec):
        agent = _team(pipeline, pattern, agent, common, o)
    models = {model} | {m.model for m in pattern.members if m.model} if isinstance(pattern, TeamSpec) else {model}
    resources = tuple(sorted(models | {m.split(":", 1)[0] for m in models}))
    return Built(
        agent=agent,
        finish=_team_value if isinstance(pattern, TeamSpec) else None,
        prepare=None if spec.prompt is None else Template(spec.prompt),
        key_field=spec.key,
        timeout=spec.timeout,
        reducer=reducer,
        fan_in=fan_in,
        limits=_limits(spec.limits, o, resources),
        budget=_budget(spec.budget, o),
        deadline=o.deadline or spec.deadline,
    )


def _team(pipeline: Pipeline, spec: TeamSpec, leader: Any, common: dict[str, Any], o: Overrides) -> Any:
    """The pipeline's LLM agent leads (its output is the answer's type); each member is an LLM
    agent of its own, on the pipeline's model unless it names one (``--model`` replaces both)."""
    from fanfold._llm import llm
    from fanfold._plan import TeamCaps
    from fanfold._team import member, team

    crew = []
    for m in spec.members:
        agent = llm(o.model or m.model or leader_model(pipeline), name=m.name, instructions=m.instructions,
                    output_type=pipeline.member_types[m.name], **common)  # fmt: skip
        crew.append(member(agent, name=m.name, description=m.description))
    caps = TeamCaps(max_subtasks=spec.max_subtasks, max_replans=spec.max_replans)
    return team(leader, crew, merge=spec.merge, caps=caps, mode=spec.mode, name=pipeline.name)


def leader_model(pipeline: Pipeline) -> str:
    assert pipeline.spec is not None
    return pipeline.spec.model


def _team_value(result: Any) -> dict[str, Any]:
    """A team's row value: its answer, and the parts that are missing from it (by subtask run)."""
    return {"answer": result.answer, "missing": dict(result.missing)}


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _reduce_prompt(parts: list[Any]) -> str:
    """A reducer's prompt: the results it merges, as a JSON list (models as their fields)."""
    return json.dumps([p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts])


def _build_python(pipeline: Pipeline, o: Overrides) -> Built:
    for flag, value in (("--model", o.model), ("--base-url", o.base_url)):
        if value is not None:
            raise PipelineError(
                f"{flag} applies to YAML pipelines; {pipeline.source} is a Python object: choose its model in its code"
            )
    obj = pipeline.obj
    limits = _limits(None, o, PROVIDERS)
    options: dict[str, Any] = {"limits": limits, "budget": _budget(None, o), "deadline": o.deadline}
    if isinstance(obj, Map):
        return Built(agent=obj.agent, key=obj.key, policy=obj.policy, timeout=obj.timeout, **options)
    if isinstance(obj, MapReduce):
        if obj.split is not None:
            raise PipelineError(
                f"{pipeline.source}: a map_reduce over the rows takes the rows as its parts; leave out split="
            )
        return Built(agent=obj.mapper, reducer=obj.reducer, fan_in=obj.fan_in, policy=obj.policy, **options)
    from fanfold._agent import as_agent

    return Built(agent=as_agent(obj, pipeline.source), **options)


class _JSONFields(string.Formatter):
    """Formats a row's fields into a prompt: strings as they are, anything else as JSON."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, str) or format_spec:
            return format(value, format_spec)
        return json.dumps(value, ensure_ascii=False)


class Template:
    """A prompt template over a row's fields: ``Template("Subject: {subject}")(row)``.

    >>> Template("{title}: {tags}")({"title": "Tea", "tags": ["hot", "green"]})
    'Tea: ["hot", "green"]'
    """

    _formatter = _JSONFields()

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, row: Any) -> str:
        if not isinstance(row, Mapping):
            raise TypeError(f"the prompt template needs each row to be an object with fields; got {_short(row)}")
        try:
            text: str = self._formatter.vformat(self.text, (), row)
        except (KeyError, IndexError, AttributeError) as exc:
            field = exc.args[0] if exc.args else exc
            raise ValueError(
                f"the prompt uses {{{field}}}, which the row lacks; the row has: {', '.join(map(str, row)) or 'none'}"
            ) from None
        return text

    def __repr__(self) -> str:
        return f"Template({self.text!r})"
