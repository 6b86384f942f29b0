"""MkDocs hook: the reference pages that are generated from the code at build time.

A page asks for a generated section with a marker line, replaced when the site is built:

- ``<!-- generated: cli -->``: every ``fanfold`` command, from the typer app's command definitions;
- ``<!-- generated: pipeline-schema -->``: every field of a YAML pipeline, from the Pydantic models
  of ``fanfold._cli._pipeline_schema``;
- ``<!-- generated: errors -->``: every public exception, from its class and docstring, with its fix;
- ``<!-- generated: events -->``: every event in ``fanfold.events``, from its dataclass.

Nothing here is copied by hand from the code, so the pages cannot drift from it; the few words
the code does not hold (an error's fix, when an event is emitted, what a schema field means)
are in dicts below, and ``tests/docs/test_reference.py`` checks each dict covers every name.

>>> "fanfold run" in cli_markdown()
True
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", flags=re.M)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` line with the section it names."""
    return MARKER.sub(lambda match: GENERATORS[match.group(1)](), markdown)


# -- the command line -------------------------------------------------------------------------


def cli_markdown() -> str:
    """Every command of ``fanfold``: its usage, its help, and a table of its arguments and options."""
    import typer.main
    from typer._click.core import Context  # typer >= 0.22 ships its own copy of click

    from fanfold._cli._app import app

    root = typer.main.get_command(app)
    parts: list[str] = []

    def walk(command: Any, path: list[str], parent: Any) -> None:
        ctx = Context(command, info_name=path[-1], parent=parent)
        subcommands = getattr(command, "commands", None)
        if path != ["fanfold"]:
            parts.append(_command_section(command, path, ctx, has_subcommands=bool(subcommands)))
        for name, sub in (subcommands or {}).items():
            if not sub.hidden:
                walk(sub, [*path, name], ctx)

    walk(root, ["fanfold"], None)
    epilog = _plain(root.epilog or "")
    return "\n\n".join([f"`fanfold --help` lists the commands. {epilog}", *parts]) + "\n"


def _command_section(command: Any, path: list[str], ctx: Any, *, has_subcommands: bool) -> str:
    level = "#" * min(len(path), 4)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([*path, "[OPTIONS]", *(p.name.upper() for p in arguments)])
    if has_subcommands:
        usage = " ".join([*path, "COMMAND", "[ARGS]..."])
    help_text = _plain(command.help or command.short_help or "")
    lines = [f"{level} `{' '.join(path)}`", "", "```text", usage, "```", "", help_text]
    rows = [_param_row(p, ctx) for p in command.params if not getattr(p, "hidden", False)]
    rows = [row for row in rows if row is not None]
    if rows:
        lines += ["", "| argument or option | what it sets |", "| --- | --- |", *rows]
    return "\n".join(lines)


def _param_row(param: Any, ctx: Any) -> str | None:
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    if param.param_type_name == "argument":
        names = param.name.upper()
    panel = getattr(param, "rich_help_panel", None)
    prefix = f"*{panel}*: " if panel else ""
    return f"| `{_cell(names)}` | {prefix}{_cell(_plain(help_text))} |"


def _plain(text: str) -> str:
    """Typer help text as Markdown: rich markup dropped, paragraphs kept."""
    text = re.sub(r"\[/?(bold|dim|italic|cyan|green|red|yellow|magenta)\]", "", text)
    return inspect.cleandoc(text)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- the YAML pipeline schema -----------------------------------------------------------------

