"""Secrets never written: a canary key reaches a provider that echoes it back in a 401 error
body, through the Python API and the CLI, in the arguments, the environment and base URLs; then
every file under the run's folder (outputs, summary, the SQLite file's bytes), every event,
every outcome's error, the exception messages and tracebacks, and ``runs show``/``runs export``
are searched for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

import fanfold as ff
from fanfold._redact import redact, redact_url, register, secrets_in_url

CANARY = "sk-canary-7d1f0c2b9e"
ENV_CANARY = "sk-canary-env-5a4e3d"
URL_CANARY = "sk-canary-url-0b9c8a"
USER_CANARY = "sk-canary-user-66e2f1"
CANARIES = (CANARY, ENV_CANARY, URL_CANARY, USER_CANARY)


@pytest.fixture
def echoing_server() -> Iterator[str]:
    """A loopback server answering every request 401, its body echoing the Authorization header
    and the URL it was called at (as some providers and proxies do)."""

    async def deny(request: web.Request) -> web.Response:
        body = {"error": {"message": f"invalid key: {request.headers.get('Authorization')} at {request.url}",
                          "type": "invalid_request_error", "code": "invalid_api_key"}}  # fmt: skip
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", deny)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    ready = threading.Event()
    import asyncio

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def hits(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [canary for canary in CANARIES if canary.encode() in data]


def test_the_python_api_writes_and_raises_no_key_a_provider_echoed(tmp_path: Path, echoing_server: str) -> None:
    events: list[ff.events.Event] = []
    agent = ff.llm("openai-chat:m", api_key=CANARY, base_url=f"{echoing_server}/v1?api_key={URL_CANARY}")
    store = tmp_path / "runs.db"
    with pytest.raises(ff.RunFailed) as caught:
        ff.run_sync(ff.map(agent, policy=ff.FailFast()), ["a", "b"], store=store, on_event=events.append,
                    metadata={"base_url": f"{echoing_server}?token={URL_CANARY}"})  # fmt: skip
    error = caught.value
    assert hits(str(error)) == []
    failed = [o for o in error.result.outcomes if o.error is not None]
    assert failed
    assert "invalid key" in str(failed[0].error)
    assert hits("".join(traceback.format_exception(error))) == []
    for outcome in error.result.outcomes:
        assert hits(str(outcome.error)) == []
        if outcome.exception is not None:
            assert hits("".join(traceback.format_exception(outcome.exception))) == []
    assert hits(repr(events)) == []
    assert hits(store.read_bytes()) == []
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert hits(path.read_bytes()) == [], path


def test_the_cli_writes_no_key_from_the_environment_or_the_base_url(tmp_path: Path, echoing_server: str) -> None:
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(3)))
    (tmp_path / "pipeline.yaml").write_text("model: openai-chat:m\nprompt: '{text}'\nkey: id\nretries: 1\n")
    env = {**os.environ, "OPENAI_API_KEY": ENV_CANARY}
    fanfold = [sys.executable, "-m", "fanfold._cli._app"]
    outputs = []
    for number, base_url in enumerate(
        [f"{echoing_server}/v1?api_key={URL_CANARY}", echoing_server.replace("//", f"//me:{USER_CANARY}@") + "/v1"]
    ):
        run = subprocess.run([*fanfold, "run", "pipeline.yaml", "-i", "rows.jsonl", "-o", f"out{number}.jsonl",
                              "--store", "runs.db", "--run-id", f"r{number}", "--base-url", base_url, "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        outputs += [run.stdout, run.stderr]
        if number == 1:  # a base URL holding credentials is refused before any call (exit 2)
            assert run.returncode == 2, run.stderr
            continue
        assert run.returncode == 1, run.stderr  # it ran; every row failed (401), as its line says
        assert "failed" in (tmp_path / f"out{number}.jsonl").read_text()
        for command in (["runs", "show", f"r{number}"], ["runs", "show", f"r{number}", "--json"],
                        ["runs", "export", f"r{number}"], ["runs", "list"]):  # fmt: skip
            shown = subprocess.run([*fanfold, *command, "--store", "runs.db"], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            outputs += [shown.stdout, shown.stderr]
    assert hits("".join(outputs)) == []
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert hits(path.read_bytes()) == [], path


# -- the mechanism ------------------------------------------------------------------------------


def test_registered_secrets_and_secrets_by_shape_are_masked() -> None:
    register("sk-registered-123456")
    assert redact("bad key sk-registered-123456!") == "bad key ***!"
    assert redact("Authorization: Bearer abcdefghij123") == "Authorization: Bearer ***"
    assert redact("at http://u:p4ss@h/v1?sig=abc&x=1") == "at http://u:***@h/v1?sig=***&x=1"
    assert redact("nothing secret here") == "nothing secret here"


def test_urls_lose_their_credentials_even_when_malformed() -> None:
    assert redact_url("http://h/v1?api_key=k1234567&model=m") == "http://h/v1?model=m"
    assert redact_url("http://me:k1234567@h:notaport/v1") == "http://me@h:notaport/v1"
    assert redact_url("http://me:k1234567@h/v1", user=False) == "http://h/v1"
    assert secrets_in_url("http://me:pw-123456@h/?access_token=t-123456") == ["pw-123456", "t-123456"]


def test_fanfold_errors_never_show_a_registered_secret() -> None:
    register("sk-in-a-message-999")
    assert str(ff.UsageError("the key sk-in-a-message-999 is bad")) == "the key *** is bad"


def test_names_that_only_hold_a_secret_word_are_not_redacted() -> None:
    from fanfold._redact import redact

    assert redact("ff.openai_client(output_tokens=0): pass") == "ff.openai_client(output_tokens=0): pass"
    assert redact("max_tokens=1024") == "max_tokens=1024"
    assert redact("?api_key=sk-abcdefgh&access_token=abcdefgh") == "?api_key=***&access_token=***"
