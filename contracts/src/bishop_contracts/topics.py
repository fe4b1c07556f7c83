"""Bus topics. The first five are the thesis's; the rest carry what the thesis had no events for."""

from enum import StrEnum


class Topic(StrEnum):
    # backend -> ml-text
    LLM_TRAIN = "llm-train"
    LLM_INFERENCE = "llm-inference"
    # the user stopped a reply: the worker stops generating it (the backend already keeps
    # the text streamed so far, so a stop works with the worker down)
    LLM_CANCEL = "llm-cancel"
    # backend -> ml-sound
    SOUND_INFERENCE = "sound-inference"
    # backend -> both workers (each keeps the materials of its kind)
    MATERIALS = "materials"
    # ml-text -> backend
    # save_response and the response_delta events before it share a topic and a key, so a
    # reply's pieces arrive in order
    SAVE_RESPONSE = "save-response"
    TRAIN_STATUS = "train-status"
    # ml-sound -> backend
    SAVE_RESPONSE_DUB = "save-response-dub"
    # workers -> backend
    MATERIAL_STATUS = "material-status"
    # health: the backend pings each worker on its own topic, workers answer on one
    HEALTH_CHECK_TEXT = "health-check-ml-text"
    HEALTH_CHECK_SOUND = "health-check-ml-sound"
    WORKER_HEALTH = "worker-health"
    # any consumer -> backend: events that can never be handled, with the reason; the backend
    # marks what they belonged to as failed
    DEAD_LETTER = "dead-letter"


# Partition counts the broker needs; a Kafka deployment creates the topics with these.
PARTITIONS: dict[Topic, int] = {topic: 3 for topic in Topic}
