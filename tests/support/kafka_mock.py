"""A Kafka-protocol broker for tests: librdkafka's mock cluster, from the confluent-kafka wheel.

Run as a script: creates the topics given as arguments, prints the bootstrap address, and
serves until stdin closes (so it dies with the process that started it). The mock cluster has
no admin API, hence topics up front.
"""

import ctypes
import glob
import os
import sys

import confluent_kafka


def _librdkafka() -> ctypes.CDLL:
    package = os.path.dirname(confluent_kafka.__file__)
    candidates = glob.glob(
        os.path.join(package, os.pardir, "confluent_kafka.libs", "librdkafka*.so*")
    )
    lib = ctypes.CDLL(candidates[0] if candidates else "librdkafka.so.1")
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def main(topics: list[str], partitions: int = 3) -> None:
    lib = _librdkafka()
    errstr = ctypes.create_string_buffer(512)
    handle = lib.rd_kafka_new(0, lib.rd_kafka_conf_new(), errstr, len(errstr))  # 0: producer
    if not handle:
        raise SystemExit(f"rd_kafka_new failed: {errstr.value.decode()}")
    cluster = lib.rd_kafka_mock_cluster_new(handle, 1)
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0)
    for topic in topics:
        if lib.rd_kafka_mock_topic_create(cluster, topic.encode(), partitions, 1) != 0:
            raise SystemExit(f"could not create topic {topic}")
    print(lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
