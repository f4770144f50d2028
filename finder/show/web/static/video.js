// A video's page: the player starts at the moment that matched, and a moment of the list
// seeks it there (without leaving the page). Plain JavaScript, no build step.
"use strict";
(() => {
  const player = document.getElementById("player");
  if (!player) return;
  const start = parseFloat(player.dataset.start || "0");
  const at = document.getElementById("at");
  const clock = (t) => {
    const s = Math.max(0, Math.floor(t));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? `${h}:` : "") + `${mm}:${String(r).padStart(2, "0")}`;
  };
  const seek = (t) => {
    if (Math.abs(player.currentTime - t) > 0.05) player.currentTime = t;
  };
  if (player.readyState >= 1) seek(start);
  else player.addEventListener("loadedmetadata", () => seek(start), { once: true });
  player.addEventListener("timeupdate", () => { if (at) at.textContent = clock(player.currentTime); });
  for (const link of document.querySelectorAll("#moments a.moment[data-time]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      seek(parseFloat(link.dataset.time));
      for (const other of document.querySelectorAll("#moments a.moment.here")) other.classList.remove("here");
      link.classList.add("here");
    });
  }
})();
