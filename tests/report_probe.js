// Injected into a Snakemake report: open every image result through the report's own app,
// wait until the browser has decoded it, and append what was shown to the page as JSON.
(async function () {
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  while (typeof app === "undefined" || !document.querySelector("#app").children.length) await wait(25);
  const out = { categories: categories, figures: {} };
  for (const [path, result] of Object.entries(results)) {
    if (!result.mime_type.startsWith("image/")) continue;
    app.setView({ content: "img", contentPath: result.data_uri, navbarMode: "resultinfo", resultPath: path });
    let shown;
    for (let i = 0; i < 400 && !shown; i++) {
      await wait(25);
      shown = [...document.querySelectorAll("#app img")].find(
        (img) => img.getAttribute("src") === result.data_uri && img.complete && img.naturalWidth > 0);
    }
    const caption = document.createElement("div");
    caption.innerHTML = result.caption;
    const start = caption.textContent.trim().slice(0, 40);
    out.figures[path] = {
      width: shown ? shown.naturalWidth : 0,
      height: shown ? shown.naturalHeight : 0,
      caption: start.length > 0 && document.querySelector("#app").textContent.includes(start),
    };
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
