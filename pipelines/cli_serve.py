"""``govdata serve``: run the platform web service (CKAN-compatible catalog API, DCAT-AP feed, the exchange).

It also sends the exchange's queued webhook notifications in a background thread (retries and
backoff as :mod:`exchange.notify` says), unless ``--no-webhooks`` leaves that to another process.
"""

from __future__ import annotations

import signal
import socket
from typing import Annotated, Any

import typer

from pipelines.cli_common import HomeOpt, err, fail, out, user_errors
from pipelines.errors import GovdataError


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one); a clear error when that fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(GovdataError(f"cannot listen on {host}: {exc.strerror}", hint="give --host an IP address or a name"))
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fail(
            GovdataError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --port (0 picks a free one), or stop the program that uses it",
            )
        )
    sock.set_inheritable(True)
    return sock


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: a free one).")] = 8000,
    webhooks: Annotated[
        bool,
        typer.Option(
            "--webhooks/--no-webhooks",
            help="Send the exchange's queued webhook notifications from this process every "
            "--webhook-interval seconds (--no-webhooks: another process runs `govdata exchange notify`).",
        ),
    ] = True,
    webhook_interval: Annotated[
        float, typer.Option("--webhook-interval", min=0.05, max=3600, help="Seconds between webhook passes.")
    ] = 5.0,
    home: HomeOpt = None,
) -> None:
    """Run the platform web service: catalog API, DCAT-AP feed, the exchange and its dashboard. Ctrl-C stops it."""
    import uvicorn

    from exchange.service import create_app

    with user_errors():
        app = create_app(home)
    sock = _listen(host, port)
    bound = sock.getsockname()
    shown_host = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    base = f"http://{shown_host}:{bound[1]}"
    catalog = app.state.store.engine.url.render_as_string(hide_password=True)
    for line in (
        f"govdata platform service on {base}  (catalog {catalog})",
        f"  CKAN API        {base}/api/3/action/package_search  (also /api/action/…)",
        f"  DCAT-AP feed    {base}/catalog.ttl  {base}/catalog.jsonld",
        f"  OpenAPI         {base}/openapi.json",
        f"  health          {base}/healthz",
        f"  dashboard       {base}/dashboard  (监测看板; needs an API token with monitor:read)",
        f"  webhooks        {f'sent every {webhook_interval:g} s' if webhooks else 'not sent here (--no-webhooks)'}",
        "Ctrl-C stops it.",
    ):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.file.flush()
    stopped_by: list[int] = []

    def remember(signum: int, _frame: Any) -> None:
        stopped_by.append(signum)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with the handler it
    # found: make that handler ours, so the command ends normally instead of dying of the signal.
    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    config = uvicorn.Config(app, log_level="info", access_log=True, lifespan="off")
    stop_dispatcher = None
    if webhooks:
        from exchange.notify import start_dispatcher

        # Several `govdata serve` processes may each run one: a notification is claimed before it is sent.
        stop_dispatcher = start_dispatcher(app.state.store, webhook_interval)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if stop_dispatcher is not None:
            stop_dispatcher()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    why = f" ({signal.Signals(stopped_by[0]).name})" if stopped_by else ""
    err.print(f"govdata platform service stopped{why}", highlight=False)
