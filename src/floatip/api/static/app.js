// floatip's topology page: the objects the caller may see (/floatip/v1/topology), drawn with
// Cytoscape.js, and read again after each event of the change feed (/floatip/v1/feed).
"use strict";
let token = sessionStorage.getItem("floatip-token") || "";
let cy = null;
let topo = null;

const headers = () => (token ? { "X-Auth-Token": token } : {});
const short = (id) => id.slice(0, 8);
const text = (s) => document.createTextNode(s == null ? "" : String(s));

async function getJSON(url) {
  const r = await fetch(url, { headers: headers() });
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).NeutronError.message; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status} ${msg}`);
  }
  return r.json();
}

function node(id, kind, name, status, reason, extra) {
  const label = `${name}\n${status || ""}` + (status === "ERROR" && reason ? `\n${reason}` : "");
  return { data: { id, kind, name, status, reason, label, ...extra } };
}

function edge(source, target, kind) {
  return { data: { id: `${source}>${target}`, source, target, kind } };
}

// Objects -> graph elements: external networks, routers (gateway and interfaces), tenant
// networks, VM ports and floating IPs, each with its status and status_reason.
function elements(t) {
  const out = [];
  const ids = new Set();
  const add = (el) => { if (!ids.has(el.data.id)) { ids.add(el.data.id); out.push(el); } };
  for (const n of t.networks) {
    const ext = n["router:external"];
    add(node(n.id, ext ? "external" : "network", n.name || short(n.id), n.status, null,
             { cidrs: t.subnets.filter((s) => s.network_id === n.id).map((s) => s.cidr) }));
  }
  for (const r of t.routers) {
    add(node(r.id, "router", r.name || short(r.id), r.status, r.status_reason));
    const gw = r.external_gateway_info;
    if (gw && ids.has(gw.network_id)) add(edge(r.id, gw.network_id, "gateway"));
  }
  for (const p of t.ports) {
    const owner = p.device_owner || "";
    if (owner === "network:router_interface" && ids.has(p.device_id) && ids.has(p.network_id)) {
      add(edge(p.device_id, p.network_id, "interface"));
    } else if ((owner === "" || owner.startsWith("compute:")) && ids.has(p.network_id)) {
      const ip = (p.fixed_ips || []).map((f) => f.ip_address).join(" ");
      add(node(p.id, "port", `${p.name || short(p.id)} ${ip}`, p.status, null));
      add(edge(p.network_id, p.id, "port"));
    }
  }
  for (const f of t.floatingips) {
    add(node(f.id, "floatingip", f.floating_ip_address, f.status, f.status_reason,
             { address: f.floating_ip_address }));
    if (f.port_id && ids.has(f.port_id)) add(edge(f.port_id, f.id, "floating"));
  }
  return out.filter((el) => !el.data.source || (ids.has(el.data.source) && ids.has(el.data.target)));
}

function draw(t) {
  const els = elements(t);
  if (typeof cytoscape === "undefined") {
    document.getElementById("graph").textContent = "Cytoscape.js is not installed: run make install.";
  } else {
    if (cy === null) {
      cy = cytoscape({
        container: document.getElementById("graph"),
        style: [
          { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "font-size": 10,
            "text-valign": "bottom", "background-color": "#457b9d", width: 24, height: 24 } },
          { selector: "node[kind = 'external']", style: { shape: "round-rectangle", "background-color": "#2a9d8f" } },
          { selector: "node[kind = 'router']", style: { shape: "diamond", "background-color": "#e9c46a" } },
          { selector: "node[kind = 'network']", style: { shape: "round-rectangle" } },
          { selector: "node[kind = 'floatingip']", style: { shape: "star", "background-color": "#f4a261" } },
          { selector: "node[status = 'ERROR']", style: { "background-color": "#b00020", color: "#b00020" } },
          { selector: "node[status = 'DOWN']", style: { opacity: 0.5 } },
          { selector: "edge", style: { width: 2, "line-color": "#bbb", "curve-style": "bezier" } },
        ],
      });
      cy.on("tap", "node", (ev) => select(ev.target.data()));
      window.cy = cy;
    }
    cy.elements().remove();
    cy.add(els);
    const roots = cy.nodes("[kind = 'external']");
    cy.layout({ name: "breadthfirst", directed: false, roots: roots.length ? roots : undefined,
                spacingFactor: 1.1, animate: false }).run();
  }
  const body = document.querySelector("#objects tbody");
  body.replaceChildren();
  for (const el of els.filter((e) => !e.data.source)) {
    const tr = document.createElement("tr");
    tr.dataset.id = el.data.id;
    tr.className = el.data.status || "";
    for (const v of [el.data.kind, el.data.name, el.data.status, el.data.reason]) {
      const td = document.createElement("td");
      td.appendChild(text(v));
      tr.appendChild(td);
    }
    tr.onclick = () => select(el.data);
    body.appendChild(tr);
  }
}

function select(d) {
  const box = document.getElementById("detail");
  box.replaceChildren(text(`${d.kind} ${d.id}: ${d.status || ""}` +
                           (d.reason ? ` (${d.reason})` : "")));
  document.getElementById("trace").replaceChildren();
  if (d.kind === "floatingip") {
    const b = document.createElement("button");
    b.textContent = "trace a packet from upstream";
    b.onclick = () => trace(d.address);
    box.appendChild(document.createElement("br"));
    box.appendChild(b);
  }
}

async function trace(address) {
  const out = document.getElementById("trace");
  out.replaceChildren(text("tracing…"));
  try {
    const t = await getJSON(`/floatip/v1/trace?address=${encodeURIComponent(address)}`);
    const ol = document.createElement("ol");
    for (const h of t.hops) {
      const li = document.createElement("li");
      if (!h.ok) li.className = "stop";
      li.appendChild(text(`[${h.direction}] ${h.name}: ${h.matched}`));
      const c = document.createElement("code");
      c.appendChild(text(h.command));
      li.appendChild(c);
      ol.appendChild(li);
    }
    out.replaceChildren(text(t.delivered ? "delivered" : `NOT delivered: stops at ${t.stopped}`), ol);
    for (const d of t.disagreements) out.appendChild(document.createElement("p")).appendChild(text(`API and host disagree: ${d}`));
  } catch (e) {
    out.replaceChildren(text(`trace failed: ${e.message}`));
  }
}

async function refresh() {
  try {
    topo = await getJSON("/floatip/v1/topology");
    draw(topo);
    const ev = await getJSON("/floatip/v1/events?limit=20");
    const ol = document.getElementById("events");
    ol.replaceChildren();
    for (const e of ev.events) {
      const li = document.createElement("li");
      li.className = e.status || "";
      const what = e.kind === "status" ? `${e.old_status || "-"} → ${e.status}` : "repaired";
      li.appendChild(text(`${e.at} ${e.resource} ${short(e.resource_id)} ${what}` +
                          (e.reason ? `: ${e.reason}` : "")));
      ol.appendChild(li);
    }
    document.getElementById("state").textContent = `generation ${topo.generation}`;
    document.body.dataset.generation = topo.generation;
  } catch (e) {
    document.getElementById("state").textContent = `error: ${e.message}`;
  }
}

// The change feed (server-sent events read through fetch, so the token goes in a header);
// each stream ends after a few seconds and is opened again.
async function follow() {
  for (;;) {
    try {
      const r = await fetch("/floatip/v1/feed", { headers: headers() });
      if (!r.ok) throw new Error(`${r.status}`);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (msg.startsWith("event: change")) await refresh();
        }
      }
    } catch (e) {
      document.getElementById("state").textContent = `feed: ${e.message}`;
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  }
}

document.getElementById("auth").onsubmit = (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("floatip-token", token);
  refresh();
};
follow();
