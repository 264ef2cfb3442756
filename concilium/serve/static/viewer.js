"use strict";
const page = JSON.parse(document.getElementById("page").textContent);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const kid of kids) if (kid !== null && kid !== undefined)
    node.append(kid instanceof Node ? kid : String(kid));
  return node;
};
const fmt = (x, d) => Number(x || 0).toFixed(d);

async function startRun(event) {
  event.preventDefault();
  const body = {team: document.getElementById("team").value,
                task: document.getElementById("task").value};
  const reference = document.getElementById("reference").value.trim();
  if (reference) body.reference = reference;
  const reply = await fetch("/runs", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await reply.json();
  if (!reply.ok) { document.getElementById("start-error").textContent = data.error.message; return; }
  location.href = "/ui/runs/" + encodeURIComponent(data.run_id);
}

async function refreshRuns() {
  const reply = await fetch("/runs?limit=50", {credentials: "same-origin"});
  if (!reply.ok) return;
  const runs = await reply.json();
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(...runs.map(r => el("tr", {},
    el("td", {}, el("a", {href: "/ui/runs/" + encodeURIComponent(r.id)}, r.id)),
    el("td", {}, r.team), el("td", {class: "status-" + r.status}, r.status),
    el("td", {}, r.answer || ""), el("td", {}, r.llm_calls),
    el("td", {}, r.prompt_tokens + r.completion_tokens), el("td", {}, fmt(r.cost, 4)),
    el("td", {}, fmt(r.wall_ms / 1000, 1)), el("td", {}, (r.task || "").slice(0, 80)))));
  if (runs.some(r => r.status === "running")) setTimeout(refreshRuns, 1500);
}

function stepCard(step) {
  const parsed = step.parsed || {};
  const badges = [];
  if ("accepted" in parsed) badges.push(el("span", {class: "badge " + (parsed.accepted ? "accepted" : "rejected")},
                                          parsed.accepted ? "accepted" : "rejected"));
  if (Array.isArray(parsed.issues) && parsed.issues.length)
    badges.push(el("span", {class: "badge rejected"}, parsed.issues.length + " issue(s)"));
  if (step.answer_changed) badges.push(el("span", {class: "badge changed"}, "changed"));
  if (step.flip === "right->wrong") badges.push(el("span", {class: "badge flip-rw"}, "right→wrong"));
  if (step.flip === "wrong->right") badges.push(el("span", {class: "badge flip-wr"}, "wrong→right"));
  if (step.kind === "tool" && parsed.ok === false) badges.push(el("span", {class: "badge rejected"}, "tool error"));
  if (Array.isArray(parsed.tool_calls)) badges.push(el("span", {class: "badge changed"},
    "asks " + parsed.tool_calls.map(c => c.name).join(", ")));
  const card = el("div", {class: "card step " + (step.kind === "tool" ? "tool" : ""), "data-role": step.role},
    el("div", {}, el("b", {}, step.node || step.role), " ", ...badges),
    el("div", {class: "meta"}, step.model, " · ",
       step.kind === "llm" ? `${step.prompt_tokens}→${step.completion_tokens} tok · ` : "tool · ",
       fmt(step.latency_ms, 0), " ms"),
    el("div", {}, "answer: ", el("b", {}, step.answer ?? "–")));
  const why = parsed.reason || parsed.feedback || (parsed.issues || []).join("; ");
  if (why) card.append(el("div", {class: "meta"}, why));
  if (step.kind === "tool") {
    const input = "call_id" in parsed ? `${step.model}(${(step.messages || []).map(m => m.content).join(", ")})`
                                      : (step.messages || []).map(m => m.content).join("\n");
    if (input) card.append(el("pre", {}, "input: " + input));
    card.append(el("pre", {}, "result: " + (step.output || "")));
  } else if (step.output) card.append(el("pre", {}, step.output));
  return card;
}

function followRun() {
  const columns = [], rows = new Map();
  const head = document.querySelector("#grid thead tr"), body = document.querySelector("#grid tbody");
  let calls = 0, tokens = 0, cost = 0;
  const cell = (round, node) => {
    if (!columns.includes(node)) {
      columns.push(node); head.append(el("th", {}, node));
      for (const tr of rows.values()) tr.append(el("td", {}));
    }
    if (!rows.has(round)) {
      const tr = el("tr", {"data-round": round}, el("th", {}, "round " + round));
      columns.forEach(() => tr.append(el("td", {})));
      const after = [...rows.keys()].filter(r => r > round).sort((a, b) => a - b)[0];
      body.insertBefore(tr, after === undefined ? null : rows.get(after));
      rows.set(round, tr);
    }
    return rows.get(round).children[1 + columns.indexOf(node)];
  };
  const source = new EventSource("/runs/" + encodeURIComponent(page.run_id) + "/events");
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "step") {
      const step = event.step;
      cell(step.round || 0, step.node || step.role).append(stepCard(step));
      if (step.kind === "llm") { calls += step.cached ? 0 : 1; tokens += step.prompt_tokens + step.completion_tokens; cost += step.cost || 0; }
      document.getElementById("totals").textContent = `${calls} calls · ${tokens} tokens · $${fmt(cost, 4)}`;
      if (step.answer) document.getElementById("answer").textContent = step.answer;
    } else if (event.type === "run_end") {
      const status = document.getElementById("status");
      status.textContent = event.status; status.className = "status-" + event.status;
      if (event.answer) document.getElementById("answer").textContent = event.answer;
      document.getElementById("end").textContent = "ended: " + event.status +
        (event.stop_reason ? " · " + event.stop_reason : "") +
        (event.correct === true ? " · right" : event.correct === false ? " · wrong" : "") + (event.error ? " · " + event.error : "");
      source.close();
    }
  };
}

if (page.view === "index") {
  document.getElementById("start").addEventListener("submit", startRun);
  refreshRuns();
} else if (page.view === "run") followRun();
