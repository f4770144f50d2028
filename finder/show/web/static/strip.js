// Teaching by the strip (the class page's "Is this right?"): photos pre-set to finder's guess,
// the wrong ones flipped, the strip confirmed whole (one request, one retraining), the next
// strip slides in and the grid re-ranks. Keyboard: arrows or h/j/k/l move, space flips, s says
// "not sure" (taught nothing, never offered again), Enter confirms, u or Backspace takes the
// last strip back, ? shows the keys; a click or tap flips.
// On the ranked grid, "✓↑" (all above here are right) marks ✓ a photo and every one above it.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const className = document.body.dataset.class || null;
  if (!className || document.body.dataset.page !== "class") return;
  const N = 20;
  const taught = [];  // strips confirmed, newest last: {ids, skipped, html} (u takes one back)
  let busy = false;

  const page = () => window.finderPage;
  const tiles = () => $$("#verdicts .verdict");
  const classPath = () => `/class/${encodeURIComponent(className)}`;
  const stripPath = () => `/strip/${encodeURIComponent(className)}`;

  function toast(text) {
    const box = $("#toast");
    $(".text", box).textContent = text;
    $(".undo", box).hidden = true;
    box.hidden = false;
    box.classList.toggle("bad", /^error/.test(text));
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  // a tile's verdict: "yes" (✓), "no" (✗) or "skip" (not sure)
  function say(tile, verdict) {
    tile.dataset.say = verdict;
    tile.classList.toggle("is-yes", verdict === "yes");
    tile.classList.toggle("is-no", verdict === "no");
    tile.classList.toggle("is-skip", verdict === "skip");
    tile.classList.toggle("flipped", verdict !== (tile.dataset.guess === "1" ? "yes" : "no"));
    $(".say", tile).textContent = { yes: "✓", no: "✗", skip: "?" }[verdict];
    const button = $(".flip", tile);
    button.setAttribute("aria-pressed", verdict === "yes" ? "true" : "false");
    const words = { yes: "is", no: "is not", skip: "not sure it is" }[verdict];
    const label = button.getAttribute("aria-label").replace(/: (is|is not|not sure it is) /, `: ${words} `);
    button.setAttribute("aria-label", label);
    count();
  }
  const flipped = (tile) => (tile.dataset.say === "yes" ? "no" : "yes");
  const unsure = (tile) => (tile.dataset.say === "skip"
    ? (tile.dataset.guess === "1" ? "yes" : "no") : "skip");

  function count() {
    const all = tiles();
    const out = $("#strip-count");
    if (!out) return;
    const yes = all.filter((t) => t.dataset.say === "yes").length;
    const skip = all.filter((t) => t.dataset.say === "skip").length;
    const flips = all.filter((t) => t.classList.contains("flipped")).length;
    out.textContent = `${yes} ✓ · ${all.length - yes - skip} ✗ · ${skip} not sure · ${flips} changed`;
    const undo = $("#strip-undo");
    if (undo) undo.disabled = taught.length === 0;
  }

  function at() { return tiles().findIndex((t) => t.classList.contains("at")); }
  function moveTo(i) {
    const all = tiles();
    if (!all.length) return;
    const j = Math.max(0, Math.min(all.length - 1, i));
    for (const t of all) t.classList.remove("at");
    all[j].classList.add("at");
    all[j].scrollIntoView({ block: "nearest" });
  }
  function columns() {
    const all = tiles();
    if (!all.length) return 1;
    const top = all[0].offsetTop;
    const n = all.filter((t) => t.offsetTop === top).length;
    return Math.max(1, n);
  }

  function placed(section) {  // a strip just put on the page
    if (!section) return;
    section.classList.add("slide-in");
    count();
  }

  async function load() {
    const holder = $("#teach[data-src]");
    if (!holder) return;
    try {
      const doc = await page().fetchPage(`${stripPath()}?n=${N}`);
      const fresh = doc.getElementById("teach");
      if (fresh && document.getElementById("teach") === holder) {
        holder.replaceWith(fresh);
        placed(fresh);
      }
    } catch (e) {
      holder.querySelector(".hint").textContent = e.message;
    }
  }

  const shown = () => Math.min(Math.max($$("#grid .card").length, 100), 1000);

  async function confirm() {
    const section = $("#teach");
    const all = tiles();
    if (busy || !all.length) return;
    busy = true;
    document.body.classList.add("busy");
    const ids = (verdict) => all.filter((t) => t.dataset.say === verdict).map((t) => Number(t.dataset.id));
    const [add, not, skip] = [ids("yes"), ids("no"), ids("skip")];
    const flips = all.filter((t) => t.classList.contains("flipped")).length;
    const html = section.outerHTML;
    try {
      const doc = await page().fetchPage(
        `${stripPath()}?n=${all.length}&limit=${shown()}`, { add, not, skip });
      taught.push({ ids: add.concat(not), skipped: skip, html });
      page().swap(doc, ["classinfo", "marks", "teach", "ranking"]);
      placed($("#teach"));
      const unsure = skip.length ? `, ${skip.length} not sure` : "";
      toast(`taught ${add.length + not.length}: ${add.length} ✓, ${not.length} ✗${unsure} (${flips} changed); ${className} retrained`);
    } catch (e) {
      toast(`error: ${e.message}`);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  async function undo() {
    if (busy || !taught.length) return;
    busy = true;
    document.body.classList.add("busy");
    const last = taught[taught.length - 1];
    try {
      const n = tiles().length || N;
      const doc = await page().fetchPage(
        `${stripPath()}?n=${n}&limit=${shown()}`, { undo: last.ids, unskip: last.skipped });
      taught.pop();
      page().swap(doc, ["classinfo", "marks", "ranking"]);
      const back = new DOMParser().parseFromString(last.html, "text/html").getElementById("teach");
      $("#teach").replaceWith(back);  // the strip as it was, its verdicts with it
      back.classList.remove("slide-in");
      count();
      toast(`taken back: the last strip (${last.ids.length + last.skipped.length} photos); ${className} retrained`);
    } catch (e) {
      toast(`error: ${e.message}`);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  async function allAbove(card) {
    if (busy) return;
    const cards = $$("#grid .card[data-id]");
    const upto = cards.indexOf(card);
    if (upto < 0) return;
    const ids = cards.slice(0, upto + 1).map((c) => Number(c.dataset.id));
    busy = true;
    document.body.classList.add("busy");
    try {
      const doc = await page().fetchPage(`${classPath()}?limit=${shown()}`, { add: ids });
      page().swap(doc, ["classinfo", "marks", "ranking"]);
      toast(`✓ ${ids.length} photos: all above here are ${className}; class retrained`);
    } catch (e) {
      toast(`error: ${e.message}`);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  function keys(show) {
    const box = $("#keys");
    if (box) box.hidden = show === undefined ? !box.hidden : !show;
  }

  document.addEventListener("click", (event) => {
    const flip = event.target.closest("#verdicts .flip, #verdicts .unsure");
    if (flip) {
      const tile = flip.closest(".verdict");
      moveTo(tiles().indexOf(tile));
      say(tile, flip.classList.contains("unsure") ? unsure(tile) : flipped(tile));
      return;
    }
    if (event.target.closest("#strip-confirm")) confirm();
    else if (event.target.closest("#strip-undo")) undo();
    else if (event.target.closest("#keys-open")) keys();
    else {
      const above = event.target.closest("#grid button[data-above]");
      if (above) allAbove(above.closest(".card"));
    }
  });

  const MOVES = {
    ArrowLeft: -1, h: -1, ArrowRight: 1, l: 1,
    ArrowUp: "up", k: "up", ArrowDown: "down", j: "down",
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const el = document.activeElement;
    const typing = el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
    if (typing) return;
    // keys belong to the strip unless a control outside it has the focus
    const outside = el && el !== document.body && !el.closest("#teach");
    const key = event.key;
    if (key === "?") { keys(); event.preventDefault(); return; }
    if (key === "Escape") { keys(false); return; }
    if (!$("#teach")) return;
    if (key in MOVES) {
      if (outside && el.closest("details, form")) return;  // the class menu's own keys
      const i = Math.max(at(), 0);
      const step = MOVES[key];
      const cols = columns();
      moveTo(step === "up" ? i - cols : step === "down" ? i + cols : i + step);
      event.preventDefault();
    } else if (key === " " && !outside) {
      const tile = tiles()[Math.max(at(), 0)];
      if (tile) { say(tile, flipped(tile)); event.preventDefault(); }
    } else if (key === "s" && !outside) {
      const tile = tiles()[Math.max(at(), 0)];
      if (tile) say(tile, unsure(tile));
    } else if (key === "Enter" && !outside) {
      event.preventDefault();
      confirm();
    } else if ((key === "u" || key === "Backspace") && !outside) {
      event.preventDefault();
      undo();
    }
  });

  const ready = () => { count(); load(); };
  if (window.finderPage) ready(); else window.addEventListener("DOMContentLoaded", ready);
})();
