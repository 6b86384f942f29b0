"""Keeping secrets out of what fanfold writes or raises.

Two kinds of secret are known:

- **values the run was given**: API keys passed to ``ff.llm``, read from the provider's
  environment variable, or found in a base URL. Where a key is resolved it is registered
  (:func:`register`), process-wide, and from then on :func:`redact` replaces it in any text
  with ``***``;
- **secrets by their shape**: the password in ``scheme://user:password@host``, and the value of
  a query parameter named like a secret (``api_key=``, ``token=``, ``sig=``, ``password=``...).

:func:`redact` is applied where fanfold writes or raises: error messages (``ErrorInfo.of``, the
``str()`` of every fanfold exception, and the live exception's own message, so a traceback is
clean too), journal entries, run records, and the batch files the CLI writes. It is cheap when
nothing is secret: a substring check per known secret and one precompiled search.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Set as AbstractSet
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
MASK = "***"
# Shorter values are not registered: masking "sim" or "test" everywhere would garble output, and
# a value that short is no real credential.
MIN_SECRET = 6

_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|pwd|sig|credential|auth)")
# scheme://user:password@ (the password: anything but "/", "@" and whitespace up to the last "@"
# of the authority), and name=value in a query string or a form body where name says secret.
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:'\"]*):(?P<secret>[^/\s'\"]*)@")
_PARAMETER = re.compile(
    # The name's last word says secret (api_key, access_token, x-api-key, sig), not just any
    # name holding one (output_tokens=0 and max_tokens=1024 are no secrets).
    r"(?P<head>(?<![a-zA-Z0-9_])(?:[a-zA-Z0-9]+[_.-])*"
    r"(?:api[_-]?key|apikey|key|token|secret|passw(?:or)?d|pwd|sig|signature|credentials?)=)"
    r"(?P<secret>[^&\s'\"#<>]+)",
    re.IGNORECASE,
)
# "Bearer sk-..." in an echoed Authorization header.
_BEARER = re.compile(r"(?P<head>(?i:bearer)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})")

_known: set[str] = set()


def register(*values: str | None) -> None:
    """Remember ``values`` as secrets of this process: :func:`redact` masks them from now on.
    Both the value and its percent-decoded form are remembered."""
    for value in values:
        if isinstance(value, str):
            for form in {value.strip(), unquote(value).strip()}:
                if len(form) >= MIN_SECRET:
                    _known.add(form)


def register_url(url: str | None) -> None:
    """Remember the secrets a URL holds (its password, its secret-named parameters)."""
    if isinstance(url, str):
        register(*secrets_in_url(url))


def secrets_in_url(url: str) -> list[str]:
    """The password and the values of secret-named query parameters in ``url``."""
    found = [m.group("secret") for m in _USERINFO.finditer(url)]
    found += [value for name, value in parse_qsl(urlsplit(url).query) if _is_secret_name(name)]
    return [value for value in found if value]


def known() -> AbstractSet[str]:
    """The secrets registered so far (a live view: do not change it)."""
    return _known


def redact(text: str) -> str:
    """``text`` with every known secret, URL password, secret-named parameter and bearer token
    replaced by ``***``.

    >>> redact("GET http://me:hunter22@h/v1?api_key=sk-1234567&model=m failed")
    'GET http://me:***@h/v1?api_key=***&model=m failed'
    """
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text or "=" in text or "earer" in text:
        text = _USERINFO.sub(r"\g<head>:***@", text)
        text = _PARAMETER.sub(r"\g<head>***", text)
        text = _BEARER.sub(r"\g<head>***", text)
    return text


def redact_data(data: Any) -> Any:
    """JSON data with every string in it redacted (dict keys too)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


def scrub(exc: BaseException) -> None:
    """Redact the messages of ``exc`` and of the exceptions it was raised from, in place, so
    that a traceback printed later shows no secret either. Called when an error happens only."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        for name in ("message", "body", "text"):
            value = getattr(current, name, None)
            if isinstance(value, str):
                _set(current, name, redact(value))
            elif isinstance(value, dict | list):
                _set(current, name, redact_data(value))
        todo += [current.__cause__, current.__context__]


def _set(exc: BaseException, name: str, value: Any) -> None:
    # A read-only property: its text is in args, redacted already.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, name, value)


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str, *, user: bool = True) -> str:
    """``url`` without its password or any secret-named parameter (and without its user name
    too, with ``user=False``), fit for messages, ``repr`` and run records. A URL too malformed
    to parse is masked by shape all the same.

    >>> redact_url("postgresql://me:s3cret@db:5432/runs?sslmode=require&password=s3cret")
    'postgresql://me@db:5432/runs?sslmode=require'
    >>> redact_url("http://h/v1?api_key=sk-123456")
    'http://h/v1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret = [name for name, _ in query if name in SECRET_PARAMETERS or _is_secret_name(name)]
    if ":" not in userinfo and not secret and (user or not at):
        return redact(url)  # nothing to hide by shape: keep it as written, but for known secrets
    netloc = f"{userinfo.partition(':')[0]}{at}{hosts}" if user else hosts
    kept = urlencode([(name, value) for name, value in query if name not in secret])
    return redact(urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment)))
