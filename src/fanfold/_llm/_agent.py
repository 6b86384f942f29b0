"""LLM agents on pydantic-ai, every model request governed by the run.

``ff.llm(...)`` builds (or takes) a pydantic-ai ``Agent`` and runs it with its model wrapped in
a :class:`GovernedModel`. The agent itself is a composite and holds no slot; each model request
is a leaf call of its own: it reserves from the run's budget, is admitted by the run's limiter
on the global limit and on its provider resource (requests and tokens per minute, concurrency),
is retried on transient errors, and reports its usage and what the provider said (rate-limit
headers, 429s) back to the resource, which every agent of the run calling the same model shares.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import RunContext
from pydantic_ai.direct import model_request
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, RetryPromptPart, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_core import to_json

from fanfold._context import Context, RunState
from fanfold._errors import UsageError
from fanfold._hedge import SCOPE, Hedge, check_hedge
from fanfold._llm._batch import BATCH_API, BatchModelCall, build_batch_model
from fanfold._llm._batch import batchable as batchable_model
from fanfold._llm._model_call import ModelCall
from fanfold._llm._providers import ModelRef, build_model_off_loop, builds_client, parse_model
from fanfold._retry import RetryPolicy
from fanfold._usage import Price, Usage

# The task whose agent is making model requests: set around the pydantic-ai run, read by the
# model wrapper (pydantic-ai runs its requests in this task or in tasks that copy its context).
_CALLER: contextvars.ContextVar[Context | None] = contextvars.ContextVar("fanfold_caller", default=None)

Estimator = Callable[[Sequence[ModelMessage], ModelRequestParameters], int]


def estimate_input_tokens(messages: Sequence[ModelMessage], parameters: ModelRequestParameters) -> int:
    """The default estimator: a token per four characters of the prompt, history and tools."""
    chars = 0
    for message in messages:
        instructions = getattr(message, "instructions", None)
        if isinstance(instructions, str):
            chars += len(instructions)
        for part in message.parts:
            content = getattr(part, "content", None)
            if isinstance(content, str):
                chars += len(content)
            elif content is not None:
                chars += len(str(content))
            args = getattr(part, "args", None)
            if args is not None:
                chars += len(args) if isinstance(args, str) else len(json.dumps(args, default=str))
    for tool in (*parameters.function_tools, *parameters.output_tools):
        chars += len(tool.name) + len(tool.description or "") + len(json.dumps(tool.parameters_json_schema))
    return chars // 4 + 1


class GovernedModel(WrapperModel):
    """A pydantic-ai model whose every request goes through the run's governor."""

    def __init__(self, wrapped: Model, call: ModelCall) -> None:
        super().__init__(wrapped)
        self.call = call

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        ctx = _CALLER.get()
        if ctx is None:  # used outside a fanfold run: nothing to govern
            return await self.wrapped.request(messages, model_settings, model_request_parameters)

        async def send() -> ModelResponse:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)

        return await self.call.request(ctx, send, messages, model_request_parameters, self._max_tokens(model_settings))

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        ctx = _CALLER.get()

        def open_stream() -> AbstractAsyncContextManager[StreamedResponse]:
            return self.wrapped.request_stream(messages, model_settings, model_request_parameters, run_context)

        if ctx is None:  # used outside a fanfold run: nothing to govern
            async with open_stream() as response:
                yield response
            return
        max_tokens = self._max_tokens(model_settings)
        async with self.call.stream(ctx, open_stream, messages, model_request_parameters, max_tokens) as response:
            yield response

    def _max_tokens(self, model_settings: ModelSettings | None) -> int | None:
        value = (model_settings or {}).get("max_tokens") or (self.wrapped.settings or {}).get("max_tokens")
        return value if isinstance(value, int) else None


