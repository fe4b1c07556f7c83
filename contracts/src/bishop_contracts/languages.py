"""The languages an avatar may speak: those of Bishop's default voice (XTTS v2), which the
demo voice speaks too. A voice without the avatar's language speaks its fallback instead and
says so on the reply; the dub never fails for it."""

from typing import Literal

LANGUAGES = {
    "ru": "Русский",
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "it": "Italiano",
    "pt": "Português",
    "pl": "Polski",
    "tr": "Türkçe",
    "nl": "Nederlands",
    "cs": "Čeština",
    "ar": "العربية",
    "zh": "中文",
    "ja": "日本語",
    "hu": "Magyar",
    "ko": "한국어",
    "hi": "हिन्दी",
}
DEFAULT_LANGUAGE = "ru"

Language = Literal[
    "ru",
    "en",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "pl",
    "tr",
    "nl",
    "cs",
    "ar",
    "zh",
    "ja",
    "hu",
    "ko",
    "hi",
]
