"""What the registration conversation shows at each step: texts and keyboards.

Callback data is "reg:<step>:<value>", so that a button from an earlier step is recognised
as stale instead of answering the wrong question.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.people import Person
from evacuation.registrations import AgeGroup, Documents, Need, Registration, by_key
from messages.formatting import country_name
from messages.i18n import N_
from storage.references import spoken

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None


class Step(enum.StrEnum):
    SCOPE = "scope"
    PEOPLE = "people"
    NATIONALITY = "nationality"
    DOCUMENTS = "documents"
    NEEDS = "needs"
    LOCATION = "location"
    DESTINATION = "destination"
    PHONE = "phone"
    CONSENT = "consent"
    REVIEW = "review"
    RESUME = "resume"
    MANAGE = "manage"
    CANCEL = "cancel"


# The questions, in the order a first registration asks them.
QUESTIONS = (
    Step.SCOPE,
    Step.PEOPLE,
    Step.NATIONALITY,
    Step.DOCUMENTS,
    Step.NEEDS,
    Step.LOCATION,
    Step.DESTINATION,
    Step.PHONE,
    Step.CONSENT,
)
# What the review lets people change, with the label of its button.
CHANGEABLE = (
    (Step.PEOPLE, N_("People")),
    (Step.NATIONALITY, N_("Nationality")),
    (Step.DOCUMENTS, N_("Documents")),
    (Step.NEEDS, N_("Special needs")),
    (Step.LOCATION, N_("Location")),
    (Step.DESTINATION, N_("Destination")),
    (Step.PHONE, N_("Phone")),
)
BACK_LABEL = N_("Back")


@dataclass(frozen=True)
class Reply:
    text: str
    markup: Markup = None


def button(text: str, step: Step, value: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=f"reg:{step.value}:{value}")


def back(person: Person, step: Step) -> InlineKeyboardButton:
    return button("⬅ " + person.gettext(BACK_LABEL), step, "back")


def scope_question(person: Person) -> Reply:
    _ = person.gettext
    rows = [
        [button("🙋 " + _("Just me"), Step.SCOPE, "self")],
        [button("👨‍👩‍👧 " + _("Me and my family or group"), Step.SCOPE, "household")],
    ]
    return Reply(
        _("Register for evacuation or transport. Who are you registering?")
        + "\n\n"
        + _("You can stop at any time with /cancel, and come back later: your answers are saved."),
        InlineKeyboardMarkup(rows),
    )


def people_question(person: Person, registration: Registration) -> Reply:
    _ = person.gettext
    if not registration.for_household:
        rows = [[button(_(group.label), Step.PEOPLE, f"one-{group.key}")] for group in AgeGroup]
        rows.append([back(person, Step.PEOPLE)])
        return Reply(_("How old are you?"), InlineKeyboardMarkup(rows))
    rows = []
    for group in AgeGroup:
        rows.append(
            [
                InlineKeyboardButton(
                    f"{_(group.label)}: {registration.count(group)}",
                    callback_data=f"reg:people:show-{group.key}",
                )
            ]
        )
        rows.append(
            [
                button("➖", Step.PEOPLE, f"minus-{group.key}"),
                button("➕", Step.PEOPLE, f"plus-{group.key}"),
            ]
        )
    rows.append([back(person, Step.PEOPLE), button("✅ " + _("Done"), Step.PEOPLE, "done")])
    text = person.format(
        _("How many people, counting yourself? Use ➖ and ➕, then tap Done. Total: {total}"),
        total=registration.people,
    )
    return Reply(text, InlineKeyboardMarkup(rows))


def nationality_question(person: Person, codes: Sequence[str], note: str | None = None) -> Reply:
    """Countries with a mission on record are one tap away; any other can be typed."""
    _ = person.gettext
    named = sorted((country_name(code, person.language), code) for code in codes)
    buttons = [button(name, Step.NATIONALITY, code) for name, code in named]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append([button(_("Stateless or not sure"), Step.NATIONALITY, "none")])
    rows.append([back(person, Step.NATIONALITY)])
    text = _("What is your nationality? Type the name of your country in any language, or pick it.")
    return Reply(f"{note}\n\n{text}" if note else text, InlineKeyboardMarkup(rows))


def country_choices(person: Person, matches: Sequence[tuple[str, str]]) -> Reply:
    _ = person.gettext
    rows = [[button(name, Step.NATIONALITY, code)] for code, name in matches]
    rows.append([button(_("None of these"), Step.NATIONALITY, "again")])
    return Reply(_("Did you mean:"), InlineKeyboardMarkup(rows))


def documents_question(person: Person) -> Reply:
    _ = person.gettext
    rows = [[button(_(choice.label), Step.DOCUMENTS, choice.key)] for choice in Documents]
    rows.append([back(person, Step.DOCUMENTS)])
    return Reply(
        _("Does everyone you are registering have a passport or other travel document?"),
        InlineKeyboardMarkup(rows),
    )


def needs_question(person: Person, registration: Registration) -> Reply:
    _ = person.gettext
    chosen = set(registration.needs or [])
    rows = [
        [
            button(
                ("✅ " if need.key in chosen else "⬜ ") + f"{need.icon} {_(need.label)}",
                Step.NEEDS,
                need.key,
            )
        ]
        for need in Need
    ]
    rows.append([back(person, Step.NEEDS), button("➡ " + _("Continue"), Step.NEEDS, "done")])
    return Reply(
        _(
            "Does anyone need special help? Tap all that apply, then Continue. "
            "If nobody does, just tap Continue."
        ),
        InlineKeyboardMarkup(rows),
    )


def location_question(person: Person, note: str | None = None) -> Reply:
    _ = person.gettext
    keyboard = ReplyKeyboardMarkup(
        [
            [KeyboardButton("📍 " + _("Share my location"), request_location=True)],
            [KeyboardButton("⬅ " + _(BACK_LABEL))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
    text = _("Where are you now? Share your location with the button, or type the place name.")
    return Reply(f"{note}\n\n{text}" if note else text, keyboard)


def place_choices(person: Person, typed: str, places: Sequence[tuple[int, str]]) -> Reply:
    _ = person.gettext
    rows = [[button(f"📍 {name}", Step.LOCATION, str(place_id))] for place_id, name in places]
    rows.append([button(person.format(_("Keep “{text}”"), text=typed[:40]), Step.LOCATION, "keep")])
    return Reply(_("Which place do you mean?"), InlineKeyboardMarkup(rows))


def destination_question(person: Person, note: str | None = None) -> Reply:
    _ = person.gettext
    rows = [
        [button(_("No preference"), Step.DESTINATION, "any")],
        [back(person, Step.DESTINATION)],
    ]
    text = _("Where do you want to go? Type a town or country, or tap No preference.")
    return Reply(f"{note}\n\n{text}" if note else text, InlineKeyboardMarkup(rows))


def phone_question(person: Person, note: str | None = None) -> Reply:
    _ = person.gettext
    rows = [[button(_("Skip"), Step.PHONE, "skip")], [back(person, Step.PHONE)]]
    text = _(
        "A phone number helps the transport partner reach you. Type it with the country code, "
        "for example +254 712 345 678, or tap Skip."
    )
    return Reply(f"{note}\n\n{text}" if note else text, InlineKeyboardMarkup(rows))


def consent_question(person: Person, declined: bool = False) -> Reply:
    _ = person.gettext
    if declined:
        rows = [
            [button("✅ " + _("Yes, share it"), Step.CONSENT, "yes")],
            [button("🗑 " + _("Cancel my registration"), Step.CONSENT, "discard")],
        ]
        return Reply(
            _(
                "Without your permission we cannot put you on a transport list. "
                "Nothing is shared unless you agree."
            ),
            InlineKeyboardMarkup(rows),
        )
    rows = [
        [button("✅ " + _("Yes, share it"), Step.CONSENT, "yes")],
        [button(_("No"), Step.CONSENT, "no")],
        [back(person, Step.CONSENT)],
    ]
    return Reply(
        _(
            "May we share this registration with the organisation that runs the transport, "
            "so that they can plan seats and pick-up? They see your answers and your "
            "reference, not your Telegram account."
        ),
        InlineKeyboardMarkup(rows),
    )


def summary(person: Person, registration: Registration) -> str:
    _ = person.gettext
    groups = ", ".join(
        f"{_(group.label)}: {registration.count(group)}"
        for group in AgeGroup
        if registration.count(group)
    )
    who = _("Me and my family or group") if registration.for_household else _("Just me")
    nationality = registration.nationality
    documents = by_key(Documents, registration.documents or "")
    needs = ", ".join(_(need.label) for need in registration.need_list) or _("None")
    if registration.location_text:
        where = registration.location_text
    elif registration.latitude is not None:
        where = _("Shared location")
    else:
        where = "—"
    values = {
        "who": f"{who} ({groups})" if groups else who,
        "nationality": (
            _("Stateless or not sure")
            if nationality == "none"
            else country_name(nationality, person.language)
            if nationality
            else "—"
        ),
        "documents": _(documents.label) if documents else "—",
        "needs": needs,
        "where": where,
        "destination": registration.destination or _("No preference"),
        "phone": registration.phone or _("Not given"),
        "consent": _("Yes") if registration.consent_share else _("No"),
    }
    template = _(
        "👥 {who}\n🌍 Nationality: {nationality}\n🛂 Travel documents: {documents}\n"
        "🩺 Special needs: {needs}\n📍 Now in: {where}\n🎯 Destination: {destination}\n"
        "📞 Phone: {phone}\n🤝 Shared with the transport partner: {consent}"
    )
    return person.format(template, **values)


def review(person: Person, registration: Registration) -> Reply:
    _ = person.gettext
    change = [
        button("✏ " + _(label), Step.REVIEW, f"edit-{step.value}") for step, label in CHANGEABLE
    ]
    rows = [change[i : i + 2] for i in range(0, len(change), 2)]
    if registration.submitted:
        rows.append([button("✅ " + _("Done"), Step.REVIEW, "done")])
        heading = person.format(
            _("Your registration {reference}. Tap an answer to change it, then Done."),
            reference=spoken(registration.reference or ""),
        )
    else:
        rows.append([button("✅ " + _("Confirm"), Step.REVIEW, "confirm")])
        rows.append([button("🗑 " + _("Cancel my registration"), Step.REVIEW, "discard")])
        heading = _("Please check your answers. Tap one to change it, or Confirm.")
    return Reply(f"{heading}\n\n{summary(person, registration)}", InlineKeyboardMarkup(rows))


def resume_question(person: Person, started: str) -> Reply:
    _ = person.gettext
    rows = [
        [button("▶ " + _("Continue"), Step.RESUME, "continue")],
        [button("🔄 " + _("Start again"), Step.RESUME, "restart")],
    ]
    text = person.format(
        _("You started a registration {when}. Your answers are saved."), when=started
    )
    return Reply(text, InlineKeyboardMarkup(rows))


def manage(person: Person, registration: Registration) -> Reply:
    _ = person.gettext
    rows = [
        [button("✏ " + _("Change my answers"), Step.MANAGE, "change")],
        [button("🗑 " + _("Cancel my registration"), Step.MANAGE, "cancel")],
        [button(_("Close"), Step.MANAGE, "close")],
    ]
    heading = person.format(
        _("You are registered for evacuation or transport. Your reference: {reference}"),
        reference=spoken(registration.reference or ""),
    )
    return Reply(f"{heading}\n\n{summary(person, registration)}", InlineKeyboardMarkup(rows))


def cancel_question(person: Person, registration: Registration) -> Reply:
    _ = person.gettext
    rows = [
        [button("🗑 " + _("Yes, cancel it"), Step.CANCEL, "yes")],
        [button(_("No, keep it"), Step.CANCEL, "no")],
    ]
    text = person.format(
        _(
            "Cancel registration {reference}? You will lose your place on the transport list, "
            "and we delete your phone number and location."
        ),
        reference=spoken(registration.reference or ""),
    )
    return Reply(text, InlineKeyboardMarkup(rows))
