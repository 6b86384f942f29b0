"""CrewAI crews as fanfold agents, through ``Crew.akickoff`` (CrewAI's native async kickoff).

Each input runs on a copy of the crew whose agents hold copies of their LLMs with usage
counters of their own: CrewAI counts tokens per ``LLM`` object, for its lifetime, so runs
sharing one would report each other's tokens. A dict input is the crew's ``inputs``; any
other input is ``{"input": input}`` (tasks say ``{input}``).

CrewAI (1.15) talks to an OpenAI-compatible server through the ``openai`` SDK (its native
provider, ``LLM(model="openai/...")``; LiteLLM only for models it has no native provider for),
and even under ``akickoff`` its agents call the model with the *sync* client, from a worker
thread (each agent step is a sync method of a Flow, run by ``asyncio.to_thread``). It takes no
client from the caller (``client_params`` go to the sync and the async client alike, and an
``interceptor`` sees a request and its answer apart, so it can neither hold nor retry one), but
keeps its clients in ``LLM._client`` and ``LLM._async_client``. In each run's copy of the crew,
fanfold puts there a client on the LLM's own model, base URL and key whose requests cross
back to the run's event loop and go out through ``ff.openai_client``: every model request of
the crew is a leaf call of the run (admitted, budgeted, retried, counted) on the same resource
as ``ff.llm`` on that model, and cancelling the run cancels the request in flight (CrewAI's
thread then ends with an error). A crew with no native OpenAI LLM, or adapted with
``ff.adapt(crew, governed=False)``, runs as one leaf on ``["crewai"]``; cancelling it cannot
stop CrewAI's thread, which ends when its request does (``LLM(timeout=...)`` bounds that).

A claim checker, one crew run per claim, its model calls at most 8 at once::

    llm = LLM(model="openai/gpt-5-mini")
    checker = Agent(role="checker", goal="Check claims", backstory="...", llm=llm)
    crew = Crew(agents=[checker], tasks=[Task(description="Does this hold? {input}", expected_output="...",
                                              agent=checker)])
    limits = ff.Limits(resources={"openai:gpt-5-mini": ff.RateLimit(concurrency=8)})
    result = await ff.run(ff.map(crew), claims, limits=limits, budget=ff.Budget(requests=200))

CrewAI needs ``openai<3`` and ``pydantic<2.13``, so ``fanfold[crewai]`` cannot be installed
beside ``fanfold[openai]``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from copy import copy
from typing import Any

from fanfold._adapters._base import ForeignAgent, require, telemetry_off
from fanfold._adapters._clients import _FOREIGN, ForeignRun, openai_client
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._usage import Usage

telemetry_off("CREWAI_DISABLE_TELEMETRY")


class CrewAIAgent(ForeignAgent):
    """A CrewAI ``Crew``."""

    framework = "crewai"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        inputs = input if input is None or isinstance(input, dict) else {"input": input}
        crew = self.agent.copy()
        llms = _own_llms(crew)
        loan = _Loan(asyncio.get_running_loop(), _FOREIGN.get())
        try:
            if self.governed:
                for llm in llms:
                    if lendable(llm):
                        loan.lend(llm)
            output = await crew.akickoff(inputs=inputs)
        finally:
            await loan.close()
        manager = crew.manager_agent  # a hierarchical crew builds its manager at kickoff
        made = getattr(manager, "llm", None) if manager is not None else None
        if hasattr(made, "get_token_usage_summary") and all(made is not llm for llm in llms):
            llms.append(made)
        total = Usage()  # over distinct LLMs: Crew.token_usage counts an LLM once per agent sharing it
        for llm in llms:
            used = llm.get_token_usage_summary()
            total += Usage(
                requests=used.successful_requests, input_tokens=used.prompt_tokens, output_tokens=used.completion_tokens
            )
        return output.raw, total


def _own_llms(crew: Any) -> list[Any]:
    """Give the copied crew's agents copies of their LLMs with usage counters of their own
    (``Crew.copy`` shares the LLM objects and their counters); return those copies."""
    owned: dict[int, Any] = {}

    def own(llm: Any) -> Any:
        if llm is None or not hasattr(llm, "get_token_usage_summary"):
            return llm  # a model name CrewAI has not built an LLM for
        if id(llm) not in owned:
            fresh = copy(llm)
            fresh._token_usage = dict.fromkeys(llm._token_usage, 0)
            owned[id(llm)] = fresh
        return owned[id(llm)]

    agents = [*crew.agents, *([crew.manager_agent] if crew.manager_agent is not None else [])]
    for agent in agents:
        agent.llm = own(agent.llm)
        if vars(agent).get("function_calling_llm") is not None:  # deprecated: reading the field warns
            agent.function_calling_llm = own(agent.function_calling_llm)
    if crew.manager_llm is not None and not isinstance(crew.manager_llm, str):
        crew.manager_llm = own(crew.manager_llm)
    return list(owned.values())


def lendable(llm: Any) -> bool:
    """Whether ``llm`` is CrewAI's native OpenAI provider (it calls ``_client``/``_async_client``)."""
    return getattr(llm, "llm_type", None) == "openai" and hasattr(llm, "_get_sync_client")


