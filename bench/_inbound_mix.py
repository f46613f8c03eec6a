"""The realistic update mix of bench/inbound.py and bench/faults.py: what people send.

Each simulated person is one private chat with a script of updates (JSON objects as Telegram
sends them, without update_id: the poster numbers them as they go out, so ids increase in
arrival order, per chat and overall). Every script starts with the onboarding (/start, "I
agree", a language tap) and then does a random mix of:

- free-text feedback, mostly in the person's language, sometimes in another (the bot then
  offers to switch), from short hand-written messages in 15 languages;
- main-menu taps (labels in the person's language, as their keyboard shows them): Help,
  Updates, Language (then a language tap);
- "Find a shelter" then a location near the demo data's shelters;
- "Consulate contacts" then a typed country name, sometimes then a country button;
- "Tell us what you need", one or two needs tapped, Done, then words;
- at most once, the whole evacuation registration (menu tap, ten answers, the location
  shared, confirm): 11 updates.

A script stays at or below 25 updates and 6 free texts, under the bot's flood limits (30
updates in 30 s per person, bot/flood.py; 8 texts a minute, feedback/intake.py), so the mix
is not turned into flood notices whatever the pace.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from bot.keyboards import MenuItem
from messages.demo import DEMO_CENTRE
from messages.i18n import translations

FIRST_USER = 710_000_000
MAX_UPDATES = 25
MAX_TEXTS = 6
BOT = {"id": 123456, "is_bot": True, "first_name": "Bench bot", "username": "bench_bot"}

# People's languages (weights), all enabled by default.
LANGUAGES = {
    "ar": 18, "en": 16, "fr": 10, "uk": 9, "es": 8, "so": 7, "fa": 6, "sw": 5, "ps": 4,
    "ru": 4, "ht": 4, "tr": 3, "am": 2, "ur": 2, "bn": 2,
}  # fmt: skip

FEEDBACK = {
    "en": (
        "We need drinking water at the school shelter, there are many children here",
        "My mother needs her insulin, where can we find a doctor?",
        "The road to the north camp is flooded, the bus cannot pass",
        "Is it true that the bridge will be closed tonight?",
        "No food distribution in our area since Tuesday",
        "Thank you for the blankets",
    ),
    "fr": (
        "Nous avons besoin d'eau potable, les enfants sont malades",
        "Où est la distribution de nourriture aujourd'hui ?",
        "Ma famille est séparée, comment retrouver mon frère ?",
        "Il n'y a plus de place dans l'abri de l'église",
        "Merci pour votre aide",
    ),
    "ar": (
        "نحتاج إلى ماء للشرب في المخيم",
        "أين يمكن أن نجد طبيبا؟ ابني مريض",
        "لا يوجد طعام منذ يومين",
        "هل الطريق إلى الحدود مفتوح؟",
        "شكرا على المساعدة",
    ),
    "es": (
        "Necesitamos agua y comida para cinco personas",
        "¿Dónde está el refugio más cercano?",
        "Mi hija está enferma y no hay médico",
        "Gracias por la información",
    ),
    "uk": (
        "Нам потрібна вода і їжа для дітей",
        "Де найближчий пункт евакуації?",
        "Моя мама не може ходити, потрібен транспорт",
        "Дякую за допомогу",
    ),
    "so": (
        "Waxaan u baahanahay biyo nadiif ah",
        "Carruurtu waa gaajaysan yihiin, cunto ma jirto",
        "Halkee ayaan ka helaa dhakhtar?",
        "Mahadsanid caawimaadda",
    ),
    "sw": (
        "Tunahitaji maji safi na chakula",
        "Hospitali iko wapi? Mtoto wangu ni mgonjwa",
        "Asante kwa msaada wenu",
    ),
    "fa": (
        "ما به آب آشامیدنی نیاز داریم",
        "کجا می‌توانیم دکتر پیدا کنیم؟",
        "از کمک شما متشکرم",
    ),
    "ps": ("موږ اوبو او خوړو ته اړتیا لرو", "ډاکټر چیرته دی؟ زما زوی ناروغ دی"),
    "ru": (
        "Нам нужна питьевая вода и одеяла",
        "Где можно получить лекарства?",
        "Спасибо за помощь",
    ),
    "ht": (
        "Nou bezwen dlo pou bwè ak manje",
        "Kote nou ka jwenn yon doktè?",
        "Mèsi pou èd la",
    ),
    "tr": ("Temiz suya ve yiyeceğe ihtiyacımız var", "En yakın hastane nerede?"),
    "am": ("የመጠጥ ውሃ እንፈልጋለን", "ሐኪም የት ማግኘት እንችላለን?"),
    "ur": ("ہمیں پینے کا پانی چاہیے", "ڈاکٹر کہاں مل سکتا ہے؟"),
    "bn": ("আমাদের খাবার পানি দরকার", "ডাক্তার কোথায় পাওয়া যাবে?"),
}
COUNTRIES = {  # a typed country (the person's language) and its code for the button
    "en": ("Syria", "SY"), "fr": ("Soudan", "SD"), "ar": ("سوريا", "SY"), "es": ("Venezuela", "VE"),
    "uk": ("Україна", "UA"), "so": ("Soomaaliya", "SO"), "fa": ("افغانستان", "AF"),
    "sw": ("Somalia", "SO"), "ps": ("افغانستان", "AF"), "ru": ("Украина", "UA"),
    "ht": ("Ayiti", "HT"), "tr": ("Suriye", "SY"), "am": ("ኢትዮጵያ", "ET"),
    "ur": ("افغانستان", "AF"), "bn": ("বাংলাদেশ", "BD"),
}  # fmt: skip
# Actions after onboarding (weights). A registration happens at most once per person.
ACTIONS = {
    "feedback": 30, "help": 8, "updates": 6, "language": 4, "shelter": 16, "consulate": 8,
    "needs": 10, "registration": 5, "start": 4,
}  # fmt: skip


@dataclass
class Person:
    """One simulated person: their chat, language and the message ids they have used."""

    user_id: int
    language: str
    _message_ids: int = 0
    _query_ids: int = 0

    @property
    def user(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "is_bot": False,
            "first_name": "Person",
            "language_code": self.language,
        }

    @property
    def chat(self) -> dict[str, Any]:
        return {"id": self.user_id, "type": "private", "first_name": "Person"}

    def message(self, **content: Any) -> dict[str, Any]:
        self._message_ids += 1
        body = {
            "message_id": self._message_ids,
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            **content,
        }
        return {"message": body}

    def text(self, words: str) -> dict[str, Any]:
        if words.startswith("/"):
            command = words.split()[0]
            entity = {"type": "bot_command", "offset": 0, "length": len(command)}
            return self.message(text=words, entities=[entity])
        return self.message(text=words)

    def location(self, latitude: float, longitude: float) -> dict[str, Any]:
        return self.message(location={"latitude": latitude, "longitude": longitude})

    def tap(self, data: str) -> dict[str, Any]:
        """An inline button of a message the bot sent earlier."""
        self._query_ids += 1
        self._message_ids += 1
        shown = {
            "message_id": self._message_ids,
            "date": int(time.time()),
            "chat": self.chat,
            "from": BOT,
            "text": "…",
        }
        query = {
            "id": f"{self.user_id}-{self._query_ids}",
            "from": self.user,
            "chat_instance": f"ci{self.user_id}",
            "data": data,
            "message": shown,
        }
        return {"callback_query": query}

    def menu(self, item: MenuItem) -> dict[str, Any]:
        return self.text(item.text(translations(self.language).gettext))


@dataclass
class Script:
    person: Person
    updates: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # the action of each update
    texts: int = 0  # free texts that become feedback items

    def add(self, kind: str, *updates: dict[str, Any]) -> None:
        self.updates.extend(updates)
        self.kinds.extend([kind] * len(updates))


def weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def near_demo(rng: random.Random) -> tuple[float, float]:
    """A point within about 15 km of the demo region's centre (shelters and departure points)."""
    latitude, longitude = DEMO_CENTRE
    return latitude + rng.uniform(-0.12, 0.12), longitude + rng.uniform(-0.15, 0.15)


