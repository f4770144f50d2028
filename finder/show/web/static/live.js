// finder's page, live: what changed in the library since the page was shown (an index run, or
// a watch, in this process or another) comes in without a reload. The page asks
// /api/changes?since=STAMP every second (a few stats on the server while nothing changed); when
// something did: the counts and the progress are updated, photos that arrived are added to the
// home page's grid, and a class page re-ranks when new photos enter its answer, with a quiet
// note ("3 new photos of cat").
"use strict";
(() => {
  const live = document.getElementById("live");
  if (!live) return;
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const page = document.body.dataset.page;
  const className = document.body.dataset.class || null;
  const EVERY = 1000, HIDDEN = 5000, AGAIN = 200;  // ms between two questions
  let stamp = live.dataset.stamp;

  const onPage = (id) => $(`main [data-id="${id}"]`) !== null;
  const photos = (n) => `${n} new photo${n === 1 ? "" : "s"}`;

  function set(name, value) {
    for (const el of $$(`[data-live="${name}"]`)) el.textContent = value;
  }

  let noteTimer = null;
  function note(text) {
    const el = $("#live-note");
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
    clearTimeout(noteTimer);
    noteTimer = setTimeout(() => { el.hidden = true; }, 12000);
  }

  function progress(p) {
    const box = $("#progress");
    if (!box) return;
    const running = Boolean(p && p.running);
    if (running) {
      $(".phase", box).textContent = p.phase;
      $("progress", box).max = Math.max(p.total, 1);
      $("progress", box).value = p.done;
      $(".done", box).textContent = p.done;
      $(".total", box).textContent = p.total;
      $(".root", box).textContent = p.root;
    }
    box.hidden = !running;
    box.dataset.running = String(running);
  }

  // The home page's table of classes: a class's size is the cell after its link's.
  function sizeCell(name) {
    for (const a of $$('.classes td a[href^="/class/"]')) {
      if (decodeURIComponent(a.getAttribute("href").slice(7)) === name) {
        return a.closest("td").nextElementSibling;
      }
    }
    return null;
  }

  // The home page's grid goes by id, and photos that arrive have the largest: when the grid's
  // end is shown, they are added there.
  async function addCards(ids) {
    const grid = $("#grid");
    if (page !== "home" || !grid || $("#more")) return;
    for (let k = 0; k < ids.length; k += 200) {
      const some = ids.slice(k, k + 200);
      const doc = await window.finderPage.fetchPage(`/live/cards?ids=${some.join(",")}`);
      for (const card of Array.from(doc.getElementById("cards").children)) {
        if (onPage(card.dataset.id)) continue;
        card.classList.add("arrived");
        grid.append(card);
      }
    }
  }

  // A class page: its ranking as it now is (the same number of photos), swapped in.
  let rerankWanted = false;
  async function rerank(fresh) {
    const fp = window.finderPage;
    if (fp.busy()) { rerankWanted = true; return; }  // a click is on its way: after it
    rerankWanted = false;
    const n = Math.min(Math.max($$("#grid .card").length, 100), 1000);
    const doc = await fp.fetchPage(`/class/${encodeURIComponent(className)}?limit=${n}`);
    if (fp.busy()) { rerankWanted = true; return; }
    fp.swap(doc, ["ranking"]);
    for (const id of fresh) {
      const card = $(`#ranking [data-id="${id}"]`);
      if (card) card.classList.add("arrived");
    }
  }

  const told = new Map();  // class → the ids already said to have entered it
  async function apply(c) {
    for (const key of ["images", "pending", "failed", "offline"]) {
      if (key in c) set(key, c[key]);
    }
    const all = page === "home" ? $("section.ranking h2 small") : null;  // "All photos N"
    if (all && "images" in c) all.textContent = c.images;
    const box = $('[data-live-box="offline"]');
    if (box) {
      box.hidden = !c.offline;
      box.title = (c.offline_roots || []).join(", ");
    }
    progress(c.progress);
    const arrived = (c.added || []).filter((id) => !onPage(id));
    const entered = {};
    for (const [name, ids] of Object.entries(c.classes || {})) {
      const seen = told.get(name) || new Set();
      told.set(name, seen);
      const fresh = ids.filter((id) => !seen.has(id) && !(name === className && onPage(id)));
      for (const id of fresh) seen.add(id);
      if (fresh.length) entered[name] = fresh;
    }
    if (page === "class" && className in entered) {
      note(`${photos(entered[className].length)} of ${className}`);
      await rerank(entered[className]);
    } else if (page === "class" && rerankWanted) {
      await rerank([]);
    }
    if (page === "home") {
      for (const [name, ids] of Object.entries(entered)) {
        const cell = sizeCell(name);
        if (cell && /^\d+$/.test(cell.textContent)) {
          cell.textContent = String(Number(cell.textContent) + ids.length);
        }
      }
      if (arrived.length) {
        const of = Object.entries(entered).map(([name, ids]) => `${ids.length} of ${name}`);
        note(photos(arrived.length) + (of.length ? ` (${of.join(", ")})` : ""));
        await addCards(arrived);
      }
    }
  }

  async function poll() {
    let wait = document.hidden ? HIDDEN : EVERY;
    try {
      const r = await fetch(`/api/changes?since=${encodeURIComponent(stamp)}`,
        { credentials: "same-origin" });
      if (r.status === 400) return;  // a stamp the server does not take: nothing to follow
      if (r.ok) {
        const c = await r.json();
        if (c.changed) await apply(c);
        stamp = c.stamp;
        if (c.again) wait = AGAIN;
      }
    } catch { /* the server may be gone, or a page fetch failed: ask again later */ }
    setTimeout(poll, wait);
  }
  setTimeout(poll, EVERY);
})();
