// flowchat's chat page: a dependency-free ES module. Everything the API or a document says is
// rendered with textContent (never innerHTML), so a source containing <script> shows as text.

const STATUS_POLL_MS = 3000;
const KEY_STORAGE = "flowchat.apiKey";
const CONVERSATION_STORAGE = "flowchat.conversation";

const $ = (id) => document.getElementById(id);
const form = $("ask");
const input = $("question");
const send = $("send");
const label = $("question-label");
const conversation = $("conversation");
const banner = $("banner");

let conversationId = sessionStorage.getItem(CONVERSATION_STORAGE);
let maintenance = null; // the reason while the service is in maintenance
let busy = false;
let inFlight = null; // the AbortController of the answer being streamed

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- the API key: asked once when the API answers 401, kept for this tab -----------------------

function askForKey() {
  const dialog = $("key-dialog");
  const keyInput = $("key-input");
  keyInput.value = "";
  return new Promise((resolve) => {
    const done = (key) => {
      dialog.close();
      resolve(key);
    };
    $("key-form").onsubmit = (event) => {
      event.preventDefault();
      done(keyInput.value.trim() || null);
    };
    $("key-cancel").onclick = () => done(null);
    dialog.oncancel = () => resolve(null);
    dialog.showModal();
    keyInput.focus();
  });
}

async function api(path, options = {}) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.set("X-API-Key", key);
    if (options.json !== undefined) headers.set("Content-Type", "application/json");
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
      signal: options.signal,
    });
    if (response.status !== 401 && response.status !== 403) return response;
    if (response.status === 403 && !key) return response;
    sessionStorage.removeItem(KEY_STORAGE);
    const entered = await askForKey();
    if (!entered) return response;
    sessionStorage.setItem(KEY_STORAGE, entered);
  }
  throw new Error("the API key was refused");
}

async function reason(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `the service answered HTTP ${response.status}`;
}

// --- Server-Sent Events over fetch (EventSource cannot send the API key header) ---------------

async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// --- rendering ---------------------------------------------------------------------------------

function sourceLabel(source) {
  let text = source.document;
  if (source.heading) text += ` > ${source.heading}`;
  if (source.page) text += ` (page ${source.page})`;
  return text;
}

function openPassage(turn, source) {
  const id = `passage-${turn.dataset.job}-${source.n}`;
  const existing = document.getElementById(id);
  if (existing) {
    existing.remove();
    return;
  }
  turn.querySelectorAll(".passage").forEach((node) => node.remove());
  const panel = el(
    "section",
    { class: "passage", id, tabindex: "-1", "aria-label": `Source ${source.n}` },
    el("h3", { text: `[${source.n}] ${sourceLabel(source)}` }),
    el("div", { class: "passage-text", text: source.text }),
  );
  turn.querySelector(".sources").after(panel);
  panel.focus();
  loadNeighbours(panel, source);
}

async function loadNeighbours(panel, source) {
  if (source.chunk === undefined || source.chunk === null) return;
  try {
    const response = await api(
      `/api/documents/${encodeURIComponent(source.document_id)}/passages/${source.chunk}`,
    );
    if (!response.ok) return;
    const body = await response.json();
    const text = panel.querySelector(".passage-text");
    if (body.before) text.before(el("div", { class: "neighbour", text: body.before.text }));
    if (body.after) text.after(el("div", { class: "neighbour", text: body.after.text }));
  } catch (_) { /* the passage itself is already shown */ }
}

function renderAnswer(turn, text, sources) {
  // the final answer: "[n]" citations become buttons that open the passage in place
  const answer = turn.querySelector(".answer");
  answer.replaceChildren();
  const byNumber = new Map(sources.map((s) => [s.n, s]));
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const match = /^\[(\d+)\]$/.exec(part);
    const source = match && byNumber.get(Number(match[1]));
    if (source) {
      answer.append(el("button", {
        type: "button",
        class: "cite",
        text: part,
        "aria-label": `Open source ${source.n}: ${sourceLabel(source)}`,
        onclick: () => openPassage(turn, source),
      }));
    } else {
      answer.append(document.createTextNode(part));
    }
  }
}

function renderSources(turn, sources) {
  const list = turn.querySelector(".sources");
  list.replaceChildren(...sources.map((source) => el("li", {}, el("button", {
    type: "button",
    class: "source-button",
    text: `[${source.n}] ${sourceLabel(source)}`,
    onclick: () => openPassage(turn, source),
  }))));
}

