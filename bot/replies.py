"""Sending helpers shared by the flows: the current onboarding step, safe edits."""

from __future__ import annotations

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.config import Settings
from bot.keyboards import consent_keyboard, language_keyboard, main_menu
from bot.people import Person, current_person
from bot.services import services_of


def consent_summary(person: Person) -> str:
    _ = person.gettext
    return "\n\n".join(
        (
            _(
                "Welcome. Humanitarian responders run this service to tell you where to find "
                "help and to hear what you need."
            ),
            _("We keep only what you choose to tell us, and you can see or delete it at any time."),
            _("Do you agree?"),
        )
    )


def consent_statement(person: Person, *, ask: bool = True) -> str:
    """The notice's second level, the simplified statement (the first is the summary, the
    third the full notice in bot/flows/privacy.py); also the text of /privacy."""
    _ = person.gettext
    paragraphs = (
        _("How we use your information"),
        _(
            "Who we are: humanitarian organisations responding to this crisis, coordinated "
            "under the Migration Crisis Operational Framework of the International "
            "Organization for Migration (IOM)."
        ),
        _(
            "What we keep: a code instead of your Telegram name or number, the language you "
            "choose, the topics you subscribe to, and what you send us. We do not keep your "
            "phone number unless you give it to us for a registration."
        ),
        _(
            "Why: to send you information that matters to you, to answer your questions and "
            "to see which needs are not being met."
        ),
        _(
            "Who sees it: only trained staff of the response, each only what their work "
            "needs. Reports use numbers, never names. Reports of abuse or danger go only to "
            "the protection staff."
        ),
        _(
            "Your rights: you can use the service without telling us who you are, see what "
            "we hold, change it, or ask us to delete it. Saying no does not affect any help "
            "you receive elsewhere."
        ),
        _("Send /privacy at any time to see or delete your data, or to withdraw your consent."),
    )
    return "\n\n".join((*paragraphs, _("Do you agree?")) if ask else paragraphs)


async def send_current_step(
    context: ContextTypes.DEFAULT_TYPE, person: Person, *, greeting: str | None = None
) -> Message:
    """Show the person where they are: consent notice, language choice or the main menu."""
    _ = person.gettext
    settings = services_of(context).settings
    if person.contact is None or not person.contact.has_consented:
        return await context.bot.send_message(
            person.chat_id, consent_summary(person), reply_markup=consent_keyboard(_)
        )
    if not person.contact.language_chosen:
        return await context.bot.send_message(
            person.chat_id,
            _("Choose your language:"),
            reply_markup=language_keyboard(settings.enabled_languages, None),
        )
    text = greeting or _("Main menu. Choose what you need:")
    return await context.bot.send_message(person.chat_id, text, reply_markup=main_menu(_))


async def edit_quietly(
    query: CallbackQuery, text: str | None = None, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Edit the message behind a button; a message that is gone or unchanged is not an error."""
    try:
        if text is None:
            await query.edit_message_reply_markup(reply_markup=markup)
        else:
            await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as error:
        lowered = error.message.lower()
        if "not modified" not in lowered and "not found" not in lowered:
            raise


async def answer_stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button from an old message, another version, or forged data: say so, show the step."""
    query = update.callback_query
    if query is None:
        return
    person = await current_person(update, context)
    await query.answer(person.gettext("This button is no longer active."))
    await edit_quietly(query, None, None)
    await send_current_step(context, person)


async def onboarded_person(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Person | None:
    """The person if they have consented and chosen a language; otherwise show them the step
    they are at and return None."""
    person = await current_person(update, context)
    if person.onboarded:
        return person
    await send_current_step(context, person)
    return None


def help_line(person: Person, settings: Settings) -> str:
    """Where to turn when we have nothing on record: the deployment's help line, if any."""
    number = settings.services.help_line
    if number is None:
        return person.gettext("For help, go to the nearest humanitarian staff or help desk.")
    return person.format(person.gettext("For help, call the help line: {number}"), number=number)