class LLMAgent:
    """An LLM agent; see :func:`llm`. Immutable: one can serve any number of runs at once."""

    composite = True  # each model request is its own leaf call; the agent holds no slot

    def __init__(
        self,
        agent: PydanticAgent[Any, Any],
        *,
        ref: ModelRef | None,
        model: Model | None,
        name: str,
        prompt: Callable[[Any], str] | None,
        price: Price | None,
        estimate: Estimator,
        output_tokens: int,
        retry: RetryPolicy | None,
        instructions: str | None = None,
        direct: bool = False,
        settings: ModelSettings | None = None,
        hedge: Hedge | None = None,
        batchable: bool = False,
    ) -> None:
        self._hedge = hedge
        self._agent = agent
        self._retry = retry
        self._ref = ref
        self._model = model
        self.name = name
        self._prompt = prompt
        self._price = price
        self._estimate = estimate
        self._output_tokens = output_tokens
        self._instructions = instructions
        self._run_options: dict[str, Any] = {}
        # An agent fanfold built with no tools and text output is one model request per run:
        # it is sent through pydantic-ai's direct API, without the agent graph (a third of the
        # CPU per call, which is what bounds a large fan-out).
        self._direct = direct
        self._settings = settings
        # Its requests may go through the batch API (ff.run(..., batch_api=True)): an OpenAI model
        # fanfold builds, no tools, not hedged.
        self._batchable = batchable and hedge is None and batchable_model(ref)

    @property
    def description(self) -> str | None:
        """What the agent does: its pydantic-ai agent's description, else its instructions."""
        return self._agent.description or self._instructions

    def with_options(self, *, keep_prompt: bool = True, **run_options: Any) -> LLMAgent:
        """A twin on the same pydantic-ai agent, model, resource and settings whose runs pass
        ``run_options`` (such as ``output_type``, ``instructions`` added to the agent's own,
        ``toolsets`` or ``capabilities``) to pydantic-ai's ``Agent.run``; ``keep_prompt=False``
        renders the input as is (a string) or as JSON. Teams use it to ask their leader for a
        plan, to hand it a delegate tool, and to give a member its subtask's instruction."""
        twin = copy.copy(self)
        twin._run_options = {**self._run_options, **run_options}
        if not keep_prompt:
            twin._prompt = None
        return twin

    def __repr__(self) -> str:
        return f"<llm {self.name}>"

    async def run(self, input: Any, ctx: Context) -> Any:
        state = ctx.run_state
        model = state.services.get(self._service_key()) or await self._governed(state)
        token = _CALLER.set(ctx)
        hedged = None if self._hedge is None else SCOPE.set(self._hedge)  # for its model requests
        try:
            if self._direct and not self._run_options:
                text = await self._ask(model, input)
                if text is not None:
                    return text
                # No text in the answer: the agent's run handles that (it asks again, or fails).
            result = await self._agent.run(self._render(input), model=model, **self._run_options)
        finally:
            _CALLER.reset(token)
            if hedged is not None:
                SCOPE.reset(hedged)
        retries = _output_retries(result.new_messages())
        if retries:
            extra = Usage(output_retries=retries)
            ctx.charge(extra)
            ctx.run_state.ledger.spent += extra
        return result.output

    async def _ask(self, model: GovernedModel, input: Any) -> str | None:
        message = ModelRequest(parts=[UserPromptPart(self._render(input))], instructions=self._instructions)
        response = await model_request(model, [message], model_settings=self._settings)
        return response.text

    def _render(self, input: Any) -> str:
        if self._prompt is not None:
            return self._prompt(input)
        if isinstance(input, str):
            return input
        # JSON as pydantic writes it: models (and lists of them, as a reducer gets) included.
        return to_json(input, fallback=str).decode()

    def _service_key(self) -> tuple[str, object]:
        return ("model", self._ref if self._ref is not None else id(self._model))

    async def _governed(self, state: RunState) -> GovernedModel:
        """This run's governed model: one client and one resource per model, shared by every
        agent of the run that calls it. Its client is built off the event loop, once."""
        if self._batchable and not self._run_options and state.services.get(BATCH_API):
            return self._batched(state)
        key = self._service_key()
        building: asyncio.Lock = state.services.setdefault(("building", key), asyncio.Lock())
        async with building:
            governed: GovernedModel | None = state.services.get(key)
            if governed is None:
                built = None if self._ref is None else await build_model_off_loop(self._ref, state.cleanups)
                governed = self._govern(state, key, built)
            return governed

    def _govern(self, state: RunState, key: tuple[str, object], built: Model | None) -> GovernedModel:
        if self._ref is not None:
            assert built is not None
            base = built
            resource, lookup = self._ref.resource, self._ref.lookup
            provider, model_name = self._ref.provider, self._ref.model
        else:
            assert self._model is not None
            base = self._model
            provider, model_name = base.system, base.model_name
            resource = f"{provider}:{model_name}"
            lookup = (provider,)
        call = ModelCall(
            state,
            resource,
            lookup,
            provider=provider,
            model=model_name,
            price=self._price,
            estimate=self._estimate,
            output_tokens=self._output_tokens,
            on_wire=builds_client(self._ref),
            retry=self._retry,
        )
        governed = state.services[key] = GovernedModel(base, call)
        return governed

    def _batched(self, state: RunState) -> GovernedModel:
        """This run's model for requests through the batch API (``ff.run(..., batch_api=True)``)."""
        assert self._ref is not None
        key = ("batch-model", self._ref)
        governed: GovernedModel | None = state.services.get(key)
        if governed is None:
            base, _ = build_batch_model(self._ref, state)
            call = BatchModelCall(
                state,
                self._ref.resource + "#batch",
                self._ref.lookup,
                provider=self._ref.provider,
                model=self._ref.model,
                price=self._price,
                estimate=self._estimate,
                output_tokens=self._output_tokens,
                retry=self._retry,
            )
            governed = state.services[key] = GovernedModel(base, call)
        return governed


def _output_retries(messages: Sequence[ModelMessage]) -> int:
    """Answers sent back to the model because its output failed validation (not tool errors)."""
    count = 0
    for message in messages:
        if isinstance(message, ModelRequest):
            count += sum(1 for part in message.parts if _is_output_retry(part))
    return count


