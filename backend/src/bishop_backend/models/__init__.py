"""Database tables and the API's data models."""

from bishop_backend.models.avatar import (
    Avatar,
    AvatarCreate,
    AvatarPublic,
    AvatarStatus,
    AvatarUpdate,
)
from bishop_backend.models.chat import (
    Chat,
    ChatCreate,
    ChatPublic,
    ChatUpdate,
    Message,
    MessageCreate,
    MessagePublic,
    MessageRole,
    MessageSent,
    ReplyStatus,
    SourcePublic,
)
from bishop_backend.models.event import ProcessedEvent
from bishop_backend.models.idempotency import IdempotencyRecord
from bishop_backend.models.material import Material, MaterialPublic, MaterialStatus
from bishop_backend.models.outbox import OutboxEvent
from bishop_backend.models.training import (
    ActiveVersionUpdate,
    AdapterVersion,
    AdapterVersionPublic,
    RunStatus,
    TrainingRun,
    TrainingRunPublic,
    TrainingStatus,
)
from bishop_backend.models.user import (
    RevokedToken,
    Token,
    User,
    UserCreate,
    UserPublic,
    UserSignup,
)

__all__ = [
    "ActiveVersionUpdate",
    "AdapterVersion",
    "AdapterVersionPublic",
    "Avatar",
    "AvatarCreate",
    "AvatarPublic",
    "AvatarStatus",
    "AvatarUpdate",
    "Chat",
    "ChatCreate",
    "ChatPublic",
    "ChatUpdate",
    "IdempotencyRecord",
    "Material",
    "MaterialPublic",
    "MaterialStatus",
    "Message",
    "MessageCreate",
    "MessagePublic",
    "MessageRole",
    "MessageSent",
    "OutboxEvent",
    "ProcessedEvent",
    "ReplyStatus",
    "RevokedToken",
    "RunStatus",
    "SourcePublic",
    "Token",
    "TrainingRun",
    "TrainingRunPublic",
    "TrainingStatus",
    "User",
    "UserCreate",
    "UserPublic",
    "UserSignup",
]
