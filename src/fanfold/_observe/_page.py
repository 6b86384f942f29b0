"""The dashboard's one page: HTML, CSS and JavaScript inline (nothing is fetched from elsewhere).

It lists the runs (``/api/runs``), follows the chosen one over server-sent events
(``/api/runs/{id}/events``), and draws its figures, the slowest tasks in flight, the failures and
the timeline (a canvas, lanes assigned greedily as in the timeline file). The access token, when
the server wants one, comes from the page's own address (``?token=``) and goes on every request.
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>fanfold dashboard</title>
<style>
body{font:13px system-ui,sans-serif;margin:0;color:#222;display:flex;height:100vh}
#side{width:260px;border-right:1px solid #ddd;overflow:auto;padding:8px;box-sizing:border-box}
#side h2{font-size:14px;margin:4px 0 8px} .runrow{padding:4px;cursor:pointer;border-radius:4px}
.runrow:hover,.runrow.sel{background:#eef} .runrow small{color:#666;display:block}
#main{flex:1;padding:12px 16px;overflow:auto} h1{font-size:17px;margin:0 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 10px;min-width:90px}
.card b{display:block;font-size:17px} .card span{color:#666;font-size:11px}
#bar{height:10px;background:#eee;border-radius:5px;overflow:hidden;margin:6px 0 12px}
#fill{height:100%;width:0;background:#2e9d57}
.cols{display:flex;gap:16px} .cols>div{flex:1} h3{font-size:13px;margin:8px 0 4px}
ul{margin:0;padding-left:16px;max-height:160px;overflow:auto} li{margin:1px 0}
#failures li{color:#a22} button{font:inherit;padding:4px 12px;border:1px solid #a22;background:#fff;color:#a22;
border-radius:4px;cursor:pointer} button:disabled{opacity:.4;cursor:default}
canvas{border:1px solid #ddd;background:#fafafa;width:100%;height:260px} #message{color:#555;margin-left:8px}
</style></head><body>
<div id="side"><h2>runs</h2><div id="runs"></div></div>
<div id="main"><h1 id="title">pick a run</h1>
<div><button id="cancel" disabled>cancel run</button><span id="message"></span></div>
<div id="bar"><div id="fill"></div></div>
<div class="cards">
<div class="card"><b id="status">-</b><span>status</span></div>
<div class="card"><b id="done">0</b><span>inputs done</span></div>
<div class="card"><b id="total">?</b><span>inputs</span></div>
<div class="card"><b id="rate">0</b><span>per second</span></div>
<div class="card"><b id="tokens">0</b><span>tokens</span></div>
<div class="card"><b id="cost">$0</b><span>cost</span></div>
<div class="card"><b id="throttled">0</b><span>429s</span></div>
<div class="card"><b id="retries">0</b><span>retries</span></div>
<div class="card"><b id="failed">0</b><span>failed</span></div>
</div>
<div class="cols"><div><h3>slowest in flight</h3><ul id="inflight"></ul></div>
<div><h3>failures</h3><ul id="failures"></ul></div></div>
<h3>timeline</h3><canvas id="timeline" width="1000" height="260" data-bars="0"></canvas>
</div>
<script>
const TOKEN = new URLSearchParams(location.search).get("token");
const COLOURS = {succeeded:"#2e9d57", failed:"#d64541", timed_out:"#e08e0b", cancelled:"#8e8e8e", skipped:"#8da0cb"};
const $ = id => document.getElementById(id);
let current = null, source = null, spans = [];
function url(path) {
  return TOKEN ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : path;
}
async function loadRuns() {
  const r = await fetch(url("/api/runs")); if (!r.ok) { $("message").textContent = await r.text(); return; }
  const runs = await r.json(), box = $("runs"); box.replaceChildren();
  for (const run of runs) {
    const row = document.createElement("div"); row.className = "runrow" + (run.run_id === current ? " sel" : "");
    row.dataset.run = run.run_id; row.textContent = run.run_id;
    const small = document.createElement("small"); small.textContent = run.name + ": " + run.status; row.append(small);
    row.onclick = () => follow(run.run_id); box.append(row);
  }
  const wanted = new URLSearchParams(location.search).get("run");
  if (!current && runs.length) follow(wanted || runs[0].run_id);
}
function follow(id) {
  if (source) source.close();
  current = id; spans = []; $("failures").replaceChildren(); $("inflight").replaceChildren();
  $("title").textContent = "run " + id; $("message").textContent = "";
  source = new EventSource(url("/api/runs/" + encodeURIComponent(id) + "/events"));
  source.onmessage = e => show(JSON.parse(e.data));
  source.addEventListener("end", () => { source.close(); loadRuns(); });
  source.addEventListener("problem", e => { $("message").textContent = e.data; source.close(); });
}
function show(m) {
  const run = m.run;
  for (const row of m.spans) {
    const s = {path:row[0], key:row[1], status:row[2], start:row[3], end:row[4], attempts:row[5], error:row[10]};
    spans.push(s);
    if (s.status === "failed" || s.status === "timed_out") {
      const li = document.createElement("li");
      li.textContent = s.path + ": " + (s.error || s.status); $("failures").append(li);
    }
  }
  const top = spans.filter(s => !s.path.includes("/"));
  const done = top.length, failed = spans.filter(s => s.status === "failed" || s.status === "timed_out").length;
  $("status").textContent = run.status; $("status").dataset.status = run.status;
  $("done").textContent = done; $("total").textContent = run.total ?? "?";
  $("fill").style.width = run.total ? (100 * done / run.total) + "%" : (run.status === "running" ? "0" : "100%");
  $("rate").textContent = run.elapsed > 0 ? (done / run.elapsed).toFixed(1) : "0";
  $("tokens").textContent = run.tokens.toLocaleString(); $("cost").textContent = "$" + run.cost.toFixed(4);
  $("throttled").textContent = run.throttled;
  $("retries").textContent = run.retries ?? spans.reduce((n, s) => n + Math.max(0, s.attempts - 1), 0);
  $("failed").textContent = failed;
  const inflight = $("inflight"); inflight.replaceChildren();
  if (m.inflight === null) {
    const li = document.createElement("li");
    li.textContent = "(a store keeps finished tasks only; serve_dashboard(run) in the run's process shows these)";
    inflight.append(li);
  }
  for (const [path, secs] of m.inflight || []) {
    const li = document.createElement("li"); li.textContent = path + ": " + secs.toFixed(1) + "s"; inflight.append(li);
  }
  $("cancel").disabled = run.status !== "running";
  draw();
}
function draw() {
  const c = $("timeline"), g = c.getContext("2d"), started = spans.filter(s => s.start !== null);
  started.sort((a, b) => a.start - b.start);
  const ends = [], lanes = new Map(); let end = 0.001;
  for (const s of started) {
    let lane = ends.findIndex(e => e <= s.start); if (lane < 0) { lane = ends.length; ends.push(0); }
    ends[lane] = s.end ?? s.start; lanes.set(s, lane); end = Math.max(end, s.end ?? s.start);
  }
  g.clearRect(0, 0, c.width, c.height);
  const h = Math.max(1, Math.min(16, c.height / Math.max(1, ends.length)));
  for (const s of started) {
    const x = c.width * s.start / end, w = Math.max(1, c.width * ((s.end ?? s.start) - s.start) / end);
    g.fillStyle = COLOURS[s.status] || "#999"; g.fillRect(x, lanes.get(s) * h, w, Math.max(1, h - 1));
  }
  c.dataset.bars = started.length;
}
$("cancel").onclick = async () => {
  $("cancel").disabled = true;
  const r = await fetch(url("/api/runs/" + encodeURIComponent(current) + "/cancel"), {method: "POST"});
  $("message").textContent = await r.text();
};
loadRuns(); setInterval(loadRuns, 3000);
</script></body></html>
"""
