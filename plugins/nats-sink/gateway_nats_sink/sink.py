"""Events published to NATS JetStream, each acknowledged by the stream before it counts as sent.

A subscription URL is `nats://[user:password@]host[:port]/subject` (port 4222 by default): the
event's JSON is the message, published on `subject`, with the Standard Webhooks headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) and `Nats-Msg-Id` set to the event id, so
the stream drops a redelivery that falls within its duplicate window, and a consumer verifies the
signature as a webhook subscriber does. A subject that no stream captures is a failed attempt
(retried, as a webhook that does not answer).

One connection per broker (host, port and credentials), shared by every subscription to it and
opened when first needed, to the address the gateway's `[events] allowed_targets` resolved; after a
broker restart it reconnects to that same address, never to servers the cluster announces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client, Server
from yarl import URL

from gateway.plugin_api import ConnectionPool, SendOutcome, Sink, SinkContext

DEFAULT_PORT = 4222
RECONNECT_WAIT = 0.5  # seconds between reconnection attempts after the broker went away
MSG_ID = "Nats-Msg-Id"

Broker = tuple[str, int, str | None, str | None]  # host, port, user, password


def subject_of(url: URL) -> str:
    """The subject a URL publishes on, or ValueError saying what is wrong with it."""
    subject = url.path.removeprefix("/")
    if not subject:
        raise ValueError("a nats URL names the subject to publish on: nats://host:port/subject")
    tokens = subject.split(".")
    if any(not token for token in tokens):
        raise ValueError(f"subject {subject!r} has an empty token (two dots, or one at an end)")
    if any(c.isspace() for c in subject) or any(t in {"*", ">"} for t in tokens):
        raise ValueError(f"subject {subject!r} must not hold spaces or wildcards (* and >)")
    return subject


class NatsSink(Sink):
    name = "nats"
    schemes = frozenset({"nats"})
    description = "NATS JetStream: publish with acknowledgement, de-duplicated by event id."

    def __init__(self, context: SinkContext) -> None:
        super().__init__(context)
        self._clients: ConnectionPool[Broker, Client] = ConnectionPool()

    def check_url(self, url: URL) -> None:
        subject_of(url)
        if url.query_string or url.fragment:
            raise ValueError("a nats URL takes no query or fragment")

    async def send(
        self, target: URL, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> SendOutcome:
        subject = subject_of(target)
        try:
            client = await self._client(target)
            ack = await client.jetstream().publish(
                subject,
                body,
                timeout=self.context.timeout,
                headers={**headers, MSG_ID: event_id},
            )
        except nats.js.errors.NoStreamResponseError:
            return SendOutcome.failed(f"no JetStream stream captures the subject {subject!r}")
        except nats.errors.TimeoutError:
            return SendOutcome.failed("JetStream did not acknowledge the message in time")
        except nats.js.errors.APIError as exc:
            return SendOutcome.failed(f"JetStream refused the message: {exc.description}")
        except (nats.errors.Error, OSError) as exc:
            return SendOutcome.failed(f"{type(exc).__name__}: {exc}"[:300])
        del ack  # stored (a duplicate within the window is stored once, and acknowledged)
        return SendOutcome.delivered()

    async def _client(self, target: URL) -> Client:
        host, port = target.host or "", target.port or DEFAULT_PORT
        broker: Broker = (host, port, target.user, target.password)
        return await self._clients.get(broker, lambda: self._connect(broker))

    async def _connect(self, broker: Broker) -> Client:
        host, port, user, password = broker
        # The address the policy resolved (and checked): connect there, and only there.
        address = (await self.context.resolve(host, port))[0]
        netloc = f"{f'[{address}]' if ':' in address else address}:{port}"

        def same_server(servers: list[Server], _: dict[str, Any]) -> tuple[Server | None, float]:
            # Back to the checked address after a restart, never to one the cluster announced.
            return next((s for s in servers if s.uri.netloc == netloc), None), 0.0

        return await nats.connect(
            servers=[f"nats://{netloc}"],
            user=user,
            password=password,
            connect_timeout=max(1, round(self.context.timeout)),
            reconnect_time_wait=RECONNECT_WAIT,
            max_reconnect_attempts=-1,
            reconnect_to_server_handler=same_server,
            error_cb=_ignore,
            allow_reconnect=True,
        )

    async def aclose(self) -> None:
        await self._clients.close(lambda client: client.close())


async def _ignore(_: Exception) -> None:
    """Connection errors surface as failed sends (recorded, retried); nats-py's default callback
    would log them again, with tracebacks."""