def onboarding(script: Script) -> None:
    person = script.person
    script.add(
        "onboarding", person.text("/start"), person.tap("consent:accept"),
        person.tap(f"lang:{person.language}"),
    )  # fmt: skip


def action(script: Script, kind: str, rng: random.Random, registered: bool) -> bool:
    """Append one action's updates; False when it does not fit (or is not possible now)."""
    person = script.person
    if kind == "feedback":
        if script.texts >= MAX_TEXTS:
            return False
        language = person.language if rng.random() < 0.85 else weighted(rng, LANGUAGES)
        script.texts += 1
        script.add(kind, person.text(rng.choice(FEEDBACK[language])))
    elif kind == "help":
        script.add(kind, person.menu(MenuItem.HELP) if rng.random() < 0.7 else person.text("/help"))
    elif kind == "updates":
        script.add(kind, person.menu(MenuItem.UPDATES))
    elif kind == "language":
        script.add(kind, person.menu(MenuItem.LANGUAGE), person.tap(f"lang:{person.language}"))
    elif kind == "start":
        script.add(kind, person.text(rng.choice(("/start", "/menu"))))
    elif kind == "shelter":
        script.add(kind, person.menu(MenuItem.SHELTER), person.location(*near_demo(rng)))
    elif kind == "consulate":
        typed, code = COUNTRIES[person.language]
        updates = [person.menu(MenuItem.CONSULATE), person.text(typed)]
        if rng.random() < 0.5:
            updates.append(person.tap(f"con:{code}"))
        script.add(kind, *updates)
    elif kind == "needs":
        if script.texts >= MAX_TEXTS:
            return False
        first, second = rng.sample(range(8), 2)
        mask = 1 << first | (1 << second if rng.random() < 0.5 else 0)
        script.texts += 1
        script.add(
            kind, person.menu(MenuItem.FEEDBACK), person.tap(f"need:{1 << first}"),
            person.tap(f"need:ok:{mask}"), person.text(rng.choice(FEEDBACK[person.language])),
        )  # fmt: skip
    elif kind == "registration":
        if registered:
            return False
        _, nationality = COUNTRIES[person.language]
        script.add(
            kind,
            person.menu(MenuItem.EVACUATION),
            person.tap("reg:scope:self"),
            person.tap("reg:people:one-adults"),
            person.tap(f"reg:nationality:{nationality}"),
            person.tap(f"reg:documents:{rng.choice(('all', 'some', 'none'))}"),
            person.tap("reg:needs:done"),
            person.location(*near_demo(rng)),
            person.tap("reg:destination:any"),
            person.tap("reg:phone:skip"),
            person.tap("reg:consent:yes"),
            person.tap("reg:review:confirm"),
        )
    return True


def script_for(index: int, rng: random.Random) -> Script:
    """Person `index`'s updates: onboarding, then actions until about 8-25 updates."""
    person = Person(FIRST_USER + index, weighted(rng, LANGUAGES))
    script = Script(person)
    onboarding(script)
    target = rng.randint(8, MAX_UPDATES)
    registered = False
    while len(script.updates) < target:
        kind = weighted(rng, ACTIONS)
        before = len(script.updates)
        if not action(script, kind, rng, registered):
            continue
        if len(script.updates) > MAX_UPDATES:  # undo what does not fit, and stop
            del script.updates[before:], script.kinds[before:]
            break
        registered = registered or kind == "registration"
    return script


def scripts(total_updates: int, seed: int = 0) -> list[Script]:
    """People until the scripts hold at least `total_updates` updates."""
    rng = random.Random(seed)
    made: list[Script] = []
    count = 0
    while count < total_updates:
        script = script_for(len(made), rng)
        made.append(script)
        count += len(script.updates)
    return made
