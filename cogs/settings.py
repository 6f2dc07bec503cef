"""/settings: a member's /imagine defaults (style, model, aspect, count, steps, negative
prompt, private), and with `scope: server` a server's defaults and limits (Manage Server).

The panel is an ephemeral message (Components V2: five selects and a row of buttons don't
fit the five rows of a classic view). Its selects and buttons are DynamicItems that hold
only which setting they change: each click reads and writes SQLite, then re-renders the
message through its own interaction (type 7). So the panel never goes stale: a click still
works after the 15 minutes of the command's token, and after a restart; the negative-prompt
form is read from the interaction too, as the Remix form is.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import GreenheartBot, PartKey
from bot.config import ImageSettings
from bot.db.preferences import GuildLimits, ImagePreferences, PreferenceRepository, Value
from bot.images.models import ModelCatalog, UnknownModel
from bot.images.requests import ASPECTS, MAX_COUNT
from bot.prompts import find_style
from cogs.common import bot_of

Scope = Literal["me", "server"]
NOT_SET = "-"  # the select option that clears a setting
MAX_OPTIONS = 25  # Discord's limit for a select menu
MAX_NEGATIVE = 1000  # what parse_prompt accepts as a negative prompt
STEP_CHOICES = (4, 8, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150)
MENU_FIELDS = ("style", "model", "aspect", "count", "steps", "max_steps", "max_count")
BUTTON_FIELDS = ("negative", "private", "allow_private", "reset")
SCOPE = r"(?P<scope>me|server)"
NEGATIVE_FORM = re.compile(rf"gh:setneg:{SCOPE}")
NEGATIVE_FIELD = "negative"


class SettingsActions:
    """What the panel's items do; one per bot, reached through `interaction.client`."""

    def __init__(self, repo: PreferenceRepository, settings: ImageSettings,
                 catalog: ModelCatalog) -> None:
        self.repo, self.settings, self.catalog = repo, settings, catalog

    async def open(self, interaction: discord.Interaction[Any], scope: Scope) -> None:
        if await self._refused(interaction, scope):
            return
        await interaction.response.send_message(view=await self._view(interaction, scope),
                                                ephemeral=True)

    async def choose(self, interaction: discord.Interaction[Any], scope: Scope, field: str,
                     value: str) -> None:
        if await self._refused(interaction, scope):
            return
        try:
            stored = None if value == NOT_SET else self._parse(field, value)
        except ValueError as exc:  # offered when the panel was drawn, gone from the config
            await interaction.response.send_message(f"⚠️ {exc}", ephemeral=True)
            return
        await self._store(interaction, scope, field, stored)
        await self._redraw(interaction, scope)

    async def toggle(self, interaction: discord.Interaction[Any], scope: Scope,
                     field: str) -> None:
        if await self._refused(interaction, scope):
            return
        prefs, limits = await self._current(interaction, scope)
        if field == "allow_private":
            await self._store(interaction, scope, field, not limits.allow_private)
        else:
            await self._store(interaction, scope, field, not prefs.private)
        await self._redraw(interaction, scope)

    async def reset(self, interaction: discord.Interaction[Any], scope: Scope) -> None:
        if await self._refused(interaction, scope):
            return
        if scope == "me":
            await self.repo.reset_member(interaction.user.id)
        else:
            await self.repo.reset_guild(_guild_id(interaction))
        await self._redraw(interaction, scope)

    async def ask_negative(self, interaction: discord.Interaction[Any], scope: Scope) -> None:
        if await self._refused(interaction, scope):
            return
        prefs, _ = await self._current(interaction, scope)
        await interaction.response.send_modal(NegativeForm(scope, prefs.negative or ""))

    async def negative_submitted(self, interaction: discord.Interaction[Any], scope: Scope,
                                 text: str) -> None:
        if await self._refused(interaction, scope):
            return
        await self._store(interaction, scope, "negative", text.strip() or None)
        await self._redraw(interaction, scope)

    # ----- reading, checking and storing ----------------------------------------------------

    async def _refused(self, interaction: discord.Interaction[Any], scope: Scope) -> bool:
        """The server's settings are for members with Manage Server (checked at each
        click: a moderator's role may have been taken away since the panel opened)."""
        permissions = getattr(interaction, "permissions", None)
        if scope == "server" and interaction.guild_id is None:
            await interaction.response.send_message(
                "A DM or group DM has no server settings; `/settings` here shows your own.",
                ephemeral=True)
            return True
        if scope == "me" or (permissions is not None and permissions.manage_guild):
            return False
        await interaction.response.send_message(
            "Only members with the Manage Server permission can change this server's "
            "settings. Your own defaults are in `/settings`.", ephemeral=True)
        return True

    async def _current(self, interaction: discord.Interaction[Any],
                       scope: Scope) -> tuple[ImagePreferences, GuildLimits]:
        if scope == "me":
            return await self.repo.member(interaction.user.id), GuildLimits()
        guild = await self.repo.guild(_guild_id(interaction))
        return guild.defaults, guild.limits

    async def _store(self, interaction: discord.Interaction[Any], scope: Scope, field: str,
                     value: Value) -> None:
        if scope == "me":
            await self.repo.set_member(interaction.user.id, field, value)
        else:
            await self.repo.set_guild(_guild_id(interaction), field, value)

    async def _view(self, interaction: discord.Interaction[Any],
                    scope: Scope) -> discord.ui.LayoutView:
        prefs, limits = await self._current(interaction, scope)
        return settings_view(scope, prefs, limits, self.settings, self.catalog)

    async def _redraw(self, interaction: discord.Interaction[Any], scope: Scope) -> None:
        view = await self._view(interaction, scope)
        if interaction.message is not None:
            await interaction.response.edit_message(view=view)
        else:  # a form submitted without its message (can't happen from the panel)
            await interaction.response.send_message(view=view, ephemeral=True)

    def _parse(self, field: str, value: str) -> Value:
        """A select's value as stored; ValueError (for the member) when not offered."""
        if field == "style":
            preset = find_style(self.settings.styles, value)
            if preset is None:
                raise ValueError(f"The style {value!r} is no longer offered.")
            return preset.name
        if field == "model":
            try:
                return self.catalog.get(value).name
            except UnknownModel as exc:
                raise ValueError(str(exc)) from None
        if field == "aspect":
            if value not in ASPECTS:
                raise ValueError(f"The aspect {value!r} is not offered.")
            return value
        number = int(value)
        high = MAX_COUNT if field in ("count", "max_count") else self.settings.max_steps
        if not 1 <= number <= high:
            raise ValueError(f"{field} = {number} is out of range; choose 1-{high}.")
        return number


