"""Credentials of a tracking store or database, kept out of everything the zoo prints or records.

A store's password reaches the zoo in one of three ways: inside a URI (``postgresql://user:pw@host/db``,
``http://user:pw@host:5000``), in MLflow's own variables (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``) or in libpq's (``PGPASSWORD``, ``~/.pgpass``).
The zoo passes them on untouched and shows a URI only through :func:`redact_uri`; :func:`scrub` is the
safety net on every message and failure reason the zoo writes (errors, ``zoo.failure`` tags). Nothing
here imports MLflow.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY",
              "AZURE_STORAGE_ACCESS_KEY")
"""Variables whose values are secrets wherever they appear."""
URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_BACKEND_STORE_URI")
"""Variables that hold URIs which may carry a password."""
SECRET_QUERY = ("password", "passwd", "pwd", "token", "access_token", "secret", "sslpassword")
"""Query parameters of a URI whose values are secrets (``...?password=...``)."""
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?P<at>@)")
_QUERY = re.compile(r"(?P<head>[?&](?:" + "|".join(SECRET_QUERY) + r")=)(?P<pw>[^&\s'\"]+)", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` with its password (and any secret query parameter) replaced by ``***``; the user, host,
    port and path stay, so the message still says which store it is. Anything not a URI is returned as is."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return scrub(uri)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username or ''}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_QUERY else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets(environ: Mapping[str, str] | None = None, uris: Iterable[str] = ()) -> set[str]:
    """The secret strings the environment (and ``uris``) hold: passwords in URIs, secret variables' values."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for uri in [*(env.get(k, "") for k in URI_ENV), *uris]:
        if not uri:
            continue
        try:
            parts = urlsplit(uri)
            if parts.password:
                found.update({parts.password, unquote(parts.password)})
            found.update(v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_QUERY and v)
        except ValueError:
            continue
    found.update(env[k] for k in SECRET_ENV if env.get(k))
    return {s for s in found if len(s) >= 3}  # a one- or two-character "secret" would mask half the text


def scrub(text: str, environ: Mapping[str, str] | None = None, uris: Iterable[str] = ()) -> str:
    """``text`` with every password of a URI in it, and every secret :func:`secrets` knows, masked."""
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    for secret in sorted(secrets(environ, uris), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