# What each field of a pipeline means: the schema holds its type, default and bounds, not its sense.
PIPELINE_FIELDS = {
    "PipelineSpec": {
        "model": "the model, as `provider:model` (`openai:gpt-5-mini`, `anthropic:claude-sonnet-4-5`)",
        "instructions": "the system prompt of the agent run on each row",
        "prompt": "a template over each row's fields, such as `Subject: {subject}`; default: the row as JSON",
        "output": "the structured output: a mapping of field -> type, or a Pydantic model as `module:Class`",
        "pattern": "what runs on each row: `map` (the default), `vote`, `map-reduce` or `team`",
        "key": "the row field that names each line (and its journal entry, for resume)",
        "limits": "concurrency and rate limits for the model",
        "budget": "a cap on tokens, cost or requests for the whole run",
        "retries": "the retry policy of each model request; a number is its attempts",
        "timeout": "seconds one row may take",
        "deadline": "seconds the whole run may take; rows not done by then end `timed_out`",
        "base_url": "an OpenAI-compatible server's URL (the key stays in the provider's variable)",
        "price": "the model's price per million tokens, when fanfold does not know it",
        "max_row_bytes": "the largest row to read, in bytes (default 4 MiB)",
        "name": "a name for the pipeline, shown in `fanfold runs list`",
        "description": "what the pipeline does, for its readers",
    },
    "LimitsSpec": {
        "concurrency": "how many model requests run at once",
        "requests_per_minute": "the model's requests per minute",
        "tokens_per_minute": "the model's tokens (input and output) per minute",
        "input_tokens_per_minute": "the model's input tokens per minute",
        "output_tokens_per_minute": "the model's output tokens per minute",
    },
    "BudgetSpec": {
        "tokens": "the most tokens the run may spend",
        "cost": "the most money the run may spend, in the price's currency (USD)",
        "requests": "the most model requests the run may send",
    },
    "RetrySpec": {
        "attempts": "attempts per model request (1: no retry)",
        "initial": "the first backoff, in seconds (jittered, doubling)",
        "max_delay": "the longest backoff, in seconds",
        "timeout": "seconds one attempt may take",
    },
    "PriceSpec": {
        "input": "price per million input tokens",
        "output": "price per million output tokens",
    },
    "MapSpec": {"type": "`map`: the agent runs once on each row"},
    "VoteSpec": {
        "type": "`vote`: each row is answered `n` times and the majority wins",
        "n": "samples per row",
        "by": "the output field the samples vote on (default: the whole answer)",
        "early_stop": "stop sampling once the remaining samples could not change the majority",
    },
    "MapReduceSpec": {
        "type": "`map-reduce`: each row is mapped, then the results are merged, `fan_in` at a time",
        "reduce": "the reducer's instructions: how to merge a list of results into one",
        "fan_in": "how many results one reducer call takes",
        "output": "the reducer's structured output (default: the map step's)",
    },
    "TeamSpec": {
        "type": "`team`: the pipeline's agent leads a team per row, planning the work for its members",
        "members": "the members: each a name, a description for the leader, instructions, an output",
        "merge": "instructions for merging the members' results (default: the leader merges)",
        "mode": "`plan`: the leader writes a plan the runtime runs; `delegate`: it delegates by tool calls",
        "max_subtasks": "the most subtasks one plan may hold",
        "max_replans": "how many times a rejected plan may be redone",
    },
    "MemberSpec": {
        "name": "the member's name (letters, digits, `_` and `-`; up to 64)",
        "description": "what the member is for, as the leader reads it",
        "instructions": "the member's system prompt",
        "output": "the member's structured output",
        "model": "the member's model (default: the pipeline's)",
    },
}


def pipeline_models() -> list[type[Any]]:
    """The schema's models, top-level first."""
    from fanfold._cli import _pipeline_schema as schema

    return [schema.PipelineSpec, schema.LimitsSpec, schema.BudgetSpec, schema.RetrySpec, schema.PriceSpec,
            schema.MapSpec, schema.VoteSpec, schema.MapReduceSpec, schema.TeamSpec, schema.MemberSpec]  # fmt: skip


SECTION_TITLES = {
    "PipelineSpec": "The pipeline (top level)",
    "LimitsSpec": "`limits:`",
    "BudgetSpec": "`budget:`",
    "RetrySpec": "`retries:`",
    "PriceSpec": "`price:`",
    "MapSpec": "`pattern: {type: map}`",
    "VoteSpec": "`pattern: {type: vote}`",
    "MapReduceSpec": "`pattern: {type: map-reduce}`",
    "TeamSpec": "`pattern: {type: team}`",
    "MemberSpec": "`members:` (of a team)",
}