function renderVotes(turn, jobId) {
  const status = el("span", { class: "vote-status", "aria-live": "polite" });
  const vote = async (value, button) => {
    const response = await api(`/api/chat/${encodeURIComponent(jobId)}/feedback`, {
      method: "POST",
      json: { vote: value },
    });
    if (!response.ok) {
      status.textContent = await reason(response);
      return;
    }
    turn.querySelectorAll(".votes button").forEach((b) => b.setAttribute("aria-pressed", "false"));
    button.setAttribute("aria-pressed", "true");
    status.textContent = "Thanks for the feedback.";
  };
  const up = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Good answer", text: "Helpful" });
  const down = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Bad answer", text: "Not helpful" });
  up.addEventListener("click", () => vote("up", up));
  down.addEventListener("click", () => vote("down", down));
  turn.querySelector(".votes").replaceChildren(up, down, status);
}

// --- asking ------------------------------------------------------------------------------------

async function ask(question) {
  const turn = el(
    "article",
    { class: "turn" },
    el("div", { class: "question", text: question }),
    el("div", { class: "answer pending", "aria-busy": "true" }),
    el("ul", { class: "sources", "aria-label": "Sources" }),
    el("div", { class: "votes" }),
  );
  conversation.append(turn);
  turn.scrollIntoView({ block: "end" });
  const answer = turn.querySelector(".answer");
  const fail = (text) => {
    answer.classList.remove("pending");
    answer.removeAttribute("aria-busy");
    answer.classList.add("error");
    answer.textContent = text;
  };
  const submitted = await api("/api/chat", {
    method: "POST",
    json: conversationId ? { message: question, conversation_id: conversationId } : { message: question },
  });
  if (!submitted.ok) {
    fail(await reason(submitted));
    return;
  }
  const accepted = await submitted.json();
  conversationId = accepted.conversation_id;
  sessionStorage.setItem(CONVERSATION_STORAGE, conversationId);
  turn.dataset.job = accepted.id;
  inFlight = new AbortController();
  const streamed = await api(accepted.stream_url, {
    headers: { Accept: "text/event-stream" },
    signal: inFlight.signal,
  });
  if (!streamed.ok) {
    fail(await reason(streamed));
    return;
  }
  let text = "";
  let sources = [];
  for await (const { event, data } of sseEvents(streamed)) {
    if (event === "sources") {
      sources = data;
      renderSources(turn, sources);
    } else if (event === "delta") {
      text += data.text;
      answer.append(document.createTextNode(data.text));
    } else if (event === "reset") {
      text = data.text;
      answer.textContent = text;
    } else if (event === "done") {
      answer.classList.remove("pending");
      answer.removeAttribute("aria-busy");
      renderSources(turn, data.sources);
      renderAnswer(turn, data.answer, data.sources);
      renderVotes(turn, accepted.id);
      return;
    } else if (event === "error") {
      fail(`No answer: ${data.reason}`);
      return;
    }
  }
  fail("The answer's stream ended early; ask again.");
}

function updateInput() {
  const disabled = busy || maintenance !== null;
  input.disabled = maintenance !== null;
  send.disabled = disabled;
  label.textContent = maintenance !== null
    ? `Asking is paused: ${maintenance}`
    : "Your question";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question || busy || maintenance !== null) return;
  input.value = "";
  busy = true;
  updateInput();
  try {
    await ask(question);
  } catch (error) {
    const last = conversation.lastElementChild;
    if (last && error.name !== "AbortError") {
      last.querySelector(".answer").textContent = `No answer: ${error.message}`;
    }
  } finally {
    inFlight = null;
    busy = false;
    updateInput();
    input.focus();
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

$("new-conversation").addEventListener("click", () => {
  if (inFlight) inFlight.abort();
  conversationId = null;
  sessionStorage.removeItem(CONVERSATION_STORAGE);
  conversation.replaceChildren();
  input.focus();
});

// --- maintenance banner: polled, goes away by itself -------------------------------------------

async function pollStatus() {
  try {
    const response = await fetch("/api/status");
    if (response.ok) {
      const status = await response.json();
      maintenance = status.maintenance ? (status.reason || "maintenance") : null;
    }
  } catch (_) {
    maintenance = "the service cannot be reached";
  }
  banner.hidden = maintenance === null;
  banner.textContent = maintenance === null ? "" : `Maintenance: ${maintenance}`;
  updateInput();
}

pollStatus();
setInterval(pollStatus, STATUS_POLL_MS);

document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  input.focus();
});