ACTIONS: PartKey[SettingsActions] = PartKey("settings actions")


def _guild_id(interaction: discord.Interaction[Any]) -> int:
    assert interaction.guild_id is not None  # "this server" is refused outside servers
    return interaction.guild_id


def _scope(match: re.Match[str]) -> Scope:
    return "server" if match["scope"] == "server" else "me"


# ----- the panel's items --------------------------------------------------------------------


class SettingMenu(discord.ui.DynamicItem[discord.ui.Select[Any]],
                  template=rf"gh:set:{SCOPE}:(?P<field>{'|'.join(MENU_FIELDS)})"):
    def __init__(self, scope: Scope, field: str,
                 options: list[discord.SelectOption] | None = None,
                 placeholder: str | None = None) -> None:
        # Built from a custom_id the menu has no options: Discord sends only the choice.
        super().__init__(discord.ui.Select(
            custom_id=f"gh:set:{scope}:{field}", placeholder=placeholder,
            options=options or [discord.SelectOption(label=NOT_SET)]))
        self.scope, self.field = scope, field

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(_scope(match), match["field"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        values = self.item.values
        try:
            await bot_of(interaction).part(ACTIONS).choose(
                interaction, self.scope, self.field, str(values[0]) if values else NOT_SET)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class SettingButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                    template=rf"gh:set:{SCOPE}:(?P<field>{'|'.join(BUTTON_FIELDS)})"):
    def __init__(self, scope: Scope, field: str, label: str = "",
                 style: discord.ButtonStyle = discord.ButtonStyle.secondary) -> None:
        super().__init__(discord.ui.Button(custom_id=f"gh:set:{scope}:{field}",
                                           label=label or field, style=style))
        self.scope, self.field = scope, field

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> Self:
        return cls(_scope(match), match["field"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        actions = bot_of(interaction).part(ACTIONS)
        try:
            if self.field == "negative":
                await actions.ask_negative(interaction, self.scope)
            elif self.field == "reset":
                await actions.reset(interaction, self.scope)
            else:
                await actions.toggle(interaction, self.scope, self.field)
        except Exception as exc:
            await bot_of(interaction).report_interaction_error(interaction, exc)


class NegativeForm(discord.ui.Modal):
    def __init__(self, scope: Scope, current: str) -> None:
        super().__init__(title="Default negative prompt", custom_id=f"gh:setneg:{scope}",
                         timeout=None)
        self.add_item(discord.ui.TextInput(
            label="Keep out of every picture (empty: none)", custom_id=NEGATIVE_FIELD,
            style=discord.TextStyle.paragraph, required=False, max_length=MAX_NEGATIVE,
            default=current[:MAX_NEGATIVE] or None))


# ----- drawing the panel --------------------------------------------------------------------


def _shown(value: Any, unset: str) -> str:
    if value is None:
        return unset
    return discord.utils.escape_markdown(str(value))


def summary(scope: Scope, prefs: ImagePreferences, limits: GuildLimits) -> str:
    unset = "not set" if scope == "me" else "—"
    private = "on: only you see your results" if prefs.private else "off"
    if scope == "server":
        private = "on: results only their member sees" if prefs.private else "off"
    negative = prefs.negative if prefs.negative else unset
    if len(negative) > 300:
        negative = negative[:299] + "…"
    lines = [
        "### ⚙️ Your /imagine defaults" if scope == "me"
        else "### ⚙️ This server's /imagine defaults and limits",
        "Used in every server; an option you type in /imagine still wins." if scope == "me"
        else "For everyone here; members' own defaults and typed options come first.",
        f"**Style** {_shown(prefs.style, unset)} · **Model** {_shown(prefs.model, unset)} · "
        f"**Aspect** {_shown(prefs.aspect, unset)} · **Count** {_shown(prefs.count, unset)}"
        f" · **Steps** {_shown(prefs.steps, unset)}",
        f"**Negative prompt** {discord.utils.escape_markdown(negative)}",
        f"**Private** {private}",
    ]
    if scope == "server":
        lines.append(f"**Limits** steps ≤ {_shown(limits.max_steps, 'config')} · count ≤ "
                     f"{_shown(limits.max_count, str(MAX_COUNT))} · private results "
                     f"{'allowed' if limits.allow_private else 'turned off'}")
    return "\n".join(lines)


def _menu(scope: Scope, field: str, title: str, choices: list[tuple[str, str]],
          current: Value, unset: str) -> discord.ui.ActionRow[Any]:
    """A select of `choices` (label, value) with "not set" first; the current one picked."""
    options = [discord.SelectOption(label=f"{title}: {unset}", value=NOT_SET,
                                    default=current is None)]
    options += [discord.SelectOption(label=f"{title}: {label}"[:100], value=value[:100],
                                     default=current is not None and value == str(current))
                for label, value in choices[:MAX_OPTIONS - 1]]
    offered = current is None or any(o.default for o in options)
    placeholder = None if offered else f"{title}: {current} (no longer offered)"[:150]
    row: discord.ui.ActionRow[Any] = discord.ui.ActionRow()
    row.add_item(SettingMenu(scope, field, options, placeholder))
    return row


def _numbers(values: Any) -> list[tuple[str, str]]:
    return [(str(n), str(n)) for n in values]


def step_choices(settings: ImageSettings) -> list[int]:
    """A handful of step counts up to image.max_steps, the configured default among them."""
    return sorted({n for n in (*STEP_CHOICES, settings.steps, settings.max_steps)
                   if n <= settings.max_steps})


def settings_view(scope: Scope, prefs: ImagePreferences, limits: GuildLimits,
                  settings: ImageSettings, catalog: ModelCatalog) -> discord.ui.LayoutView:
    unset = "not set" if scope == "me" else "no default"
    view = discord.ui.LayoutView(timeout=None)
    box: discord.ui.Container[Any] = discord.ui.Container()
    box.add_item(discord.ui.TextDisplay(summary(scope, prefs, limits)))
    box.add_item(_menu(scope, "style", "Style", [(s.name, s.name) for s in settings.styles],
                       prefs.style, unset))
    models = list(catalog)
    if len(models) > 1:
        box.add_item(_menu(scope, "model", "Model", [(m.name, m.name) for m in models],
                           prefs.model, unset))
    box.add_item(_menu(scope, "aspect", "Aspect", [(a, a) for a in ASPECTS], prefs.aspect,
                       unset))
    box.add_item(_menu(scope, "count", "Count", _numbers(range(1, MAX_COUNT + 1)),
                       prefs.count, unset))
    box.add_item(_menu(scope, "steps", "Steps", _numbers(step_choices(settings)),
                       prefs.steps, unset))
    if scope == "server":
        box.add_item(_menu(scope, "max_steps", "Most steps", _numbers(step_choices(settings)),
                           limits.max_steps, f"{settings.max_steps} (config)"))
        box.add_item(_menu(scope, "max_count", "Most pictures",
                           _numbers(range(1, MAX_COUNT + 1)), limits.max_count,
                           f"{MAX_COUNT} (no limit)"))
    buttons: discord.ui.ActionRow[Any] = discord.ui.ActionRow()
    buttons.add_item(SettingButton(scope, "negative", "✏️ Negative prompt"))
    buttons.add_item(SettingButton(
        scope, "private", f"🔒 Private: {'on' if prefs.private else 'off'}",
        discord.ButtonStyle.primary if prefs.private else discord.ButtonStyle.secondary))
    if scope == "server":
        buttons.add_item(SettingButton(
            scope, "allow_private",
            f"Private results: {'allowed' if limits.allow_private else 'off'}"))
    buttons.add_item(SettingButton(scope, "reset", "Reset", discord.ButtonStyle.danger))
    box.add_item(buttons)
    view.add_item(box)
    return view


# ----- the command --------------------------------------------------------------------------


class SettingsCog(commands.Cog, name="Settings"):
    def __init__(self, bot: GreenheartBot, actions: SettingsActions) -> None:
        self.bot, self.actions = bot, actions

    @app_commands.command(name="settings", description="Your /imagine defaults (or, for "
                          "moderators, this server's defaults and limits)")
    @app_commands.describe(scope="Whose settings: yours (default) or this server's "
                           "(Manage Server)")
    @app_commands.choices(scope=[app_commands.Choice(name="mine", value="me"),
                                 app_commands.Choice(name="this server", value="server")])
    # "mine" anywhere; "this server" needs a server (refused in DMs, see _refused).
    @app_commands.allowed_installs(guilds=True, users=True)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def settings(self, interaction: discord.Interaction,
                       scope: str = "me") -> None:
        await self.actions.open(interaction, "server" if scope == "server" else "me")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted negative-prompt form (also one opened before a restart)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        match = NEGATIVE_FORM.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        try:
            await self.actions.negative_submitted(interaction, _scope(match),
                                                  _form_text(data, NEGATIVE_FIELD))
        except Exception as exc:
            await self.bot.report_interaction_error(interaction, exc)


def _form_text(data: Any, custom_id: str) -> str:
    """A text input's value in a submitted form (in an action row, or a newer label)."""
    for component in data.get("components", ()):
        for field in component.get("components") or [component.get("component") or {}]:
            if field.get("custom_id") == custom_id:
                return str(field.get("value") or "")
    return ""


async def setup(bot: GreenheartBot) -> None:
    services = bot.services
    actions = SettingsActions(PreferenceRepository(services.db), services.settings.image,
                              services.images.catalog)
    bot.provide(ACTIONS, actions)
    bot.add_dynamic_items(SettingMenu, SettingButton)
    await bot.add_cog(SettingsCog(bot, actions))
