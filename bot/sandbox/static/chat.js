// Sandbox chat page: plays one simulated Telegram user against the loopback Bot API.
// Plain DOM code, no framework, no build step. Text is only ever inserted with textContent /
// text nodes (never innerHTML) because every string here comes from the bot or the user.
"use strict";

(() => {
  const API = "/sandbox/api";
  const STORAGE_KEY = "crisisComms.sandboxUser";
  const LONG_POLL_SECONDS = 25;
  const SAFE_URL = /^(https?:|tg:)/i;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Line icons (24x24, stroked) so the page does not depend on an emoji font being installed.
  const ICONS = {
    pin: [
      "M12 21s-6.5-6.2-6.5-11.2a6.5 6.5 0 0 1 13 0C18.5 14.8 12 21 12 21z",
      "M12 12.3a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5z",
    ],
    file: ["M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z", "M14 3v5h5"],
    photo: ["M4 5h16v14H4z", "M4 16l5-5 4 4 3-3 4 4", "M15.5 9h.01"],
    mic: ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5 11a7 7 0 0 0 14 0", "M12 18v3"],
    user: ["M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M4 21a8 8 0 0 1 16 0"],
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    botName: $("bot-name"),
    botStatus: $("bot-status"),
    userForm: $("user-form"),
    userSelect: $("user-select"),
    userName: $("user-name"),
    userLang: $("user-lang"),
    userSave: $("user-save"),
    messages: $("messages"),
    emptyHint: $("empty-hint"),
    toast: $("toast"),
    toastText: $("toast-text"),
    toastOk: $("toast-ok"),
    commandsList: $("commands-list"),
    locationForm: $("location-form"),
    locLat: $("loc-lat"),
    locLon: $("loc-lon"),
    locCancel: $("loc-cancel"),
    contactForm: $("contact-form"),
    contactPhone: $("contact-phone"),
    contactCancel: $("contact-cancel"),
    replyKeyboard: $("reply-keyboard"),
    keyboardToggle: $("keyboard-toggle"),
    composer: $("composer"),
    commandsBtn: $("commands-btn"),
    locationBtn: $("location-btn"),
    input: $("message-input"),
    stickerBtn: $("sticker-btn"),
    send: $("send"),
  };

  const state = {
    user: null, // {id, first_name, language_code}
    pollToken: 0,
    pollAbort: null,
    lastNoticeId: null,
    rendered: new Map(), // message_id -> {signature, node}
    messagesById: new Map(),
    keyboard: null,
    keyboardHidden: false,
    placeholder: "Message",
    typingTimer: null,
    toastTimer: null,
  };

  // --- HTTP --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function request(path, options = {}) {
    const init = { method: options.method || "GET", signal: options.signal, headers: {} };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(API + path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      throw new ApiError(response.status, `HTTP ${response.status}`);
    }
    if (!response.ok || !data.ok) {
      throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- users -------------------------------------------------------------------------------

  function loadStoredUser() {
    try {
      const raw = localStorage.getItem(STORAGE_KEY);
      const user = raw ? JSON.parse(raw) : null;
      return user && Number.isInteger(user.id) && user.first_name ? user : null;
    } catch (_) {
      return null;
    }
  }

  function storeUser(user) {
    const { id, first_name, language_code } = user;
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ id, first_name, language_code }));
  }

  async function saveUser(fields) {
    const data = await request("/users", { method: "POST", body: fields });
    return data.user;
  }

  async function refreshUserList() {
    const { users } = await request("/users");
    const select = el.userSelect;
    select.replaceChildren(new Option("+ New user", "new"));
    for (const user of users) {
      const label = `${user.first_name} · ${user.language_code || "—"} · ${user.id}`;
      select.append(new Option(label, String(user.id)));
    }
    select.value = state.user ? String(state.user.id) : "new";
  }

  function fillUserForm() {
    const user = state.user;
    el.userName.value = user ? user.first_name : "";
    if (user && user.language_code) el.userLang.value = user.language_code;
    el.userSave.textContent = user ? "Save" : "Start";
    el.userSelect.value = user ? String(user.id) : "new";
  }

  async function activateUser(user) {
    state.user = user;
    storeUser(user);
    fillUserForm();
    el.input.disabled = false;
    el.send.disabled = false;
    resetChat();
    await refreshUserList();
    startPolling();
  }

  async function onUserFormSubmit(event) {
    event.preventDefault();
    const fields = {
      first_name: el.userName.value.trim(),
      language_code: el.userLang.value,
    };
    if (!fields.first_name) {
      el.userName.focus();
      return;
    }
    if (el.userSelect.value !== "new" && state.user) fields.id = state.user.id;
    try {
      await activateUser(await saveUser(fields));
      el.input.focus();
    } catch (error) {
      showToast(`Could not save user: ${error.message}`, true);
    }
  }

  async function onUserSelect() {
    if (el.userSelect.value === "new") {
      stopPolling();
      state.user = null;
      fillUserForm();
      resetChat();
      el.input.disabled = true;
      el.send.disabled = true;
      el.userName.focus();
      return;
    }
    const { users } = await request("/users");
    const user = users.find((u) => String(u.id) === el.userSelect.value);
    if (user) await activateUser(user);
  }

  // --- polling -----------------------------------------------------------------------------

  function stopPolling() {
    state.pollToken += 1;
    if (state.pollAbort) state.pollAbort.abort();
    state.pollAbort = null;
  }

  function startPolling() {
    stopPolling();
    pollLoop(state.pollToken);
  }

  async function pollLoop(token) {
    let version = -1;
    let instance = "";
    let failures = 0;
    while (token === state.pollToken && state.user) {
      const abort = new AbortController();
      state.pollAbort = abort;
      const query = new URLSearchParams({
        after_version: String(version),
        timeout: String(version < 0 ? 0 : LONG_POLL_SECONDS),
      });
      if (instance) query.set("instance", instance);
      try {
        const view = await request(`/chats/${state.user.id}/messages?${query}`, {
          signal: abort.signal,
        });
        if (token !== state.pollToken) return;
        if (view.instance !== instance) state.lastNoticeId = null; // server restarted
        instance = view.instance;
        version = view.version;
        failures = 0;
        render(view);
      } catch (error) {
        if (token !== state.pollToken) return;
        failures += 1;
        setStatus("offline · reconnecting…");
        if (error instanceof ApiError && error.status === 404) {
          await recreateUser(); // the server restarted and forgot our user
          version = -1;
        }
        await sleep(Math.min(500 * failures, 5000));
      }
    }
  }

  async function recreateUser() {
    try {
      const user = state.user;
      state.user = await saveUser({
        id: user.id,
        first_name: user.first_name,
        language_code: user.language_code,
      });
      await refreshUserList();
    } catch (_) {
      // still offline; the poll loop retries
    }
  }

  function setStatus(text) {
    el.botStatus.textContent = text;
  }

  // --- rendering ---------------------------------------------------------------------------

  function resetChat() {
    state.rendered.clear();
    state.messagesById.clear();
    state.lastNoticeId = null;
    state.keyboard = null;
    el.messages.replaceChildren(el.emptyHint);
    el.emptyHint.hidden = false;
    renderReplyKeyboard(null, null);
  }

  function render(view) {
    setStatus(view.action === "typing" ? "typing…" : "bot");
    if (view.action) {
      clearTimeout(state.typingTimer);
      state.typingTimer = setTimeout(() => setStatus("bot"), 5000);
    }
    renderMessages(view.messages);
    renderReplyKeyboard(view.reply_keyboard, view.force_reply);
    renderNotices(view.notices);
  }

  function renderMessages(messages) {
    const box = el.messages;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const seen = new Set();
    let added = false;
    state.messagesById = new Map(messages.map((m) => [m.message_id, m]));
    el.emptyHint.hidden = messages.length > 0;
    let previous = el.emptyHint;
    for (const message of messages) {
      seen.add(message.message_id);
      const signature = JSON.stringify(message);
      let entry = state.rendered.get(message.message_id);
      if (!entry || entry.signature !== signature) {
        const node = messageNode(message);
        if (entry) entry.node.replaceWith(node);
        else added = true;
        entry = { signature, node };
        state.rendered.set(message.message_id, entry);
      }
      if (previous.nextSibling !== entry.node) previous.after(entry.node);
      previous = entry.node;
    }
    for (const [id, entry] of state.rendered) {
      if (!seen.has(id)) {
        entry.node.remove();
        state.rendered.delete(id);
      }
    }
    if (added || nearBottom) box.scrollTop = box.scrollHeight;
  }

  function messageNode(message) {
    const side = message.from_bot ? "bot" : "user";
    const row = document.createElement("div");
    row.className = `msg ${side}`;
    row.dataset.messageId = String(message.message_id);
    row.dataset.testid = `msg-${side}`;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.dir = "auto";
    if (!message.from_bot && state.user && state.user.language_code) {
      bubble.lang = state.user.language_code;
    }
    const quote = replyQuote(message);
    if (quote) bubble.append(quote);
    bubble.append(...contentNodes(message));
    bubble.append(metaNode(message));
    row.append(bubble);
    const keyboard = inlineKeyboard(message);
    if (keyboard) row.append(keyboard);
    return row;
  }

  function replyQuote(message) {
    const target = state.messagesById.get(message.reply_to_message_id);
    if (!target) return null;
    const quote = document.createElement("div");
    quote.className = "reply-quote";
    quote.dir = "auto";
    quote.textContent = target.text || target.caption || `[${target.kind}]`;
    return quote;
  }

  function metaNode(message) {
    const meta = document.createElement("span");
    meta.className = "meta";
    const time = new Date(message.date * 1000);
    const hhmm = time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    meta.textContent = message.edited ? `edited ${hhmm}` : hhmm;
    meta.dir = "ltr";
    return meta;
  }

  function textNode(text, entities, className) {
    const div = document.createElement("div");
    div.className = className;
    div.dir = "auto";
    appendFormatted(div, text, entities || []);
    return div;
  }

  function contentNodes(message) {
    const nodes = [];
    switch (message.kind) {
      case "venue":
        nodes.push(placeCard(message.venue.location, message.venue.title, message.venue.address));
        break;
      case "location":
        nodes.push(placeCard(message.location, "Location", null));
        break;
      case "document":
        nodes.push(documentCard(message.document));
        break;
      case "sticker":
        nodes.push(simpleCard("sticker", null, message.sticker.emoji || "?", "Sticker"));
        break;
      case "photo":
        nodes.push(simpleCard("photo", "photo", "Photo", null));
        break;
      case "voice":
        nodes.push(simpleCard("voice", "mic", "Voice message", `0:${pad(message.voice.duration)}`));
        break;
      case "contact": {
        const contact = message.contact;
        nodes.push(simpleCard("contact", "user", contact.first_name, contact.phone_number));
        break;
      }
      default:
        break;
    }
    if (message.text !== undefined) {
      nodes.push(textNode(message.text, message.entities, "text"));
    }
    if (message.caption !== undefined) {
      nodes.push(textNode(message.caption, message.caption_entities, "text caption"));
    }
    return nodes;
  }

  const pad = (n) => String(Math.max(0, Number(n) || 0)).padStart(2, "0");

  function card(kind) {
    const div = document.createElement("div");
    div.className = `card ${kind}`;
    div.dataset.testid = `card-${kind}`;
    return div;
  }

  function line(className, text, dir) {
    const div = document.createElement("div");
    div.className = className;
    div.textContent = text;
    if (dir) div.dir = dir;
    return div;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  function titleLine(iconName, text) {
    const div = line("card-title", "", "auto");
    const label = document.createElement("span");
    label.textContent = text;
    div.append(icon(iconName), label);
    return div;
  }

  function simpleCard(kind, iconName, title, detail) {
    const div = card(kind);
    div.append(iconName ? titleLine(iconName, title) : line("card-title", title, "auto"));
    if (detail) div.append(line("card-detail", detail, "auto"));
    return div;
  }

  function placeCard(location, title, address) {
    const div = card(address === null ? "location" : "venue");
    const lat = Number(location.latitude).toFixed(5);
    const lon = Number(location.longitude).toFixed(5);
    div.append(titleLine("pin", title));
    if (address) div.append(line("card-detail", address, "auto"));
    div.append(line("card-detail coords", `${lat}, ${lon}`, "ltr"));
    const link = document.createElement("a");
    link.className = "osm-link";
    link.href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = "Open in OpenStreetMap ↗";
    div.append(link);
    return div;
  }

  function documentCard(documentInfo) {
    const div = card("document");
    div.append(titleLine("file", documentInfo.file_name || "file"));
    div.append(line("card-detail", formatSize(documentInfo.file_size), "ltr"));
    const link = document.createElement("a");
    link.href = `${API}/files/${encodeURIComponent(documentInfo.file_id)}`;
    link.textContent = "Download";
    link.className = "file-link";
    div.append(link);
    return div;
  }

  function formatSize(bytes) {
    if (!bytes) return "size unknown";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // Telegram entity offsets are UTF-16 code units, which is exactly how JS indexes strings.
  function appendFormatted(parent, text, entities) {
    const sorted = [...entities].sort((a, b) => a.offset - b.offset || b.length - a.length);
    buildRange(parent, text, sorted, 0, text.length);
  }

  function buildRange(parent, text, entities, start, end) {
    let pos = start;
    let i = 0;
    while (i < entities.length) {
      const entity = entities[i];
      const entityEnd = entity.offset + entity.length;
      if (entity.offset < pos || entityEnd > end) {
        i += 1;
        continue;
      }
      if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
      const inner = entities.filter(
        (other, j) => j > i && other.offset >= entity.offset && other.offset + other.length <= entityEnd,
      );
      const node = entityNode(entity, text.slice(entity.offset, entityEnd));
      buildRange(node, text, inner, entity.offset, entityEnd);
      parent.append(node);
      pos = entityEnd;
      i += 1;
      while (i < entities.length && entities[i].offset < pos) i += 1;
    }
    if (pos < end) parent.append(text.slice(pos, end));
  }

  const ENTITY_TAGS = {
    bold: "strong",
    italic: "em",
    underline: "u",
    strikethrough: "s",
    code: "code",
    pre: "pre",
    blockquote: "blockquote",
    expandable_blockquote: "blockquote",
  };

  function entityNode(entity, content) {
    if (entity.type === "text_link" || entity.type === "url") {
      const url = entity.type === "url" ? content : entity.url;
      const href = SAFE_URL.test(url) ? url : `https://${url}`;
      if (SAFE_URL.test(href) && !/^javascript:/i.test(href)) {
        const link = document.createElement("a");
        link.href = href;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        return link;
      }
    }
    if (entity.type === "bot_command") {
      const command = document.createElement("span");
      command.className = "cmd-link";
      command.setAttribute("role", "button");
      command.tabIndex = 0;
      command.addEventListener("click", () => sendText(content.split("@")[0]));
      return command;
    }
    if (entity.type === "spoiler") {
      const spoiler = document.createElement("span");
      spoiler.className = "spoiler";
      spoiler.addEventListener("click", () => spoiler.classList.add("revealed"));
      return spoiler;
    }
    return document.createElement(ENTITY_TAGS[entity.type] || "span");
  }

  function inlineKeyboard(message) {
    const rows = message.reply_markup && message.reply_markup.inline_keyboard;
    if (!rows || rows.length === 0) return null;
    const box = document.createElement("div");
    box.className = "inline-kb";
    box.dataset.testid = "inline-keyboard";
    for (const row of rows) {
      const rowNode = document.createElement("div");
      rowNode.className = "kb-row";
      for (const button of row) rowNode.append(inlineButton(message, button));
      box.append(rowNode);
    }
    return box;
  }

  function inlineButton(message, button) {
    if (button.url && SAFE_URL.test(button.url)) {
      const link = document.createElement("a");
      link.className = "inline-btn url";
      link.href = button.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = `${button.text} ↗`;
      link.dir = "auto";
      return link;
    }
    const node = document.createElement("button");
    node.type = "button";
    node.className = "inline-btn";
    node.dir = "auto";
    node.textContent = button.text;
    if (button.callback_data !== undefined) {
      node.dataset.callbackData = button.callback_data;
      node.addEventListener("click", () => pressButton(message.message_id, button, node));
    } else {
      node.disabled = true;
      node.title = "This button type is not simulated";
    }
    return node;
  }

  function renderReplyKeyboard(keyboard, forceReply) {
    const changed = JSON.stringify(keyboard) !== JSON.stringify(state.keyboard);
    if (changed) state.keyboardHidden = false;
    state.keyboard = keyboard;
    const placeholder =
      (forceReply && forceReply.input_field_placeholder) ||
      (keyboard && keyboard.input_field_placeholder) ||
      "Message";
    el.input.placeholder = placeholder;
    el.keyboardToggle.hidden = !keyboard;
    const box = el.replyKeyboard;
    box.hidden = !keyboard || state.keyboardHidden;
    if (!changed) return;
    box.replaceChildren();
    if (!keyboard) return;
    for (const row of keyboard.keyboard) {
      const rowNode = document.createElement("div");
      rowNode.className = "kb-row";
      for (const button of row) rowNode.append(replyButton(button));
      box.append(rowNode);
    }
  }

  function replyButton(button) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = "reply-btn";
    node.dir = "auto";
    node.textContent = button.text;
    if (button.request_location) {
      node.prepend(icon("pin"));
      node.classList.add("request-location");
      node.dataset.requestLocation = "true";
      node.addEventListener("click", () => openSheet(el.locationForm));
    } else if (button.request_contact) {
      node.prepend(icon("user"));
      node.dataset.requestContact = "true";
      node.addEventListener("click", () => openSheet(el.contactForm));
    } else {
      node.addEventListener("click", () => sendText(button.text));
    }
    return node;
  }

  function renderNotices(notices) {
    const latest = notices.length ? notices[notices.length - 1].id : 0;
    if (state.lastNoticeId === null) {
      state.lastNoticeId = latest; // do not replay old answers when (re)opening a chat
      return;
    }
    for (const notice of notices) {
      if (notice.id > state.lastNoticeId) showToast(notice.text, notice.show_alert);
    }
    state.lastNoticeId = Math.max(state.lastNoticeId, latest);
  }

  function showToast(text, isAlert) {
    clearTimeout(state.toastTimer);
    el.toastText.textContent = text;
    el.toast.classList.toggle("alert", Boolean(isAlert));
    el.toastOk.hidden = !isAlert;
    el.toast.hidden = false;
    if (!isAlert) state.toastTimer = setTimeout(() => (el.toast.hidden = true), 3500);
  }

  // --- actions -----------------------------------------------------------------------------

  async function act(path, body) {
    if (!state.user) {
      showToast("Create a user first (name + Start).", false);
      return null;
    }
    try {
      return await request(`/chats/${state.user.id}${path}`, { method: "POST", body });
    } catch (error) {
      showToast(`Not sent: ${error.message}`, true);
      return null;
    }
  }

  async function sendText(text) {
    const clean = text.trim();
    if (!clean) return;
    closeCommands();
    await act("/text", { text: clean });
  }

  async function pressButton(messageId, button, node) {
    node.classList.add("pressed");
    await act("/callback", { message_id: messageId, data: button.callback_data });
    setTimeout(() => node.classList.remove("pressed"), 600);
  }

  function openSheet(form) {
    closeCommands();
    for (const sheet of [el.locationForm, el.contactForm]) sheet.hidden = sheet !== form;
    const first = form.querySelector("input");
    if (first) first.focus();
  }

  async function onLocationSubmit(event) {
    event.preventDefault();
    const latitude = Number(el.locLat.value);
    const longitude = Number(el.locLon.value);
    if (!Number.isFinite(latitude) || !Number.isFinite(longitude)) return;
    el.locationForm.hidden = true;
    await act("/location", { latitude, longitude });
  }

  async function onContactSubmit(event) {
    event.preventDefault();
    el.contactForm.hidden = true;
    await act("/contact", { phone_number: el.contactPhone.value.trim() });
  }

  async function onComposerSubmit(event) {
    event.preventDefault();
    const text = el.input.value;
    if (!text.trim()) return;
    el.input.value = "";
    autoGrow();
    await sendText(text);
    el.input.focus();
  }

  function onInputKeydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      el.composer.requestSubmit();
    } else if (event.key === "Escape") {
      closeCommands();
    }
  }

  function onInput() {
    autoGrow();
    const value = el.input.value;
    if (/^\/\w*$/.test(value)) openCommands(value.slice(1));
    else closeCommands();
  }

  function autoGrow() {
    el.input.style.height = "auto";
    el.input.style.height = `${Math.min(el.input.scrollHeight, 140)}px`;
  }

  // --- "/" commands menu --------------------------------------------------------------------

  // Bumped by every open and close: a list whose request returns after the person sent the
  // message (or typed on) must not pop up again over the chat.
  let commandsGeneration = 0;

  async function openCommands(filter) {
    if (!state.user) return;
    const generation = ++commandsGeneration;
    let commands = [];
    try {
      commands = (await request(`/commands?user_id=${state.user.id}`)).commands;
    } catch (_) {
      commands = [];
    }
    if (generation !== commandsGeneration) return;
    const list = el.commandsList;
    list.replaceChildren();
    const shown = commands.filter((c) => c.command.startsWith(filter || ""));
    if (shown.length === 0) {
      list.append(line("command-empty", commands.length ? "No matching command" : "The bot has no commands yet", null));
    }
    for (const command of shown) {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "command-item";
      item.dataset.command = command.command;
      const name = document.createElement("span");
      name.className = "command-name";
      name.textContent = `/${command.command}`;
      const description = document.createElement("span");
      description.className = "command-description";
      description.dir = "auto";
      description.textContent = command.description;
      item.append(name, description);
      item.addEventListener("click", () => {
        el.input.value = "";
        sendText(`/${command.command}`);
      });
      list.append(item);
    }
    el.locationForm.hidden = true;
    el.contactForm.hidden = true;
    list.hidden = false;
  }

  function closeCommands() {
    commandsGeneration++;
    el.commandsList.hidden = true;
  }

  // --- start -------------------------------------------------------------------------------

  function bindEvents() {
    el.userForm.addEventListener("submit", onUserFormSubmit);
    el.userSelect.addEventListener("change", onUserSelect);
    el.composer.addEventListener("submit", onComposerSubmit);
    el.input.addEventListener("keydown", onInputKeydown);
    el.input.addEventListener("input", onInput);
    el.commandsBtn.addEventListener("click", () =>
      el.commandsList.hidden ? openCommands("") : closeCommands(),
    );
    el.locationBtn.addEventListener("click", () => openSheet(el.locationForm));
    el.stickerBtn.addEventListener("click", () => act("/sticker", { emoji: "👍" }));
    el.locationForm.addEventListener("submit", onLocationSubmit);
    el.locCancel.addEventListener("click", () => (el.locationForm.hidden = true));
    el.contactForm.addEventListener("submit", onContactSubmit);
    el.contactCancel.addEventListener("click", () => (el.contactForm.hidden = true));
    el.toastOk.addEventListener("click", () => (el.toast.hidden = true));
    el.keyboardToggle.addEventListener("click", () => {
      state.keyboardHidden = !state.keyboardHidden;
      el.replyKeyboard.hidden = state.keyboardHidden || !state.keyboard;
    });
  }

  async function init() {
    bindEvents();
    try {
      const { bot } = await request("/bot");
      el.botName.textContent = bot.first_name;
      document.title = `${bot.first_name} · sandbox chat`;
      setStatus(`@${bot.username}`);
    } catch (_) {
      setStatus("offline");
    }
    const stored = loadStoredUser();
    if (stored) {
      try {
        await activateUser(await saveUser(stored));
        return;
      } catch (_) {
        localStorage.removeItem(STORAGE_KEY);
      }
    }
    await refreshUserList().catch(() => undefined);
    fillUserForm();
  }

  init();
})();
