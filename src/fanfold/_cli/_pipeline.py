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
names the file, the field path, the bad value and the fix (the schema, its error messages and the
output types are in :mod:`fanfold._cli._pipeline_schema`). :meth:`Pipeline.build` then makes the
agents (a missing API key is named there, still before any call). A ``module:attr`` pipeline is a
Python object: an agent run on each row's value (any function or agent, ``ff.vote(...)``, ...),
``ff.map(agent)`` or ``ff.map_reduce(map=..., reduce=...)`` over the rows, or a function of no
arguments that returns one of those.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import string
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ValidationError

from fanfold._cli._pipeline_schema import (
    FIXES,
    BudgetSpec,
    LimitsSpec,
    MapReduceSpec,
    PipelineError,
    PipelineSpec,
    TeamSpec,
    VoteSpec,
    explain,
    import_object,
    is_import_target,
    output_model,
    short,
)
from fanfold._governor import RateLimit
from fanfold._limits import Limits
from fanfold._map_reduce import MapReduce
from fanfold._patterns import Map
from fanfold._policy import Collect, FailurePolicy
from fanfold._retry import RetryPolicy
from fanfold._usage import Budget, Price
from fanfold._vote import as_hashable

PROVIDERS = ("openai", "openai-chat", "openai-responses", "anthropic", "google-gla", "google-vertex", "groq",
             "mistral", "bedrock", "cohere", "deepseek", "grok", "openrouter", "huggingface")  # fmt: skip
"""Provider prefixes a ``--rpm`` for a Python pipeline applies to (its models are not known here)."""


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
        lines = [explain(error, file) for error in exc.errors()]
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
            raise PipelineError(f"{file}: {where}.model: {m.model!r}; {FIXES['model']}")
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


def check_model(model: str, where: str) -> None:
    """A model whose provider pydantic-ai does not know (or cannot load) would fail every row:
    say so now, naming it and the fix."""
    from pydantic_ai.models import parse_model_id
    from pydantic_ai.providers import infer_provider_class

    provider, _ = parse_model_id(model)
    try:
        if provider is None:
            raise ValueError(model)
        infer_provider_class(provider)
    except ValueError:
        raise PipelineError(
            f"{where} {model!r}: unknown provider {model.partition(':')[0]!r}; {FIXES['model']} (for an "
            "OpenAI-compatible server: 'openai-chat:MODEL' with --base-url)"
        ) from None
    except ImportError as exc:
        raise PipelineError(f"{where} {model!r}: {exc}") from None


def check_base_url(url: str, where: str) -> None:
    """A base URL fanfold can call: http(s), a host, and no credentials (a key in a URL ends up
    in logs and run records; it belongs in the provider's key variable)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as exc:
        raise PipelineError(f"{where} {url!r}: not a valid URL ({exc}); pass e.g. http://127.0.0.1:8765/v1") from None
    if parts.username is not None or parts.password is not None:
        shown = urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
        raise PipelineError(
            f"{where} {shown!r}: holds credentials; leave them out of the URL and set the API key in the provider's "
            "environment variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PipelineError(
            f"{where} {url!r}: pass an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765/v1"
        )


def _build_yaml(pipeline: Pipeline, spec: PipelineSpec, o: Overrides) -> Built:
    from fanfold._llm._agent import llm
    from fanfold._llm._model_call import PROVIDER_RETRY
    from fanfold._vote import vote

    model = o.model or spec.model
    check_model(model, "--model" if o.model else f"{pipeline.source}: model:")
    if isinstance(spec.pattern, TeamSpec):
        for i, m in enumerate(spec.pattern.members):
            if m.model and not o.model:
                check_model(m.model, f"{pipeline.source}: pattern.members[{i}].model:")
    base_url = o.base_url or spec.base_url
    if base_url is not None:
        check_base_url(base_url, "--base-url" if o.base_url else f"{pipeline.source}: base_url:")
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
                     key=None if by is None else (lambda answer: as_hashable(getattr(answer, by))))  # fmt: skip
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
    from fanfold._llm._agent import llm
    from fanfold._teams._plan import TeamCaps
    from fanfold._teams._team import member, team

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

    @property
    def fields(self) -> list[str]:
        """The row fields the template uses (``{a.b}`` and ``{a[0]}`` use ``a``)."""
        names = [name for _, name, _, _ in string.Formatter().parse(self.text) if name]
        return list(dict.fromkeys(re.split(r"[.\[]", name, maxsplit=1)[0] for name in names))

    def __call__(self, row: Any) -> str:
        if not isinstance(row, Mapping):
            raise TypeError(f"the prompt template needs each row to be an object with fields; got {short(row)}")
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
