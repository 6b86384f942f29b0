"""Keeping secrets out of what fanfold writes: credentials in URLs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` without its password or any password parameter, fit for messages and ``repr``.

    >>> redact_url("postgresql://me:s3cret@db:5432/runs?sslmode=require&password=s3cret")
    'postgresql://me@db:5432/runs?sslmode=require'
    """
    parts = urlsplit(url)
    user, at, hosts = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if ":" not in user and not any(name in SECRET_PARAMETERS for name, _ in query):
        return url  # nothing to hide: keep it exactly as written
    netloc = f"{user.partition(':')[0]}{at}{hosts}"
    kept = urlencode([(name, value) for name, value in query if name not in SECRET_PARAMETERS])
    return urlunsplit((parts.scheme, netloc, parts.path, kept, parts.fragment))
