// finder's page: plain JavaScript, no build step. The server renders every page; this file
// only posts clicks to the page (one request a click) and swaps in the parts it answers with.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const page = document.body.dataset.page;
  const className = document.body.dataset.class || null;

  // The token leaves the address bar: the cookie set with the first page carries it on.
  const here = new URL(location.href);
  if (here.searchParams.has("token")) {
    here.searchParams.delete("token");
    history.replaceState(null, "", here.pathname + here.search + here.hash);
  }

  // -- talking to the server -------------------------------------------------------------
  async function api(path, body) {
    const init = { credentials: "same-origin" };
    if (body !== undefined) {
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const data = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(data && data.error ? data.error : r.statusText);
    return data;
  }

  async function fetchPage(href, body) {
    const init = { credentials: "same-origin" };
    if (body !== undefined) {  // a click: the page teaches, and answers as it now is
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const r = await fetch(href, init);
    const text = await r.text();
    const doc = new DOMParser().parseFromString(text, "text/html");
    if (!r.ok) {
      const err = doc.getElementById("error");
      throw new Error(err ? err.textContent : r.statusText);
    }
    return doc;
  }

  // -- a message at the bottom, with an optional undo ------------------------------------
  let toastTimer = null;
  function toast(text, undo) {
    const box = $("#toast");
    $(".text", box).textContent = text;
    const button = $(".undo", box);
    button.hidden = !undo;
    button.onclick = undo ? () => { box.hidden = true; undo(); } : null;
    box.hidden = false;
    box.classList.toggle("bad", !undo && /^(error|refused|no |not )/i.test(text));
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, undo ? 8000 : 5000);
  }

  // -- moving photos smoothly: remember where each was, animate from there -------------
  function positions() {
    const out = new Map();
    for (const el of $$("main [data-id]")) {
      if (!out.has(el.dataset.id)) out.set(el.dataset.id, el.getBoundingClientRect());
    }
    return out;
  }

  function glide(before) {
    const seen = new Set();
    for (const el of $$("main .card[data-id]")) {
      const id = el.dataset.id;
      if (seen.has(id)) continue;
      seen.add(id);
      const old = before.get(id);
      const now = el.getBoundingClientRect();
      if (!old) { el.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 250 }); continue; }
      const dx = old.left - now.left, dy = old.top - now.top;
      if (Math.abs(dx) < 1 && Math.abs(dy) < 1) continue;
      el.animate(
        [{ transform: `translate(${dx}px, ${dy}px)` }, { transform: "none" }],
        { duration: 450, easing: "cubic-bezier(.2,.7,.2,1)" },
      );
    }
  }

  // Replace the parts of this page that a click changes with the server's fresh rendering.
  function swap(doc, ids) {
    const before = positions();
    for (const id of ids) {
      const fresh = doc.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(fresh);
    }
    restoreSelection();
    glide(before);
    observeMore();
    decorateStrips();
  }

  // -- ✓ / ✗ / undo ------------------------------------------------------------------------
  let busy = false;
  const verb = { add: "✓", not: "✗", undo: "taken back:" };

  async function teach(name, act, ids, label) {
    if (busy) return;
    busy = true;
    document.body.classList.add("busy");
    try {
      const marks = { [act]: ids };
      if (page === "class") {
        // the same photos stay on the page (up to the server's largest page)
        const shown = Math.min(Math.max($$("#grid .card").length, 100), 1000);
        const doc = await fetchPage(`/class/${encodeURIComponent(name)}?limit=${shown}`, marks);
        reviewAsked++;  // the strip comes with the page: a fetch still on its way is stale
        swap(doc, ["classinfo", "marks", "review", "ranking"]);
      } else if (page === "photo") {
        swap(await fetchPage(`${location.pathname}?class=${encodeURIComponent(name)}`, marks),
          ["scores"]);
      } else {
        await api(`/api/learn/${encodeURIComponent(name)}`, marks);
      }
      const what = ids.length === 1 ? (label || "1 photo") : `${ids.length} photos`;
      const text = act === "undo" ? `${verb.undo} ${what} (${name})`
        : `${verb[act]} ${what}: ${act === "add" ? "" : "not "}${name}; class retrained`;
      toast(text, act === "undo" ? null : () => teach(name, "undo", ids, label));
    } catch (e) {
      toast(`error: ${e.message}`);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const holder = button.closest("[data-id]");
    const name = button.dataset.class || className;
    if (!holder || !name) return;
    const img = $("img", holder);
    teach(name, button.dataset.act, [Number(holder.dataset.id)], img ? img.alt : null);
  });

  // -- selecting photos on any grid, and naming a class from them ------------------------
  const KEY = "finder-selection";
  const selected = new Map(JSON.parse(sessionStorage.getItem(KEY) || "[]"));

  function saveSelection() {
    sessionStorage.setItem(KEY, JSON.stringify(Array.from(selected.entries())));
    const bar = $("#selection");
    bar.hidden = selected.size === 0;
    $("#sel-count").textContent = `${selected.size} selected`;
    const strip = $("#sel-thumbs");
    strip.replaceChildren(...Array.from(selected.keys()).slice(-12).map((id) => {
      const img = document.createElement("img");
      img.src = `/thumb/${id}`;
      img.alt = selected.get(id) || "";
      return img;
    }));
    for (const el of $$("[data-only]", bar)) el.hidden = el.dataset.only !== page;
  }

  function restoreSelection() {
    for (const box of $$(".card[data-id] .pick input")) {
      box.checked = selected.has(box.closest(".card").dataset.id);
      box.closest(".card").classList.toggle("picked", box.checked);
    }
    for (const box of $$(".pick-photo")) box.checked = selected.has(box.dataset.id);
  }

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") return;
    const card = box.closest(".card");
    const id = card ? card.dataset.id : box.dataset.id;
    if (!id) return;
    const img = card ? $("img", card) : $("#photo");
    if (box.checked) selected.set(id, img ? img.alt : "");
    else selected.delete(id);
    if (card) card.classList.toggle("picked", box.checked);
    saveSelection();
  });

  $("#sel-clear").addEventListener("click", () => {
    selected.clear();
    restoreSelection();
    saveSelection();
  });

  $("#sel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#sel-name").value.trim();
    if (!name) return;
    const ids = Array.from(selected.keys(), Number);
    try {
      await api(`/api/learn/${encodeURIComponent(name)}`, { add: ids });
      selected.clear();
      saveSelection();
      location.href = `/class/${encodeURIComponent(name)}`;
    } catch (e) {
      toast(`error: ${e.message}`);
    }
  });

  for (const [id, act] of [["sel-yes", "add"], ["sel-no", "not"]]) {
    $(`#${id}`).addEventListener("click", async () => {
      const ids = Array.from(selected.keys(), Number);
      selected.clear();
      saveSelection();
      await teach(className, act, ids);
    });
  }

  // -- "is this right?": fetched once the page shows (it takes longer than the grid) -----
  let reviewAsked = 0;
  async function loadReview() {
    const strip = $("#review[data-src]");
    if (!strip) return;
    const asked = ++reviewAsked;
    try {
      const doc = await fetchPage(strip.dataset.src);
      const fresh = doc.getElementById("review");
      if (!fresh || asked !== reviewAsked) return;  // a click brought a newer one
      const before = positions();
      strip.replaceWith(fresh);
      restoreSelection();
      glide(before);
      decorateStrips();
    } catch (e) {
      $(".row", strip).textContent = e.message;
    }
  }

  // -- paging: more photos as the grid is scrolled to its end ----------------------------
  let loading = false;
  async function loadMore() {
    const link = $("#more");
    if (!link || loading) return;
    loading = true;
    try {
      const doc = await fetchPage(link.href);
      const grid = $("#grid");
      for (const el of Array.from(doc.getElementById("grid").children)) {
        if (el.id === "cutoff" && $("#cutoff")) continue;
        grid.append(el);
      }
      const next = doc.getElementById("more");
      if (next) link.href = next.href;
      else link.closest(".more-row").remove();
      restoreSelection();
    } catch (e) {
      toast(`error: ${e.message}`);
    } finally {
      loading = false;
    }
  }

  const watcher = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, { rootMargin: "600px" })
    : null;

  function observeMore() {
    const link = $("#more");
    if (!link) return;
    if (watcher) { watcher.disconnect(); watcher.observe(link); }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("#more");
    if (!link) return;
    event.preventDefault();
    loadMore();
  });

  // -- strips that scroll sideways show it: a fade and an arrow at each edge with more ------
  function decorateStrips() {
    for (const row of $$(".strip .row")) {
      let wrap = row.parentElement;
      if (!wrap.classList.contains("rowwrap")) {
        wrap = document.createElement("div");
        wrap.className = "rowwrap";
        row.before(wrap);
        const arrows = [["left", "‹", -1], ["right", "›", 1]].map(([side, glyph, way]) => {
          const b = document.createElement("button");
          b.type = "button";
          b.className = `scroll ${side}`;
          b.textContent = glyph;
          b.title = way < 0 ? "scroll back" : "more: scroll on";
          b.setAttribute("aria-label", b.title);
          b.addEventListener("click", () => {
            row.scrollBy({ left: way * Math.max(row.clientWidth * 0.8, 120), behavior: "smooth" });
          });
          return b;
        });
        wrap.append(arrows[0], row, arrows[1]);
        row.addEventListener("scroll", () => edges(row), { passive: true });
      }
      edges(row);
    }
  }

  function edges(row) {
    const wrap = row.parentElement;
    const over = row.scrollWidth - row.clientWidth > 1;
    wrap.classList.toggle("overflows", over);
    wrap.classList.toggle("more-left", over && row.scrollLeft > 1);
    wrap.classList.toggle("more-right", over && row.scrollLeft + row.clientWidth < row.scrollWidth - 1);
  }

  window.addEventListener("resize", () => { for (const row of $$(".strip .row")) edges(row); });

  // -- the class menu: past a handful of classes, a search box filters them ---------------
  const search = $("#class-search");
  if (search) {
    const menu = $("#classes-menu");
    const filter = () => {
      const words = search.value.trim().toLowerCase();
      let shown = 0;
      for (const a of $$("#class-list a")) {
        const hit = !words || a.textContent.toLowerCase().includes(words);
        a.hidden = !hit;
        shown += hit;
      }
      $("#class-none").hidden = shown > 0;
    };
    search.addEventListener("input", filter);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        const first = $$("#class-list a").find((a) => !a.hidden);
        if (first) location.href = first.href;
      } else if (event.key === "Escape") {
        menu.open = false;
      }
    });
    menu.addEventListener("toggle", () => { if (menu.open) { search.focus(); filter(); } });
    document.addEventListener("click", (event) => {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
  }

  // -- a class's life: rename, forget (kept 30 days, restored from the home page), take back
  const FORGOT = "finder-forgot";
  const classPath = (name) => `/class/${encodeURIComponent(name)}`;

  async function restore(name) {
    try {
      const record = await api(`/api/restore/${encodeURIComponent(name)}`, {});
      location.href = classPath(record.name);
    } catch (e) {
      toast(`error: ${e.message}`);
    }
  }

  document.addEventListener("click", async (event) => {
    const el = event.target.closest("button");
    if (!el) return;
    if (el.id === "rename-open" || el.id === "forget-open") {
      const [form, other] = el.id === "rename-open"
        ? [$("#rename-form"), $("#forget-confirm")] : [$("#forget-confirm"), $("#rename-form")];
      form.hidden = !form.hidden;
      other.hidden = true;
      if (!form.hidden && el.id === "rename-open") $("#rename-name").select();
    } else if (el.dataset.close) {
      $(`#${el.dataset.close}`).hidden = true;
    } else if (el.id === "forget-yes") {
      try {
        await api(`/api/forget/${encodeURIComponent(className)}`, {});
        sessionStorage.setItem(FORGOT, className);
        location.href = "/";
      } catch (e) {
        toast(`error: ${e.message}`);
      }
    } else if (el.dataset.restore) {
      restore(el.dataset.restore);
    } else if (el.dataset.drop && className) {  // a mark whose photo is not in the library
      try {
        await api(`/api/drop/${encodeURIComponent(className)}`, { marks: [el.dataset.drop] });
        swap(await fetchPage(classPath(className)), ["classinfo", "marks", "ranking"]);
        toast(`taken back: ${$(".caption", el.closest(".card")).textContent} (${className})`);
      } catch (e) {
        toast(`error: ${e.message}`);
      }
    }
  });

  document.addEventListener("submit", async (event) => {
    if (event.target.id !== "rename-form") return;
    event.preventDefault();
    const to = $("#rename-name").value.trim();
    if (!to || to === className) { $("#rename-form").hidden = true; return; }
    try {
      const record = await api(`/api/rename/${encodeURIComponent(className)}`, { to });
      location.href = classPath(record.name);
    } catch (e) {
      toast(`error: ${e.message}`);
    }
  });

  const forgot = sessionStorage.getItem(FORGOT);
  if (forgot !== null) {
    sessionStorage.removeItem(FORGOT);
    toast(`forgot ${forgot}: kept 30 days`, () => restore(forgot));
  }

  // -- the photo page: copy the path -----------------------------------------------------
  const copy = $("#copy");
  if (copy) {
    copy.addEventListener("click", async () => {
      const text = $("#path").textContent;
      try {
        await navigator.clipboard.writeText(text);
        toast("path copied");
      } catch {
        const range = document.createRange();
        range.selectNodeContents($("#path"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        toast("path selected: press Ctrl-C to copy");
      }
    });
  }

  // live.js (what changed since the page was shown) swaps parts in as a click does
  window.finderPage = { fetchPage, swap, busy: () => busy };

  restoreSelection();
  saveSelection();
  observeMore();
  decorateStrips();
  loadReview();
})();
