"""Uploads on the Train page in a real headless Chromium: files dropped on the page, each in a row
of its own; a short recording offered as a voice sample; a Telegram export whose senders do not
include the avatar's name, read again as the person the user picks."""

import base64
import json
import re
from pathlib import Path

from playwright.async_api import expect

from tests import factories
from tests.frontend.conftest import App, shot
from tests.frontend.test_browser import signup

# Telegram Desktop's result.json: Анна (the avatar) never wrote in it; Аня Петрова did.
EXPORT = {
    "name": "Ваня",
    "type": "personal_chat",
    "messages": [
        {"id": n, "type": "message", "date": "2024-03-05T10:00:00", "from": who, "text": text}
        for n, (who, text) in enumerate(
            [
                ("Ваня", "Привет! Как прошла лекция?"),
                ("Аня Петрова", "Отлично, студенты задавали много вопросов."),
                ("Ваня", "А про что?"),
                ("Аня Петрова", "Про законы Ньютона и инерцию."),
                ("Ваня", "Здорово, до завтра."),
            ],
            1,
        )
    ],
}

# Files built in the page and dropped on it as a user's drag and drop would.
DROP = """([files, selector]) => {
    const transfer = new DataTransfer();
    for (const f of files) {
        const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
        transfer.items.add(new File([bytes], f.name, {type: f.type}));
    }
    const target = document.querySelector(selector);
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,
                                                  dataTransfer: transfer}));
    }
}"""


def _file(name: str, body: bytes, kind: str = "") -> dict[str, str]:
    return {"name": name, "data": base64.b64encode(body).decode(), "type": kind}


async def _train_page(page, name: str = "Анна") -> str:  # type: ignore[no-untyped-def]
    await signup(page)
    await page.fill("#name", name)
    await page.click("text=Create avatar")
    await page.click(f"#avatar-list >> text={name}")
    await page.wait_for_url(re.compile(r".*/avatars/[0-9a-f-]{36}$"))
    await page.click("text=Train")
    await expect(page.locator("#upload-form")).to_be_visible()
    return page.url


async def test_dropped_files_each_get_a_row_and_a_bad_one_spares_the_rest(page, app: App) -> None:  # type: ignore[no-untyped-def]
    await _train_page(page)
    files = [
        _file("notes.txt", factories.TEXT, "text/plain"),
        _file("setup.exe", b"MZ\x90\x00" + bytes(range(256)) * 4, "application/octet-stream"),
        _file("lecture.md", "# Импульс\n\nПроизведение массы на скорость.".encode()),
    ]
    # Dropped outside the zone: while the Train page is open, the whole page takes files.
    await page.evaluate(DROP, [files, "h1"])
    rows = page.locator("#upload-queue .upload-row")
    await expect(rows).to_have_count(3)
    await expect(rows.locator(".upload-kind")).to_have_count(0)  # no choice for texts
    await expect(page.locator("#upload-button")).to_have_text("Upload 3 files")
    await page.click("#upload-button")

    bad = rows.filter(has_text="setup.exe")
    await expect(bad).to_have_attribute("data-state", "rejected")
    await expect(bad.locator(".upload-result")).to_contain_text("Rejected: unsupported file type")
    for name in ("notes.txt", "lecture.md"):
        row = rows.filter(has_text=name)
        await expect(row).to_have_attribute("data-state", "done")
        await expect(row.locator(".upload-result")).to_have_text("Uploaded")
        await expect(row.locator("progress")).to_have_attribute("value", "100")
    await expect(page.locator(".fh-toast-error")).to_contain_text("setup.exe")
    await expect(page.locator(".fh-toast-success")).to_contain_text("Uploaded 2 files.")
    # The good files are kept and listed; the bad one is not.
    materials = page.locator("#materials")
    await expect(materials).to_contain_text("notes.txt")
    await expect(materials).to_contain_text("lecture.md")
    await expect(materials).not_to_contain_text("setup.exe")
    await shot(page, "uploads-desktop")

    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(page, "uploads-phone")


async def test_a_short_recording_is_offered_as_a_voice_sample(
    page, app: App, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    await _train_page(page)
    wav = tmp_path / "hello.wav"
    wav.write_bytes(factories.wav_bytes(2.0))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(factories.TEXT)
    await page.set_input_files("#file", [str(wav), str(notes)])  # the zone's own file picker
    row = page.locator(".upload-row", has_text="hello.wav")
    await expect(row.locator("input[value=voice_synthesis]")).to_be_checked()
    await expect(row.locator(".upload-kind")).to_contain_text("Voice sample — about 15 s")
    await expect(page.locator(".upload-row", has_text="notes.txt").locator("input")).to_have_count(
        0
    )
    await page.click("#upload-button")
    await expect(row).to_have_attribute("data-state", "done")
    sample = page.locator("#materials li", has_text="hello.wav")
    await expect(sample).to_contain_text("Voice sample")
    await expect(sample.locator("audio")).to_have_count(1)
    await expect(page.locator("#materials li", has_text="notes.txt")).to_contain_text(
        "Training material"
    )


async def test_a_chat_export_without_the_avatars_name_asks_who_the_avatar_is(
    page, app: App
) -> None:  # type: ignore[no-untyped-def]
    await _train_page(page)
    export = json.dumps(EXPORT, ensure_ascii=False).encode()
    await page.evaluate(DROP, [[_file("result.json", export, "application/json")], "#dropzone"])
    await page.click("#upload-button")
    material = page.locator("#materials li", has_text="result.json")
    senders = material.locator("form.senders")
    await expect(senders).to_be_visible(timeout=60_000)  # the worker read it and found no Анна
    await expect(material.locator(".badge")).to_have_text(re.compile("fail", re.I))
    await expect(senders).to_contain_text("Ваня")
    await expect(senders).to_contain_text("Аня Петрова")
    await expect(senders.locator("label", has_text="Ваня")).to_contain_text("3 messages")
    await expect(senders.locator("label", has_text="Аня Петрова")).to_contain_text("2 messages")

    await expect(senders.locator("input:checked")).to_have_count(0)  # the user chooses
    await shot(page, "uploads-senders")
    await senders.locator("label", has_text="Аня Петрова").locator("input").check()
    await senders.locator("button[type=submit]").click()
    await expect(page.locator(".fh-toast").last).to_contain_text("Аня Петрова")
    await expect(material.locator(".badge.processed")).to_have_count(1, timeout=60_000)
    await expect(material).to_contain_text("Answers are the messages of Аня Петрова")
    # Her lines are now the avatar's answers; Ваня's are the questions.
    await material.locator("text=Preview").click()
    preview = material.locator("[id^=preview-]")
    await expect(preview).to_contain_text("Про законы Ньютона и инерцию.")
    await expect(preview).not_to_contain_text("Как прошла лекция")
