// The Suggestions view (/suggest/NAME): ✓ files a suggested photo under the class (its keyword
// written into the sidecar, or listed for the folder), ✗ says it is not of the class, "take
// back" undoes either; one POST /suggest/NAME a click, answered with the view as it now is.
// Keys: ← → choose a photo, y ✓, n ✗, u takes the last decision back. Plain JavaScript; it
// borrows app.js's fetchPage and swap (window.finderPage).
"use strict";
(() => {
  const name = document.body.dataset.suggest;
  if (document.body.dataset.page !== "suggest" || !name) return;
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const { fetchPage, swap } = window.finderPage;
  const PARTS = ["suggest-info", "suggested", "suggest-filed"];
  const href = `/suggest/${encodeURIComponent(name)}`;
  let busy = false;
  let last = null;  // the last decision: [ids], for u
  let current = 0;  // the chosen suggestion (keyboard)

  function say(text, bad) {
    const box = $("#toast");
    $(".text", box).textContent = text;
    $(".undo", box).hidden = !last || bad;
    $(".undo", box).onclick = () => { box.hidden = true; undo(); };
    box.classList.toggle("bad", !!bad);
    box.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  async function decide(act, ids) {
    if (busy || !ids.length) return;
    busy = true;
    document.body.classList.add("busy");
    try {
      const doc = await fetchPage(href, { [act]: ids });
      swap(doc, PARTS);
      const errors = $$("#suggest-errors li").map((li) => li.textContent);
      last = act === "undo" ? null : ids;
      const what = ids.length === 1 ? "1 photo" : `${ids.length} photos`;
      if (errors.length) say(`error: ${errors[0]}`, true);
      else if (act === "add") say(`✓ ${what}: filed under ${name}`);
      else if (act === "not") say(`✗ ${what}: not ${name}; class retrained`);
      else say(`taken back: ${what} (${name})`);
      choose(current);
    } catch (e) {
      say(`error: ${e.message}`, true);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  function undo() {
    if (last) decide("undo", last);
  }

  const cards = () => $$("#suggested .card[data-id]");

  function choose(i) {
    const all = cards();
    for (const c of all) c.classList.remove("current");
    if (!all.length) return;
    current = Math.max(0, Math.min(i, all.length - 1));
    all[current].classList.add("current");
    all[current].scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button || !button.closest("main")) return;
    const card = button.closest(".card[data-id]");
    if (button.dataset.act && card) {
      event.stopPropagation();
      const i = cards().indexOf(card);
      if (i >= 0) current = i;
      decide(button.dataset.act, [Number(card.dataset.id)]);
    } else if (button.dataset.all) {
      const strip = button.closest(".suggest-strip");
      decide(button.dataset.all, $$(".card[data-id]", strip).map((c) => Number(c.dataset.id)));
    } else if (button.dataset.file) {
      try {
        const r = await fetch(`/api/file/${encodeURIComponent(name)}`, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ mode: button.dataset.file }),
        });
        const data = await r.json();
        if (!r.ok) throw new Error(data.error || r.statusText);
        const made = data.files.filter((f) => f.status !== "same").length;
        say(`${button.dataset.file === "copy" ? "copied" : "linked"} ${made} photos into ${data.folder}`);
      } catch (e) {
        say(`error: ${e.message}`, true);
      }
    }
  }, true);

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey
      || event.altKey) return;
    const all = cards();
    const key = event.key;
    if (key === "ArrowRight" || key === "ArrowLeft") {
      choose(current + (key === "ArrowRight" ? 1 : -1));
    } else if ((key === "y" || key === "n") && all[current]) {
      decide(key === "y" ? "add" : "not", [Number(all[current].dataset.id)]);
    } else if (key === "u") {
      undo();
    } else {
      return;
    }
    event.preventDefault();
  });

  choose(0);
})();
