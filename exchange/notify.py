"""Notifications: departments' signed webhooks, the outbox of events for them, and sending it.

**Queueing.** :func:`emit` queues an event for every active webhook of a department that listens
to it, in the caller's transaction: the event exists exactly when the change that caused it was
committed (the transactional outbox, table ``notifications``).

**Webhooks.** A department's staff or reviewer (scope ``exchange:apply``) registers endpoints for
its own department (:func:`register_webhook`): an ``http``/``https`` URL, the events it wants
(:data:`EVENTS`), and a signing secret that the server generates and shows once (again on
:func:`rotate_secret`). The city admin sees every department's webhooks and may remove any.

**What a receiver gets.** One ``POST`` per notification, with the JSON body
``{"id", "event", "created_at", "department", "data"}`` (UTF-8, keys sorted, no spaces) and::

    Content-Type: application/json; charset=utf-8
    X-Govdata-Event: version.delivered
    X-Govdata-Delivery: 1234                    the notification id: the same on every retry
    X-Govdata-Timestamp: 1764000000             Unix seconds when this attempt was signed
    X-Govdata-Signature: sha256=<hex>           HMAC-SHA256(secret, "<timestamp>.<body>")

The key is the secret exactly as shown (``whsec_…``, UTF-8); the message is the timestamp, a dot,
and the raw body bytes as received. A receiver verifies, before parsing the body:

1. recompute ``"sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))`` and compare it with
   the header in constant time;
2. refuse a timestamp more than a few minutes from its own clock (a replayed request);
3. treat ``X-Govdata-Delivery`` as the idempotency key: a notification can arrive more than once
   (a retry after a lost answer), never with a different body.

:func:`verify_signature` does 1 and 2 and may be imported by receivers written in Python. Answer
any 2xx quickly; do the work afterwards.

**Retries.** A timeout, a connection error, HTTP 408, 429 or 5xx is retried with exponential
backoff: after the n-th failed attempt the next one is due ``backoff × 4^(n−1)`` later (default
1, 4, 16, 64, 256 minutes; never more than 6 hours; a longer ``Retry-After`` on 429/503 is
honoured up to that bound), until ``GOVDATA_WEBHOOK_ATTEMPTS`` attempts (default 6) have failed.
Any other answer (3xx included: redirects are not followed, they could lead anywhere) fails the
notification for good. Each attempt records ``last_status`` and ``last_error`` (no secret and no
query string in it); ``POST /notifications/{id}/retry`` queues a failed one again.

**Sending from several processes.** :func:`dispatch_due` claims due rows before sending: a
compare-and-set on ``attempts`` (an update that only succeeds if no one else claimed the row
first), after ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL so that dispatchers do not even
contend. A claim moves ``next_attempt_at`` past the longest time a send may take (the lease), so a
dispatcher that dies mid-send leaves the row to be retried, not lost. HTTP is never done inside a
database transaction. ``govdata serve`` runs :func:`start_dispatcher` in a daemon thread;
``govdata exchange notify`` sends what is due once.

**Where a webhook may point.** Departments sit on the government intranet, so private addresses
(10/8, 172.16/12, 192.168/16) are allowed. Refused at registration and checked again against every
address the name resolves to at each send (a name may be re-pointed after registration): this
machine (loopback, ``localhost``, 0.0.0.0/8), link-local addresses (169.254/16, where cloud metadata
services answer; fe80::/10), multicast and reserved ranges, numbers written in non-standard forms
(``2130706433``, ``0x7f.1``, ``127.1``), credentials in the URL, fragments, control characters.
The connection goes to the address that was checked, never to a second lookup.

=================================  ===========================================================
``GOVDATA_WEBHOOK_ATTEMPTS``       attempts before a notification fails for good (default 6)
``GOVDATA_WEBHOOK_BACKOFF``        seconds before the first retry (default 60)
``GOVDATA_WEBHOOK_TIMEOUT``        seconds one attempt may take in all (default 10)
``GOVDATA_WEBHOOK_ALLOW_NETWORKS`` comma-separated networks allowed despite the rules above,
                                   e.g. ``127.0.0.1/32`` for a receiver on this machine
``GOVDATA_WEBHOOK_DENY_NETWORKS``  further networks to refuse, e.g. the platform's own subnet
=================================  ===========================================================

HTTPS receivers are verified against the system's certificate authorities (``SSL_CERT_FILE``
names another bundle, e.g. the intranet's own CA).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import CursorResult, Update, func, select, update
from sqlalchemy.orm import Session

from catalog.models import utcnow
from exchange import audit
from exchange.errors import Conflict, Forbidden, NotFound
from exchange.identity import Principal
from exchange.models import Notification, Webhook
from pipelines.errors import TerminalError

__all__ = [
    "EVENTS",
    "DispatchSummary",
    "WebhookSettings",
    "body_of",
    "check_url",
    "dispatch_due",
    "emit",
    "jsonable",
    "list_notifications",
    "list_webhooks",
    "register_webhook",
    "remove_webhook",
    "retry_notification",
    "rotate_secret",
    "sign",
    "start_dispatcher",
    "verify_signature",
]

log = logging.getLogger(__name__)

#: The events a webhook may listen to.
EVENTS: dict[str, str] = {
    "application.submitted": "an application for the department's data arrived (provider)",
    "application.decided": "the department's application was approved or refused (subscriber)",
    "grant.revoked": "a grant of the department was revoked (subscriber)",
    "version.delivered": "a new version was delivered to the department (subscriber)",
    "delivery.failed": "a delivery to the department (subscriber), or of its data (provider), failed for good",
    "objection.raised": "an objection to the department's data was raised (provider)",
    "objection.answered": "the provider answered the department's objection (subscriber)",
    "dataset.stale": "a resource of the department missed its update cycle (provider; from the watch)",
    "review.overdue": "an application to the department is past its review deadline (provider; from the watch)",
    "run.failed": "a pipeline task of the department's dataset failed for good (provider; from Airflow)",
}

ATTEMPTS_ENV = "GOVDATA_WEBHOOK_ATTEMPTS"
BACKOFF_ENV = "GOVDATA_WEBHOOK_BACKOFF"
TIMEOUT_ENV = "GOVDATA_WEBHOOK_TIMEOUT"
ALLOW_ENV = "GOVDATA_WEBHOOK_ALLOW_NETWORKS"
DENY_ENV = "GOVDATA_WEBHOOK_DENY_NETWORKS"

BACKOFF_FACTOR = 4
MAX_DELAY = dt.timedelta(hours=6)
MAX_URL_LENGTH = 2000
MAX_WEBHOOKS = 20  # per department: more is a mistake, or abuse of the platform as a sender
SECRET_PREFIX = "whsec_"
USER_AGENT = "govdata-webhooks/1"
_LEASE_MARGIN = dt.timedelta(seconds=60)
_EXCERPT = 2048  # bytes of the receiver's answer kept for last_error
_MAX_ID = 2**31 - 1
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- queueing ----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with datetimes and dates as ISO text, mappings and sequences walked: ready for JSON."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def emit(session: Session, *, department: str, event: str, payload: Mapping[str, Any]) -> int:
    """Queue ``event`` for department ``department``'s webhooks that listen to it; returns how many."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    hooks = session.scalars(
        select(Webhook).where(Webhook.department_uscc == department, Webhook.active.is_(True))
    ).all()
    now = utcnow()
    body = jsonable(payload)
    queued = 0
    for hook in hooks:
        if event in hook.events:
            session.add(
                Notification(
                    webhook_id=hook.id,
                    department_uscc=department,
                    event=event,
                    payload=body,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
            queued += 1
    return queued


# --- settings ----------------------------------------------------------------------------------


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, *, whole: bool) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "a whole number" if whole else "a number of seconds"
        raise TerminalError(
            f"{name}={raw!r} is not {kind} from {low:g} to {high:g}",
            hint=f"set {name} to e.g. {default:g}, or unset it for the default ({default:g})",
        )
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    found: list[IPNetwork] = []
    for part in (env.get(name) or "").split(","):
        if not part.strip():
            continue
        try:
            found.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise TerminalError(
                f"{name}: {part.strip()!r} is not a network",
                hint=f"write networks like 10.20.0.0/16 or 127.0.0.1/32, comma-separated, in {name}",
            ) from None
    return tuple(found)


@dataclass(frozen=True)
class WebhookSettings:
    """How notifications are sent; :meth:`from_env` reads them from the ``GOVDATA_WEBHOOK_*`` variables."""

    attempts: int = 6
    backoff: float = 60.0  # seconds before the first retry
    timeout: float = 10.0  # seconds one attempt may take, connection to answer
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        return cls(
            attempts=int(_number(env, ATTEMPTS_ENV, 6, 1, 50, whole=True)),
            backoff=_number(env, BACKOFF_ENV, 60.0, 1, 86400, whole=False),
            timeout=_number(env, TIMEOUT_ENV, 10.0, 0.1, 300, whole=False),
            allow=_networks(env, ALLOW_ENV),
            deny=_networks(env, DENY_ENV),
        )

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> dt.timedelta:
        """How long to wait after the ``failed_attempts``-th failed attempt (1, 2, …)."""
        seconds = self.backoff * BACKOFF_FACTOR ** max(failed_attempts - 1, 0)
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        return min(dt.timedelta(seconds=seconds), MAX_DELAY)

    @property
    def lease(self) -> dt.timedelta:
        """How long a claimed notification is left alone: longer than any send may take."""
        return dt.timedelta(seconds=self.timeout) + _LEASE_MARGIN


# --- signing -----------------------------------------------------------------------------------


def new_signing_secret() -> str:
    """A fresh signing secret, ``whsec_`` and 32 random bytes (base64url)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``X-Govdata-Signature`` value: ``sha256=`` + hex HMAC-SHA256(secret, ``f"{timestamp}.{body}"``)."""
    message = str(timestamp).encode("ascii") + b"." + _bytes(body)
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str | None,
    body: bytes | str,
    signature: str | None,
    tolerance: float | None = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``signature`` (the ``X-Govdata-Signature`` header) signs ``body`` at ``timestamp``.

    ``body`` must be the raw bytes received (before any JSON parsing). A ``timestamp`` more than
    ``tolerance`` seconds from ``now`` (default: this machine's clock) is refused, so that a
    captured request cannot be replayed later; ``tolerance=None`` skips that check. The header may
    hold several comma-separated signatures; one match is enough.
    """
    if not secret or timestamp is None or not signature:
        return False
    stamp = str(timestamp).strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = sign(secret, stamp, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in signature.split(",") if given.strip())


def body_of(notification: Notification) -> bytes:
    """The exact bytes sent for ``notification`` (and signed): the same on every attempt."""
    created = notification.created_at
    doc = {
        "id": notification.id,
        "event": notification.event,
        "created_at": created.astimezone(dt.UTC).isoformat() if created else None,
        "department": notification.department_uscc,
        "data": notification.payload,
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


# --- where a webhook may point -----------------------------------------------------------------


def address_refusal(address: IPAddress, settings: WebhookSettings) -> str | None:
    """Why a webhook may not be sent to ``address`` (None: it may)."""
    ip: IPAddress = address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    if any(ip in net for net in settings.allow if net.version == ip.version):
        return None
    if any(ip in net for net in settings.deny if net.version == ip.version):
        return f"{ip} is in a network refused by {DENY_ENV}"
    if ip.is_loopback:
        return f"{ip} is this machine (loopback)"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return f"{ip} means this machine (0.0.0.0/8, ::)"
    if ip.is_link_local:
        return f"{ip} is link-local (where cloud metadata services answer)"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_reserved:
        return f"{ip} is a reserved address"
    return None


_POLICY_HINT = (
    "give the address of the department's receiver; a city that needs this network adds it to "
    f"{ALLOW_ENV} (e.g. 127.0.0.1/32 for a receiver on the platform's own machine)"
)


def _check_host(host: str, bracketed: bool, settings: WebhookSettings) -> None:
    name = host[:-1] if host.endswith(".") and not bracketed else host
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if bracketed and not isinstance(ip, ipaddress.IPv6Address):
        raise TerminalError(
            f"the webhook url's host [{host}] is not an IPv6 address", hint="write an IPv6 address in brackets"
        )
    if ip is not None:
        reason = address_refusal(ip, settings)
        if reason:
            raise TerminalError(f"the webhook url may not point at {reason}", hint=_POLICY_HINT)
        return
    labels = name.split(".")
    if labels[-1].isdigit() or any(label.startswith("0x") for label in labels):
        raise TerminalError(
            f"the webhook url's host {host!r} looks like an IP address in a non-standard form",
            hint="write an IPv4 address as four decimal numbers (10.1.2.3) or use a host name",
        )
    if name == "localhost" or name.endswith(".localhost"):
        reason = address_refusal(ipaddress.IPv4Address("127.0.0.1"), settings)
        if reason:
            raise TerminalError(f"the webhook url may not point at {name} ({reason})", hint=_POLICY_HINT)
        return
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise TerminalError(
            f"the webhook url's host {host[:100]!r} is not a valid host name",
            hint="use letters, digits and hyphens in dot-separated labels of at most 63 characters; "
            "write an internationalised name in punycode (xn--…)",
        )


def check_url(url: str, settings: WebhookSettings | None = None) -> str:
    """``url`` checked for use as a webhook (see the module doc) and normalised; :class:`TerminalError` if not."""
    settings = settings or WebhookSettings.from_env()
    example = "e.g. https://receiver.dept.example.gov.cn/govdata/events"
    if not isinstance(url, str) or not url.strip():
        raise TerminalError("the webhook url is empty", hint=f"give the receiver's address, {example}")
    text = url.strip()
    if len(text) > MAX_URL_LENGTH:
        raise TerminalError(
            f"the webhook url is {len(text)} characters long; at most {MAX_URL_LENGTH} are allowed",
            hint="give a shorter address",
        )
    for position, char in enumerate(text):
        if ord(char) < 0x21 or ord(char) >= 0x7F or char == "\\":
            raise TerminalError(
                f"the webhook url holds {char!r} at position {position + 1}: spaces, control characters, "
                "backslashes and non-ASCII characters are not allowed",
                hint="percent-encode them in the path and query; write an internationalised host name in punycode",
            )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TerminalError(f"the webhook url is not a valid URL: {exc}", hint=example) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TerminalError(
            f"the webhook url must start with http:// or https://, not {(parts.scheme + ':') if parts.scheme else 'nothing'}",
            hint=example,
        )
    if "@" in parts.netloc:
        raise TerminalError(
            "the webhook url may not carry a user name or password",
            hint="remove `user:password@`; receivers authenticate notifications by their signature",
        )
    if parts.fragment or "#" in text:
        raise TerminalError("the webhook url may not have a fragment (#…)", hint="remove the part from # on")
    host = parts.hostname
    if not host:
        raise TerminalError("the webhook url has no host", hint=example)
    if port == 0:
        raise TerminalError("the webhook url's port 0 is not a port", hint="give a port from 1 to 65535, or none")
    _check_host(host, "[" in parts.netloc, settings)
    return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def redact(url: str) -> str:
    """``url`` without its query string, for the audit log and messages (a query may hold a token)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# --- webhooks ----------------------------------------------------------------------------------


def _changed(session: Session, statement: Update) -> int:
    """Run an UPDATE (not synchronised with loaded objects) and return how many rows it changed."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _own_department(principal: Principal, what: str) -> str:
    if principal.department is None:
        raise Forbidden(
            f"only a department's users may {what}; webhooks belong to a department",
            hint="act as a user of the department that receives the notifications",
        )
    return principal.department


def check_events(events: Iterable[str]) -> list[str]:
    """``events`` checked against :data:`EVENTS`, without repeats, in :data:`EVENTS` order."""
    chosen = list(dict.fromkeys(e.strip() if isinstance(e, str) else repr(e) for e in events))
    if not chosen:
        raise TerminalError("a webhook needs at least one event", hint=f"choose some of: {', '.join(EVENTS)}")
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(EVENTS), n=1)
        raise TerminalError(
            f"unknown event(s): {', '.join(repr(e[:64]) for e in unknown[:5])}",
            hint=(f"did you mean {near[0]!r}? " if near else "") + f"events are: {', '.join(EVENTS)}",
        )
    return [e for e in EVENTS if e in chosen]


def _hook(session: Session, principal: Principal, webhook_id: int, *, city: bool) -> Webhook:
    """An active webhook the caller may manage: its department's, or any for the city admin when ``city``."""
    hook = session.get(Webhook, webhook_id) if 0 < webhook_id <= _MAX_ID else None
    if hook is not None and hook.active:
        if principal.department is not None and hook.department_uscc == principal.department:
            principal.require("exchange:apply")
            return hook
        if city and principal.department is None and "exchange:admin" in principal.scopes:
            return hook
    raise NotFound(
        f"no webhook {webhook_id} of your department",
        hint="list them with GET /exchange/v1/webhooks or `govdata exchange webhooks list`",
    )


def register_webhook(
    session: Session,
    principal: Principal,
    *,
    url: str,
    events: Sequence[str],
    settings: WebhookSettings | None = None,
) -> tuple[Webhook, str]:
    """Register a webhook of the caller's department; returns it and its signing secret (shown once)."""
    principal.require("exchange:apply")
    department = _own_department(principal, "register webhooks")
    clean = check_url(url, settings)
    chosen = check_events(events)
    active = list(
        session.scalars(select(Webhook).where(Webhook.department_uscc == department, Webhook.active.is_(True)))
    )
    same = next((h for h in active if h.url == clean), None)
    if same is not None:
        raise Conflict(
            f"this url is already the department's webhook {same.id}",
            hint=f"rotate its secret (POST /exchange/v1/webhooks/{same.id}/rotate) or remove it first",
        )
    if len(active) >= MAX_WEBHOOKS:
        raise Conflict(
            f"the department has {len(active)} webhooks already, the most allowed",
            hint="remove one it no longer uses; one webhook can listen to several events",
        )
    secret = new_signing_secret()
    hook = Webhook(
        department_uscc=department, url=clean, secret=secret, events=chosen, active=True, created_by=principal.user
    )
    session.add(hook)
    session.flush()
    audit.append(
        session,
        actor=principal.user,
        action="webhook.create",
        subject=f"webhook:{hook.id}",
        detail={"department": department, "url": redact(clean), "events": chosen},
    )
    return hook, secret


def list_webhooks(session: Session, principal: Principal) -> list[Webhook]:
    """The active webhooks of the caller's department; every department's for the city admin."""
    query = select(Webhook).where(Webhook.active.is_(True)).order_by(Webhook.id)
    if principal.department is None:
        principal.require("exchange:admin")
    else:
        principal.require("exchange:apply")
        query = query.where(Webhook.department_uscc == principal.department)
    return list(session.scalars(query))


def remove_webhook(session: Session, principal: Principal, webhook_id: int) -> Webhook:
    """Remove a webhook: nothing more is queued or sent to it; its secret is erased; pending notifications fail."""
    hook = _hook(session, principal, webhook_id, city=True)
    hook.active = False
    hook.secret = ""
    dropped = _changed(
        session,
        update(Notification)
        .where(Notification.webhook_id == hook.id, Notification.status == "pending")
        .values(status="failed", last_error="the webhook was removed before this notification was sent"),
    )
    audit.append(
        session,
        actor=principal.user,
        action="webhook.remove",
        subject=f"webhook:{hook.id}",
        detail={"department": hook.department_uscc, "url": redact(hook.url), "pending_dropped": dropped},
    )
    return hook


def rotate_secret(session: Session, principal: Principal, webhook_id: int) -> tuple[Webhook, str]:
    """A new signing secret for the department's webhook (the old one stops at once); returns it, shown once."""
    hook = _hook(session, principal, webhook_id, city=False)
    secret = new_signing_secret()
    hook.secret = secret
    audit.append(
        session,
        actor=principal.user,
        action="webhook.rotate",
        subject=f"webhook:{hook.id}",
        detail={"department": hook.department_uscc},
    )
    return hook, secret


# --- the outbox, seen by people ----------------------------------------------------------------


def list_notifications(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    event: str | None = None,
    webhook: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Notification]:
    """Notifications, newest first: the caller's department's; every department's for city-level users."""
    query = select(Notification).order_by(Notification.created_at.desc(), Notification.id.desc())
    if principal.department is None:
        principal.require("monitor:read")
    else:
        principal.require("exchange:apply")
        query = query.where(Notification.department_uscc == principal.department)
    if status is not None:
        query = query.where(Notification.status == status)
    if event is not None:
        query = query.where(Notification.event == event)
    if webhook is not None:
        query = query.where(Notification.webhook_id == webhook)
    return list(session.scalars(query.limit(max(1, min(limit, 1000))).offset(max(0, offset))))


def count_notifications(session: Session, department: str | None = None) -> dict[str, int]:
    """Notifications by status (pending, sent, failed), of one department or all: for the dashboard."""
    query = select(Notification.status, func.count()).group_by(Notification.status)
    if department is not None:
        query = query.where(Notification.department_uscc == department)
    counts = {"pending": 0, "sent": 0, "failed": 0}
    counts.update({str(s): int(n) for s, n in session.execute(query)})
    return counts


def retry_notification(
    session: Session, principal: Principal, notification_id: int, *, now: dt.datetime | None = None
) -> Notification:
    """Queue a failed (or waiting) notification again, due now, with a fresh budget of attempts."""
    row = session.get(Notification, notification_id) if 0 < notification_id <= _MAX_ID else None
    allowed = row is not None and (
        (principal.department is not None and row.department_uscc == principal.department)
        or (principal.department is None and "exchange:admin" in principal.scopes)
    )
    if row is None or not allowed:
        raise NotFound(
            f"no notification {notification_id} of your department",
            hint="list them with GET /exchange/v1/notifications",
        )
    if principal.department is not None:
        principal.require("exchange:apply")
    if row.status == "sent":
        raise Conflict(
            f"notification {row.id} was delivered at {row.sent_at.isoformat() if row.sent_at else 'some time'}",
            hint="only failed or waiting notifications are retried",
        )
    hook = session.get(Webhook, row.webhook_id)
    if hook is None or not hook.active:
        raise Conflict(
            f"the webhook of notification {row.id} was removed", hint="register the receiver again; new events go to it"
        )
    previous = row.status
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now or utcnow()
    audit.append(
        session,
        actor=principal.user,
        action="notification.retry",
        subject=f"notification:{row.id}",
        detail={"department": row.department_uscc, "event": row.event, "webhook": row.webhook_id, "was": previous},
    )
    return row


# --- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered, worth retrying, or refused for good."""

    ok: bool
    retry: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class _Pinned(http.client.HTTPConnection):
    """HTTP to a name, connected to an address checked beforehand (no second lookup)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.aborted = False

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def abort(self) -> None:
        """Cut the connection (from the watchdog thread): a blocked read returns at once."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _PinnedTLS(_Pinned):
    """HTTPS to a name, connected to a checked address; the certificate is verified for the name."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, address, timeout)
        self.context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        assert self.sock is not None
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:200]


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(min(int(value.strip()), int(MAX_DELAY.total_seconds())))
    return None


def classify(status: int, reason: str, where: str, body: bytes = b"", retry_after: str | None = None) -> Outcome:
    """The outcome of an HTTP answer: 2xx delivered; 408, 429, 5xx retried; anything else refused for good."""
    said = f": {_excerpt(body)}" if body.strip() else ""
    if 200 <= status < 300:
        return Outcome(ok=True, retry=False, status=status)
    if status in (408, 429) or 500 <= status < 600:
        wait = _retry_after(retry_after) if status in (429, 503) else None
        return Outcome(False, True, status, f"HTTP {status} {reason} from {where}{said}", wait)
    if 300 <= status < 400:
        return Outcome(
            False,
            False,
            status,
            f"HTTP {status} {reason} from {where}: redirects are not followed; register the final url",
        )
    return Outcome(False, False, status, f"HTTP {status} {reason} from {where}: the receiver refused it{said}")


def _resolve(host: str, port: int, settings: WebhookSettings) -> list[str] | Outcome:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return Outcome(False, True, error=f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}")
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return Outcome(False, False, error=f"{host} resolves to {address!r}, which is not an IP address")
        reason = address_refusal(ip, settings)
        if reason:
            return Outcome(False, False, error=f"{host} resolves to {ip}, where webhooks may not go: {reason}")
    if not addresses:
        return Outcome(False, True, error=f"{host} resolves to no address")
    return addresses


def post(url: str, headers: Mapping[str, str], body: bytes, settings: WebhookSettings) -> Outcome:
    """POST ``body`` to ``url`` once, within ``settings.timeout`` in all; never raises for network trouble."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    where = f"{host}:{port}"
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    resolved = _resolve(host, port, settings)
    if isinstance(resolved, Outcome):
        return resolved
    deadline = time.monotonic() + settings.timeout
    problem = "no address answered"
    for address in resolved[:4]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        kind = _PinnedTLS if tls else _Pinned
        conn = kind(host, port, address, left)
        watchdog = threading.Timer(left, conn.abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                conn.connect()
            except (OSError, ssl.SSLError) as exc:
                if isinstance(exc, ssl.SSLCertVerificationError):
                    return Outcome(False, True, error=f"TLS certificate of {where} not accepted: {exc.verify_message}")
                problem = "timed out connecting" if conn.aborted or isinstance(exc, TimeoutError) else str(exc)
                continue  # the next address, if the name has several
            conn.request("POST", target, body=body, headers=dict(headers))
            answer = conn.getresponse()
            said = answer.read(_EXCERPT)
            return classify(answer.status, answer.reason, where, said, answer.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:
            if conn.aborted or isinstance(exc, TimeoutError):
                return Outcome(False, True, error=f"timed out after {settings.timeout:g} s waiting for {where}")
            return Outcome(False, True, error=f"the connection to {where} failed: {type(exc).__name__}: {exc}")
        finally:
            watchdog.cancel()
            conn.close()
    if time.monotonic() >= deadline and problem == "no address answered":
        problem = "timed out"
    return Outcome(False, True, error=f"cannot connect to {where}: {problem}")


# --- dispatching -------------------------------------------------------------------------------


class _Store(Protocol):
    def session(self) -> AbstractContextManager[Session]: ...


@dataclass(frozen=True)
class _Job:
    id: int
    attempt: int  # the number of this attempt (1, 2, …)
    event: str
    url: str
    secret: str
    body: bytes


@dataclass
class DispatchSummary:
    """One pass of :func:`dispatch_due`: how many were claimed and what became of them."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0  # failed this time, due again later
    failed: int = 0  # failed for good
    stale: int = 0  # taken over by another dispatcher meanwhile (a lease ran out)
    errors: list[str] = field(default_factory=list)  # what went wrong with the failures, one line each

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _claim(store: _Store, now: dt.datetime, limit: int, settings: WebhookSettings) -> tuple[list[_Job], int]:
    """Claim up to ``limit`` due notifications; returns the jobs and how many failed at once (webhook gone)."""
    jobs: list[_Job] = []
    dropped = 0
    with store.session() as s:
        query = (
            select(Notification)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(s.scalars(query))
        hooks = {h.id: h for h in s.scalars(select(Webhook).where(Webhook.id.in_({r.webhook_id for r in rows})))}
        for row in rows:
            hook = hooks.get(row.webhook_id)
            gone = hook is None or not hook.active
            values: dict[str, Any] = (
                {"status": "failed", "last_error": "the webhook was removed before this notification was sent"}
                if gone
                else {"attempts": row.attempts + 1, "next_attempt_at": now + settings.lease}
            )
            taken = _changed(
                s,
                update(Notification)
                .where(
                    Notification.id == row.id,
                    Notification.status == "pending",
                    Notification.attempts == row.attempts,
                )
                .values(**values),
            )
            if taken != 1:
                continue  # another dispatcher claimed it first
            if gone:
                dropped += 1
                continue
            assert hook is not None
            jobs.append(_Job(row.id, row.attempts + 1, row.event, hook.url, hook.secret, body_of(row)))
    return jobs, dropped


def _send(job: _Job, settings: WebhookSettings) -> Outcome:
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Govdata-Event": job.event,
        "X-Govdata-Delivery": str(job.id),
        "X-Govdata-Timestamp": stamp,
        "X-Govdata-Signature": sign(job.secret, stamp, job.body),
    }
    return post(job.url, headers, job.body, settings)


def _record(store: _Store, job: _Job, outcome: Outcome, now: dt.datetime, settings: WebhookSettings) -> str:
    """Write the attempt's outcome, unless another dispatcher has claimed the row since; returns the state."""
    values: dict[str, Any] = {"last_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        state = "sent"
        values.update(status="sent", sent_at=now, last_error=None)
    elif outcome.retry and job.attempt < settings.attempts:
        state = "retrying"
        values.update(next_attempt_at=now + settings.delay(job.attempt, outcome.retry_after))
    else:
        state = "failed"
        values.update(status="failed")
    with store.session() as s:
        done = _changed(
            s,
            update(Notification)
            .where(Notification.id == job.id, Notification.status == "pending", Notification.attempts == job.attempt)
            .values(**values),
        )
    if done != 1:
        return "stale"
    if state == "failed":
        log.warning(
            "notification %s (%s) failed for good after %s attempt(s): %s",
            job.id,
            job.event,
            job.attempt,
            outcome.error,
        )
    elif state == "retrying":
        log.info(
            "notification %s (%s) attempt %s failed, will retry: %s", job.id, job.event, job.attempt, outcome.error
        )
    return state


def dispatch_due(
    store: _Store,
    now: dt.datetime | None = None,
    limit: int = 100,
    *,
    settings: WebhookSettings | None = None,
    workers: int = 4,
) -> DispatchSummary:
    """Send the notifications due at ``now`` (default: the clock), at most ``limit``; safe in several processes.

    Sends run in up to ``workers`` threads, outside any database transaction; each outcome is
    recorded as soon as it is known. ``now`` decides what is due and when retries fall due, so
    tests can walk the backoff schedule without waiting.
    """
    settings = settings or WebhookSettings.from_env()
    now = now or utcnow()
    if now.tzinfo is None:
        raise TerminalError("now must be timezone-aware", hint="pass e.g. datetime.now(datetime.UTC)")
    summary = DispatchSummary()
    jobs, dropped = _claim(store, now, max(1, limit), settings)
    summary.claimed = len(jobs) + dropped
    summary.failed += dropped
    if not jobs:
        return summary
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="govdata-webhook") as pool:
        futures = {pool.submit(_send, job, settings): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            outcome = future.result()
            state = _record(store, job, outcome, now, settings)
            setattr(summary, state, getattr(summary, state) + 1)
            if not outcome.ok and outcome.error:
                summary.errors.append(f"notification {job.id} ({job.event}), attempt {job.attempt}: {outcome.error}")
    log.info(
        "webhooks: %s claimed, %s sent, %s to retry, %s failed",
        summary.claimed,
        summary.sent,
        summary.retrying,
        summary.failed,
    )
    return summary


def start_dispatcher(
    store: _Store, interval: float = 5.0, *, settings: WebhookSettings | None = None, limit: int = 100
) -> Callable[[], None]:
    """Send due notifications every ``interval`` seconds in a daemon thread; returns the function that stops it.

    A pass that finds a full batch runs again at once. A failing pass (the database away) is logged
    and tried again after the interval; the thread never dies of it.
    """
    if not interval > 0:
        raise TerminalError(f"the dispatcher's interval must be positive, not {interval!r}", hint="e.g. 5 seconds")
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            try:
                while dispatch_due(store, limit=limit, settings=settings).claimed >= limit and not stopping.is_set():
                    pass
            except Exception:  # a background loop must outlive a failed pass; the traceback is logged
                log.exception("webhook dispatcher: a pass failed; trying again in %s s", interval)
            stopping.wait(interval)

    thread = threading.Thread(target=loop, name="govdata-webhook-dispatcher", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=(settings or WebhookSettings()).timeout + 5)

    return stop
