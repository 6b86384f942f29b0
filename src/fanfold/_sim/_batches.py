"""OpenAI's Batch API on the simulated provider: files, batches, their results.

``POST /v1/files`` takes a JSONL upload (``purpose=batch``) of ``{custom_id, method, url, body}``
lines; ``POST /v1/batches`` starts a batch on one (``endpoint`` ``/v1/chat/completions``,
``completion_window`` ``24h``). A batch goes ``validating`` -> ``in_progress``, waits the
provider's ``batch_delay`` (or until :meth:`Batches.release`), then answers every line as the
chat completions route would (the same parsing and answers, a fault drawn per line as for a
request: a faulted line goes to the error file with its status code) and is ``completed``, its
answers in ``output_file_id`` and its failures in ``error_file_id``. Past ``batch_expiry`` it is
``expired`` instead (every line in the error file, ``batch_expired``); ``POST
/v1/batches/{id}/cancel`` makes it ``cancelled``. Answers are not subject to the rate limits:
a batch has its own queue at a real provider. ``GET /_sim/batches`` tells another process how
many batches were created and how many lines answered, over both batch APIs: Anthropic's Message
Batches (``fanfold._sim._message_batches``) are served alongside, with the same delay, expiry
and faults. ``POST /_sim/batches/{id}/release`` finishes one batch now (of either API).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fanfold._sim._answers import digest, make_answer
from fanfold._sim._config import AnswerSetting, Faults
from fanfold._sim._message_batches import MessageBatches
from fanfold._sim._openai import ChatCompletions
from fanfold._sim._wire import BadRequest

_ENDPOINT = "/v1/chat/completions"
_STATUS = {"429": 429, "500": 500, "529": 503, "timeout": 504, "malformed": 500}


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    created_at: int
    metadata: dict[str, Any] | None
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    errors: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    times: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": _ENDPOINT,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
            **{f"{name}_at": at for name, at in self.times.items()},
        }


class Batches:
    """The batch API's state on one simulated provider (touched from its event loop only)."""

    def __init__(
        self,
        *,
        answer: Callable[[], AnswerSetting],
        faults: Faults,
        seed: int,
        delay: float,
        expiry: float | None,
        numbers: itertools.count[int],
        fault_rng: Any,
    ) -> None:
        self._answer = answer
        self._faults = faults
        self._seed = seed
        self.delay = delay
        self.expiry = expiry
        self._numbers = numbers  # shared with the live routes: one arrival order
        self._fault_rng = fault_rng
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self.answered = 0  # lines answered (successfully), over all batches
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages = MessageBatches(
            answer=answer,
            faults=faults,
            seed=seed,
            timing=lambda: (self.delay, self.expiry),
            numbers=numbers,
            fault_rng=fault_rng,
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)
        app.router.add_get("/_sim/batches", self._summary)
        app.router.add_post("/_sim/batches/{id}/release", self._release)
        self.messages.routes(app)  # Anthropic's Message Batches

    def release(self, batch_id: str | None = None) -> None:
        """Finish a batch (or every batch) waiting out its delay now, of either API."""
        for batch in self.batches.values():
            if batch_id is None or batch.id == batch_id:
                batch.release.set()
        self.messages.release(batch_id)

    def summary(self) -> dict[str, Any]:
        """Both APIs' batches: ``created``, ``answered`` (requests answered successfully) and
        ``batches`` (each as its API's ``GET`` shows it, OpenAI's first)."""
        messages = [batch.to_dict() for batch in self.messages.batches.values()]
        return {
            "created": len(self.batches) + len(messages),
            "answered": self.answered + self.messages.answered,
            "batches": [*(batch.to_dict() for batch in self.batches.values()), *messages],
        }

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{digest(self._seed, prefix, str(next(self._ids)))}"

    # --- the routes ----------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if purpose != "batch":
            return _error(400, f"purpose={purpose!r}: the simulator takes files for purpose 'batch' only")
        if not isinstance(upload, web.FileField):
            return _error(400, "no 'file' part in the multipart upload: send the JSONL as a file")
        content = upload.file.read()
        file = _File(self._id("file"), upload.filename or "batch.jsonl", "batch", content, int(time.time()))
        self.files[file.id] = file
        return _json(file.to_dict())

    async def _file(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["id"])
        return _json(file.to_dict()) if file is not None else _error(404, "no such file", "file_id")

    async def _content(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["id"])
        if file is None:
            return _error(404, "no such file", "file_id")
        return web.Response(body=file.content, content_type="application/jsonl")

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return _error(400, f"input_file_id={file_id!r}: no such file; upload it first", "input_file_id")
        if body.get("endpoint") != _ENDPOINT:
            return _error(400, f"endpoint={body.get('endpoint')!r}: the simulator batches {_ENDPOINT}", "endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, f"completion_window={body.get('completion_window')!r}: pass '24h'")
        batch = _Batch(self._id("batch"), file_id, int(time.time()), body.get("metadata"))
        self.batches[batch.id] = batch
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _json(batch.to_dict())

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        return _json(batch.to_dict()) if batch is not None else _error(404, "no such batch", "batch_id")

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch", "batch_id")
        if batch.status in ("validating", "in_progress"):
            batch.status = "cancelling"
            batch.release.set()
        return _json(batch.to_dict())

    async def _summary(self, request: web.Request) -> web.Response:
        return _json(self.summary())

    async def _release(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["id"]
        if batch_id not in self.batches and batch_id not in self.messages.batches:
            return _error(404, f"no batch {batch_id!r}", "batch_id")
        self.release(batch_id)
        return _json({"released": batch_id})

    # --- a batch's life ------------------------------------------------------------------------

    async def _process(self, batch: _Batch) -> None:
        lines = self.files[batch.input_file_id].content.decode().splitlines()
        requests = [json.loads(line) for line in lines if line.strip()]
        batch.counts["total"] = len(requests)
        batch.status = "in_progress"
        batch.times["in_progress"] = int(time.time())
        wait: float | None = self.delay if self.expiry is None else min(self.delay, self.expiry)
        if wait is not None and math.isinf(wait):
            wait = None  # held until released
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(batch.release.wait(), timeout=wait)
        if batch.status == "cancelling":
            self._finish(batch, "cancelled", [], [])
            return
        if self.expiry is not None and not batch.release.is_set() and self.delay > self.expiry:
            expired = [_failure(r.get("custom_id"), 0, "batch_expired", "the batch expired") for r in requests]
            batch.counts["failed"] = len(expired)
            self._finish(batch, "expired", [], expired)
            return
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for item in requests:
            line = self._answer_line(item)
            (outputs if line["error"] is None and line["response"]["status_code"] == 200 else failures).append(line)
        batch.counts["completed"], batch.counts["failed"] = len(outputs), len(failures)
        self.answered += len(outputs)
        self._finish(batch, "completed", outputs, failures)

    def _answer_line(self, item: dict[str, Any]) -> dict[str, Any]:
        """One line, answered as ``POST /v1/chat/completions`` would answer it."""
        custom_id = item.get("custom_id")
        wire = ChatCompletions()
        number = next(self._numbers)
        ids = digest(self._seed, "id", str(number))
        if item.get("url") != _ENDPOINT or item.get("method", "POST") != "POST":
            return _failure(custom_id, 400, "invalid_request", f"url={item.get('url')!r}: this batch is {_ENDPOINT}")
        try:
            sim_request = wire.parse(item["body"], number)
        except (KeyError, ValueError, BadRequest, AttributeError, TypeError) as exc:
            return _failure(custom_id, 400, "invalid_request", str(exc))
        fault = self._faults.pick(self._fault_rng, number, sim_request)
        if fault is not None:
            status = _STATUS[fault]
            return _failure(custom_id, status, "server_error", f"an injected {fault} fault (the simulator)")
        answer = make_answer(self._answer(), sim_request, self._seed)
        body = wire.body(answer, sim_request, ids, int(time.time()))
        return {
            "id": f"batch_req_{ids}",
            "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": f"req_{ids}", "body": body},
            "error": None,
        }

    def _finish(self, batch: _Batch, status: str, outputs: list[Any], failures: list[Any]) -> None:
        if outputs:
            batch.output_file_id = self._result_file(batch, "output", outputs)
        if failures:
            batch.error_file_id = self._result_file(batch, "error", failures)
        batch.status = status
        batch.times[status] = int(time.time())

    def _result_file(self, batch: _Batch, kind: str, lines: list[Any]) -> str:
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
        file = _File(self._id("file"), f"{batch.id}_{kind}.jsonl", "batch_output", content, int(time.time()))
        self.files[file.id] = file
        return file.id


def _failure(custom_id: Any, status: int, code: str, message: str) -> dict[str, Any]:
    """An error file's line: the provider answered with an error (``status``), or never ran it (0)."""
    error = {"code": code, "message": message}
    if status == 0:
        return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": None, "error": error}
    body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    response = {"status_code": status, "request_id": f"req_{custom_id}", "body": body}
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": response, "error": None}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return _json(body, status)
