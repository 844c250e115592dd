// The copy button of the one-time secret panel: the only script keyward serves.
for (const b of document.querySelectorAll("button[data-copy]")) {
  b.hidden = false;
  b.addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent.trim());
    b.textContent = "Copied";
  });
}
