"""The bus: `kafka://host:port[,host:port]` (aiokafka) or `memory://name` (in-process)."""

from urllib.parse import urlsplit

from bishop_infra.bus.base import Bus, Handler, Subscription
from bishop_infra.bus.memory import MemoryBus, shared_broker


def bus_from_url(url: str, *, client_id: str = "bishop") -> Bus:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryBus(shared_broker(parts.netloc or "default"))
    if parts.scheme == "kafka":
        from bishop_infra.bus.kafka import KafkaBus

        return KafkaBus(parts.netloc, client_id=client_id)
    raise ValueError(f"unsupported bus URL {url!r}: use kafka://host:port or memory://")


__all__ = ["Bus", "Handler", "Subscription", "bus_from_url"]