def _is_output_retry(part: Any) -> bool:
    name = getattr(part, "tool_name", None)
    if name is not None and not name.startswith("final_result"):
        return False  # a tool's own error, sent back for the model to handle
    if isinstance(part, RetryPromptPart):
        return True
    return getattr(part, "outcome", None) == "retried"


def llm(
    model: str | Model | PydanticAgent[Any, Any],
    *,
    instructions: str | None = None,
    output_type: Any = str,
    tools: Sequence[Any] = (),
    name: str | None = None,
    model_settings: ModelSettings | None = None,
    output_retries: int = 2,
    prompt: Callable[[Any], str] | None = None,
    resource: str | None = None,
    price: Price | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    estimate: Estimator = estimate_input_tokens,
    output_tokens: int = 512,
    retry: RetryPolicy | None = None,
    hedge: Hedge | None = None,
) -> LLMAgent:
    """An LLM agent on pydantic-ai: instructions, tools, structured output, any provider.

    ``model`` is a ``provider:model`` string (keys come from the provider's environment
    variable, e.g. ``OPENAI_API_KEY``), a pydantic-ai ``Model``, or a whole pydantic-ai
    ``Agent`` of your own (its instructions, tools and output type are kept). The input becomes
    the prompt: a string as is, anything else as JSON, or through ``prompt(input)``.
    ``output_type`` (a Pydantic model, say) is validated; an invalid answer goes back to the
    model with the error, up to ``output_retries`` times (``Usage.output_retries`` counts them).

    Every model request is governed by the run: its budget, its limits (``resource`` names the
    group of calls that share one provider limit; by default each model behind each endpoint
    and key is its own), retries of 429s, 5xx, overloads, timeouts and connection errors, and
    usage and cost (``price`` overrides the built-in price table, in dollars per million
    tokens). ``estimate`` counts a request's input tokens before it is sent (a token per four
    characters by default); its output is reserved at ``max_tokens`` when the model settings
    give one, else at the larger of ``output_tokens`` and what the model's answers have used.
    ``retry`` is the policy for this agent's model requests; without it they follow the run's
    ``retry``, else the default for model requests (8 attempts of transient errors, backoff from
    half a second, at most 10 minutes in all). ``hedge`` (``ff.Hedge``) sends a backup request
    for one still unanswered at a latency quantile learnt for its model, or a fixed delay.

    >>> from pydantic_ai.models.test import TestModel
    >>> ff.run_sync(ff.map(ff.llm(TestModel(custom_output_text="ok"))), ["a", "b"]).output
    ['ok', 'ok']
    """
    if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 1:
        raise UsageError(f"ff.llm(output_tokens={output_tokens!r}): pass a whole number of tokens >= 1")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise UsageError(f"ff.llm(retry={retry!r}): pass ff.RetryPolicy(retry_on=..., attempts=...)")
    check_hedge("ff.llm", hedge)
    if price is not None and not isinstance(price, Price):
        raise UsageError(f"ff.llm(price={price!r}): pass ff.Price(input=..., output=...) in dollars per million tokens")
    ref: ModelRef | None = None
    model_obj: Model | None = None
    agent_built = False
    if isinstance(model, PydanticAgent):
        if instructions is not None or tools or output_type is not str:
            raise UsageError(
                "ff.llm(agent, ...): give instructions, tools and output_type to the pydantic-ai Agent itself"
            )
        agent = model
        inner = agent.model
        if inner is None:
            raise UsageError(f"ff.llm({agent!r}): the pydantic-ai Agent has no model; create it with one")
        if isinstance(inner, str):
            ref = parse_model(inner, api_key=api_key, base_url=base_url, group=resource)
        else:
            model_obj = inner
        label = name or agent.name or (ref.spec if ref else f"{model_obj.system}:{model_obj.model_name}")  # type: ignore[union-attr]
    else:
        if isinstance(model, str):
            ref = parse_model(model, api_key=api_key, base_url=base_url, group=resource)
            label = name or ref.spec
        elif isinstance(model, Model):
            model_obj = model
            label = name or f"{model.system}:{model.model_name}"
        else:
            raise UsageError(
                f"ff.llm(model={model!r}): pass a 'provider:model' string, a pydantic-ai Model or a pydantic-ai Agent"
            )
        agent_built = True
        agent = PydanticAgent(
            None,
            output_type=output_type,
            instructions=instructions,
            tools=list(tools),
            model_settings=model_settings,
            retries=output_retries,
            name=label,
        )
    return LLMAgent(
        agent,
        ref=ref,
        model=model_obj,
        name=label,
        prompt=prompt,
        price=price,
        estimate=estimate,
        output_tokens=output_tokens,
        retry=retry,
        instructions=instructions,
        direct=agent_built and not tools and output_type is str,
        settings=model_settings,
        hedge=hedge,
        batchable=agent_built and not tools,
    )
