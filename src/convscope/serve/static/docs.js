// Lists the routes of /openapi.json as a table (a local stand-in for FastAPI's CDN-based /docs).
"use strict";
fetch("/openapi.json").then((r) => r.json()).then((spec) => {
  const body = document.querySelector("#routes tbody");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in})`);
      const content = op.requestBody ? op.requestBody.content : {};
      for (const [type, media] of Object.entries(content)) {
        const props = media.schema && media.schema.properties ? Object.keys(media.schema.properties) : [];
        const ref = media.schema && media.schema.$ref;
        params.push(`${type}${props.length ? ": " + props.join(", ") : ref ? ": " + ref.split("/").pop() : ""}`);
      }
      const tr = document.createElement("tr");
      for (const v of [method.toUpperCase(), path, op.summary || "", params.join("; ")]) {
        const td = document.createElement("td");
        td.textContent = v;
        td.style.whiteSpace = "normal";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }
});