def pipeline_schema_markdown() -> str:
    """A table per part of a YAML pipeline: each field's type, default, bounds, meaning and fix."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    from fanfold._cli._pipeline_schema import FIXES

    sections = []
    for model in pipeline_models():
        rows = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            if field.is_required():
                default = "required"
            elif field.default is PydanticUndefined or field.default is None:
                default = ""
            elif isinstance(field.default, BaseModel) and not hasattr(field.default, "type"):
                default = "none set"  # an empty section, such as `limits:` with no field
            else:
                default = f"`{_yaml_value(field.default)}`"
            meaning = PIPELINE_FIELDS[model.__name__][name]
            bounds = _bounds([*field.metadata, *_union_metadata(field.annotation)])
            if bounds:
                meaning += f" ({bounds})"
            fix = _fix_for(model.__name__, name, FIXES)
            if fix is not None:
                meaning += f". If it is wrong, the error says: *{fix}*"
            rows.append(f"| `{name}` | {_cell(_type_name(field.annotation))} | {default} | {_cell(meaning)} |")
        sections.append(f"### {SECTION_TITLES[model.__name__]}\n\n" + "\n".join(rows))
    return "\n\n".join(sections) + "\n"


def _fix_for(model: str, name: str, fixes: dict[str, str]) -> str | None:
    """A field's fix text, as the CLI's errors give it (by ``section.field``, else by the field)."""
    if name == "type":
        return None
    section = SECTION_TITLES[model].strip("`").split(":")[0]  # "`price:`" -> "price"
    return fixes.get(f"{section}.{name}", fixes.get(name))


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "type"):  # a pattern's default: map
        return str(value.type)
    return str(value)


def _union_metadata(annotation: Any) -> list[Any]:
    """The constraints of ``Annotated[int, Field(ge=1)] | None``, which Pydantic keeps in the type."""
    found = []
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            for item in typing.get_args(arg)[1:]:
                found += getattr(item, "metadata", [item])
    return found


def _bounds(metadata: list[Any]) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least", "pattern": "matching"}
    found = []
    for item in metadata:
        for attr, word in words.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{word} `{value}`" if attr == "pattern" else f"{word} {value}")
    return ", ".join(found)


def _type_name(annotation: Any) -> str:
    """A type as a YAML author reads it: `integer`, `string or null`, `one of: map, vote`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg) for arg in args if arg is not type(None)]
        if all(_is_pattern(arg) for arg in args):
            return "a pattern: " + ", ".join(names)
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return "one of: " + ", ".join(f"`{arg}`" for arg in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        title = SECTION_TITLES.get(annotation.__name__, annotation.__name__)
        return f"mapping ({title})" if not _is_pattern(annotation) else title
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(annotation, str(annotation))


def _is_pattern(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return isinstance(annotation, type) and "type" in getattr(annotation, "model_fields", {})


# -- the errors ------------------------------------------------------------------------------

# What to do when each error is raised: the docstrings say what an error means, this says the fix.
ERROR_FIXES = {
    "FanfoldError": "Catch it to handle anything fanfold raises; its subclasses say what went wrong.",
    "UsageError": "Read the message: it names the bad value and the fix. Nothing was run or called.",
    "RunOwned": "Wait for the owner (`.lease` names its host and pid) to finish, or, if it is dead, "
    "resume with `take_over=True` (`fanfold runs resume RUN_ID --take-over`).",
    "RunError": "Catch it to handle any run that did not succeed; the subclasses below say how.",
    "FanoutFailed": "Read `.outcomes` for what finished. To keep going past failures, give the pattern "
    "a failure policy: `policy=ff.Collect()` or `ff.MaxFailures(k)`.",
    "VoteFailed": "Every sample failed: look at the samples' errors in `.outcomes`; retry the agent's "
    "calls (`retry=ff.RetryPolicy(...)`) if the failures are transient.",
    "RaceFailed": "Every racer failed: look at their errors in `.outcomes`; add a racer that fails "
    "differently, or retries.",
    "TaskTimeout": "Raise the timeout (`timeout=` on the agent or the pattern, `ff.Timeouts(...)`) or make "
    "the call faster; a retry policy that retries `TaskTimeout` tries again.",
    "BudgetExhausted": "The tasks it skipped are resumable: raise the `ff.Budget(...)` and resume the run "
    "(`resume=run_id`) to pay only for what is left.",
    "PlanRejected": "Read `.errors`: each says why a plan failed. Describe the members better, raise "
    "`ff.TeamCaps(max_subtasks=..., max_replans=...)`, or use a stronger leader model.",
    "JournalFailed": "Fix the store (disk full, permissions, the database unreachable), then resume the run "
    "with `resume=run_id`: what was journaled is kept.",
    "RunFailed": "The root task failed: `.result` keeps every outcome that finished; `str()` says why. A "
    "failure policy on the root (`ff.Collect()`) returns the failures as outcomes instead.",
    "Signal": "Not an error to fix: raise its subclasses from an agent to steer the runtime.",
    "Retry": "Raise it from an agent to ask for another attempt, `after=` seconds later (a Retry-After).",
    "Skip": "Raise it from an agent to skip an input; its outcome is `skipped` with the reason.",
    "WorkerLost": "A backend's worker died mid-call (killed, out of memory). Every retry policy retries it; "
    "if it keeps happening, give the workers more memory or fewer tasks at once.",
    "ForeignAgentError": "Another framework's agent failed: the message and `__cause__` hold its own error. "
    "Fix the agent, or retry it with a retry policy.",
}


def public_errors() -> list[type[BaseException]]:
    """The exceptions among ``fanfold.__all__``, the root first, each after its base."""
    import fanfold

    found = [getattr(fanfold, name) for name in fanfold.__all__ if not name.startswith("_")]
    errors = [obj for obj in found if isinstance(obj, type) and issubclass(obj, BaseException)]
    return sorted(errors, key=lambda cls: [base.__name__ for base in reversed(cls.__mro__) if base in errors])


def errors_markdown() -> str:
    """One section per public exception: where it sits in the tree, what it means, the fix."""
    sections = []
    for cls in public_errors():
        bases = [base.__name__ for base in cls.__mro__[1:] if base.__module__ == "fanfold"]
        builtins = [base.__name__ for base in cls.__bases__ if base.__module__ == "builtins"]
        lineage = " < ".join(f"`{name}`" for name in [cls.__name__, *bases, *builtins])
        doc = inspect.cleandoc(cls.__doc__ or "").split("::")[0].strip()
        sections.append(f"### `{cls.__name__}`\n\n{lineage}\n\n{doc}\n\n**Fix.** {ERROR_FIXES[cls.__name__]}")
    return "\n\n".join(sections) + "\n"


# -- the events ------------------------------------------------------------------------------

# When each event is emitted (most events' dataclasses carry no docstring).
EVENT_WHEN = {
    "Event": "the base of every event: `run_id`, `path` (the task's place in the tree) and `at`",
    "RunStarted": "a run began (or a resumed run began again)",
    "FanoutStarted": "a pattern fanned out over its inputs",
    "TaskQueued": "a task was created and waits for admission",
    "TaskStarted": "a task's attempt began (after admission)",
    "ModelCalled": "a model request (one attempt) ended: its resource, status, usage and time",
    "Throttled": "a resource paused after the provider said its limit is spent (a 429 or an overload)",
    "HedgeStarted": "a backup call started for a slow leaf call",
    "HedgeWon": "a backup call finished first",
    "TaskRetrying": "an attempt failed and the retry policy will try again after `delay`",
    "AgentEvent": "an agent reported something with `ctx.emit(name, **data)`",
    "TaskFinished": "the base of the five events that end a task; carries its `outcome`",
    "TaskSucceeded": "a task ended with a value",
    "TaskFailed": "a task ended with an error, after its retries",
    "TaskTimedOut": "a task ran past its timeout or the run's deadline",
    "TaskCancelled": "a task was cancelled (a race lost, a vote decided, the run cancelled)",
    "TaskSkipped": "a task was skipped (the budget, a policy, `ff.Skip`)",
    "RunFinished": "a run ended, with its status and summary",
}


def events_markdown() -> str:
    """A table of every event in ``fanfold.events`` (when it comes, its fields), then a section
    per event: its fields' types and its docstring."""
    from fanfold import events

    rows = ["| event | emitted when | fields (beyond `run_id`, `path`, `at`) |", "| --- | --- | --- |"]
    sections = []
    for name in EVENT_WHEN:  # in the order a run emits them
        cls = getattr(events, name)
        own = [f for f in dataclasses.fields(cls) if f.name not in ("run_id", "path", "at")]
        bases = [b.__name__ for b in cls.__bases__ if b.__name__ not in ("Event", "object")]
        when = EVENT_WHEN[name] + (f" (a `{bases[0]}`)" if bases else "")
        rows.append(f"| [`events.{name}`](#events{name.lower()}) | {_cell(when)} | "
                    f"{', '.join(f'`{f.name}`' for f in own)} |")  # fmt: skip
        doc = inspect.cleandoc(cls.__doc__ or "")
        if doc.startswith(f"{name}("):  # the signature dataclasses write when there is no docstring
            doc = ""
        fields = [f"- `{f.name}`: `{_annotation(f.type)}`" for f in dataclasses.fields(cls)]
        sections.append("\n\n".join(part for part in [f"### `events.{name}`", _emitted(when), doc,
                                                        "\n".join(fields)] if part))  # fmt: skip
    return "\n".join(rows) + "\n\n" + "\n\n".join(sections) + "\n"


def _emitted(when: str) -> str:
    return f"{when[0].upper()}{when[1:]}." if when.startswith("the base") else f"Emitted when {when}."


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_markdown,
    "pipeline-schema": pipeline_schema_markdown,
    "errors": errors_markdown,
    "events": events_markdown,
}
