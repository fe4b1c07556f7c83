"""The bus: `kafka://host:port[,host:port][?fetch_max_wait_ms=100]` (aiokafka) or
`memory://name` (in-process)."""

from urllib.parse import parse_qs, urlsplit

from bishop_infra.bus.base import Bus, Handler, Subscription
from bishop_infra.bus.memory import MemoryBus, shared_broker


def bus_from_url(url: str, *, client_id: str = "bishop", **delivery: float) -> Bus:
    """`delivery`: the retry settings of `Bus` (outage_retry_seconds, poison_attempts, ...)."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryBus(shared_broker(parts.netloc or "default"), **delivery)
    if parts.scheme == "kafka":
        from bishop_infra.bus.kafka import KafkaBus

        wait = int(parse_qs(parts.query).get("fetch_max_wait_ms", ["100"])[0])
        return KafkaBus(parts.netloc, client_id=client_id, fetch_max_wait_ms=wait, **delivery)
    raise ValueError(f"unsupported bus URL {url!r}: use kafka://host:port or memory://")


__all__ = ["Bus", "Handler", "Subscription", "bus_from_url"]