class _Loan:
    """The governed clients lent to one run's LLMs, and the requests in flight from CrewAI's
    threads to the run's event loop (cancelled when the run ends, so the server sees them go)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, foreign: ForeignRun | None) -> None:
        self.loop = loop
        self.foreign = foreign
        self.clients: list[Any] = []
        self.in_flight: set[concurrent.futures.Future[Any]] = set()
        self.closed = False
        self.lock = threading.Lock()

    def lend(self, llm: Any) -> None:
        client = openai_client(f"openai:{llm.model}", base_url=llm._effective_base_url(), api_key=llm.api_key)
        self.clients.append(client)
        bridge = _bridge_class()(self, client._client)
        sync = require("openai", "crewai").OpenAI(
            api_key=client.api_key, base_url=client.base_url, max_retries=0, http_client=bridge
        )
        llm._client, llm._async_client = sync, client

    def submit(self, request: Any, http: Any) -> concurrent.futures.Future[Any]:
        """Send ``request`` (from a CrewAI thread) on ``http``, a lent client's, in the run's loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread, as expected
            running = None
        if running is self.loop:  # waiting here for the loop would block it for good
            raise UsageError(
                "CrewAI made a blocking model call on the run's event loop, where fanfold cannot govern it: "
                "adapt the crew with ff.adapt(crew, governed=False)"
            )
        with self.lock:
            if self.closed:
                raise require("httpx", "crewai").ConnectError("the fanfold run of this crew ended", request=request)
            future = asyncio.run_coroutine_threadsafe(self._send(request, http), self.loop)
            self.in_flight.add(future)
        return future

    def done(self, future: concurrent.futures.Future[Any]) -> None:
        with self.lock:
            self.in_flight.discard(future)

    async def _send(self, request: Any, http: Any) -> Any:
        token = _FOREIGN.set(self.foreign)  # the run's, whatever context CrewAI's thread had
        try:
            response = await http.send(request)
            await response.aread()  # the sync SDK reads the body as it is, without awaiting
            return response
        finally:
            _FOREIGN.reset(token)

    async def close(self) -> None:
        with self.lock:
            self.closed = True
            in_flight = list(self.in_flight)
        for future in in_flight:
            future.cancel()  # the request's task, on this loop: its connection is closed
        for client in self.clients:
            await client.close()


@functools.cache
def _bridge_class() -> type:
    """An ``httpx.Client`` (what the sync OpenAI SDK accepts) whose ``send`` goes through a
    :class:`_Loan`, built on first use (httpx comes with CrewAI)."""
    httpx = require("httpx", "crewai")

    class LoanedClient(httpx.Client):  # type: ignore[misc,name-defined]
        def __init__(self, loan: _Loan, http: Any) -> None:
            super().__init__()
            self.loan = loan
            self.http = http

        def send(self, request: Any, **kwargs: Any) -> Any:
            future = self.loan.submit(request, self.http)
            try:
                return future.result()
            except concurrent.futures.CancelledError:
                raise httpx.ReadError("cancelled: the fanfold run of this crew ended", request=request) from None
            finally:
                self.loan.done(future)

    return LoanedClient


def adapt(obj: Any) -> CrewAIAgent:
    crew_class = require("crewai", "crewai").Crew
    if not isinstance(obj, crew_class):
        raise UsageError(
            f"{obj!r} comes from CrewAI, but is not a Crew; fanfold runs crews (Crew(agents=..., tasks=...))"
        )
    if obj.stream:  # akickoff would hand back a stream to iterate, not the crew's answer
        raise UsageError(f"{obj!r} streams (Crew(stream=True)); fanfold runs crews for their answer: stream=False")
    return CrewAIAgent(obj, governed=any(lendable(agent.llm) for agent in obj.agents))
