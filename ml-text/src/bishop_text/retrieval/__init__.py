"""Finding the passages of an avatar's materials a reply should be built on: lexical (BM25
over stems) and dense (multilingual embeddings) rankings, fused, optionally reranked."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    id: str  # "{material id}:{index}"
    text: str  # what the person wrote, as the reply's sources show it
    context: str = ""  # the material's title and date: indexed with the text, not shown

    @property
    def material_id(self) -> str:
        return self.id.rsplit(":", 1)[0]

    @property
    def indexed(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text
