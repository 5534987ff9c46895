// mlgate playground: builds a V2 inference request from the form, sends it with fetch, shows the answer.
// Plain JavaScript, no dependencies. Everything shown comes from textContent, never innerHTML, so text
// from the model (labels, outputs) can never become markup.
(function () {
  "use strict";

  // apikey.js may replace the page's <main> with the page as the caller's API key sees it: start on that one
  // (the event "mlgate:page"), or at once when there is nothing to wait for.
  document.addEventListener("mlgate:page", start);
  if (document.documentElement.dataset.apiKey !== "pending") start();

  function keyHeaders(url) {
    return window.mlgateApiKey ? window.mlgateApiKey.headers(url) : {};
  }

  function start() {
    const specNode = document.getElementById("model-spec");
    if (!specNode || specNode.dataset.started) return;
    specNode.dataset.started = "1";
    const spec = JSON.parse(specNode.textContent);
    const form = document.getElementById("infer-form");
    const statusLine = document.getElementById("status");
    const resultBox = document.getElementById("result");
    const latencyLine = document.getElementById("latency");
    const rawJson = document.getElementById("raw-json");
    const inferUrl = window.location.origin + spec.infer_path;
    const images = new Map(); // input index -> {values, source}
    let sequence = 0;

    class FormError extends Error {}

    function el(tag, text, className) {
      const node = document.createElement(tag);
      if (text !== undefined && text !== null) node.textContent = String(text);
      if (className) node.className = className;
      return node;
    }

    const isInteger = (dt) => /^U?INT/.test(dt);

    // ---- table inputs -------------------------------------------------------------------------------

    function tableCells(fieldset) {
      // rows[r][e]: the field of column r for example e
      return Array.from(fieldset.querySelectorAll("table.features tbody tr"), (tr) => Array.from(tr.querySelectorAll("input")));
    }

    function setExamples(fieldset, count) {
      const headRow = fieldset.querySelector("table.features thead tr");
      for (const tr of fieldset.querySelectorAll("table.features tbody tr")) {
        let cells = tr.querySelectorAll("td");
        while (cells.length < count) {
          const td = cells[cells.length - 1].cloneNode(true);
          const input = td.querySelector("input");
          input.value = "";
          input.checked = false;
          tr.appendChild(td);
          cells = tr.querySelectorAll("td");
        }
        while (cells.length > count) {
          cells[cells.length - 1].remove();
          cells = tr.querySelectorAll("td");
        }
      }
      let heads = headRow.querySelectorAll(".example-head");
      while (heads.length < count) {
        headRow.appendChild(el("th", "example " + (heads.length + 1), "example-head"));
        heads = headRow.querySelectorAll(".example-head");
      }
      while (heads.length > count) {
        heads[heads.length - 1].remove();
        heads = headRow.querySelectorAll(".example-head");
      }
    }

    function fillFromText(fieldset, input) {
      const lines = fieldset.querySelector(".paste-box").value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l);
      if (!lines.length) throw new FormError("Paste at least one line of values for " + input.name + ".");
      const rows = lines.map((line, i) => {
        const values = line.split(/[\s,;]+/).filter((v) => v);
        if (values.length !== input.columns) {
          throw new FormError(`Line ${i + 1} has ${values.length} values; ${input.name} takes ${input.columns}.`);
        }
        values.forEach((v, j) => {
          if (input.datatype !== "BOOL" && !Number.isFinite(Number(v))) {
            throw new FormError(`Line ${i + 1}, value ${j + 1} (${v}) is not a finite number.`);
          }
        });
        return values;
      });
      setExamples(fieldset, rows.length);
      const cells = tableCells(fieldset);
      rows.forEach((values, e) => values.forEach((v, r) => {
        const field = cells[r][e];
        if (field.type === "checkbox") field.checked = /^(1|true|yes)$/i.test(v);
        else field.value = v;
      }));
    }

    function readTable(fieldset, input) {
      const cells = tableCells(fieldset);
      const examples = cells[0].length;
      const rows = [];
      for (let e = 0; e < examples; e++) {
        const row = [];
        cells.forEach((column, r) => {
          const field = column[e];
          if (field.type === "checkbox") { row.push(field.checked); return; }
          const name = field.getAttribute("aria-label");
          if (field.value.trim() === "") throw new FormError(`Fill in ${name} (example ${e + 1}).`);
          const value = Number(field.value);
          if (!Number.isFinite(value)) throw new FormError(`${name} (example ${e + 1}) is not a number.`);
          if (isInteger(input.datatype) && !Number.isInteger(value)) {
            throw new FormError(`${name} (example ${e + 1}) must be a whole number (${input.datatype}).`);
          }
          row.push(value);
        });
        rows.push(row);
      }
      if (input.shape.length === 1) return { shape: [examples], data: rows.map((r) => r[0]) };
      return { shape: [examples, input.columns], data: rows };
    }

    // ---- text and JSON inputs -----------------------------------------------------------------------

    function readTexts(fieldset, input) {
      const lines = fieldset.querySelector("textarea.texts").value.split(/\r?\n/);
      while (lines.length && lines[lines.length - 1] === "") lines.pop();
      if (!lines.length) throw new FormError(`Write at least one line of text for ${input.name}.`);
      return { shape: input.shape.length === 1 ? [lines.length] : [lines.length, 1], data: lines };
    }

    function readJson(fieldset, input) {
      let data;
      try {
        data = JSON.parse(fieldset.querySelector("textarea.json").value);
      } catch (err) {
        throw new FormError(`${input.name}: not valid JSON (${err.message}).`);
      }
      if (!Array.isArray(data)) throw new FormError(`${input.name}: expected a JSON array, nested to the shape.`);
      const shape = [];
      for (let level = data; Array.isArray(level); level = level[0]) shape.push(level.length);
      return { shape, data };
    }

    // ---- image inputs -------------------------------------------------------------------------------

    // Area-averaging weights of a resize from src to dst pixels along one axis: for each output pixel, the
    // [source index, weight] pairs of the source pixels it covers (weights sum to 1). Same as
    // mlgate.codecs.images.area_weights.
    function areaWeights(src, dst) {
      const scale = src / dst;
      const out = [];
      for (let i = 0; i < dst; i++) {
        const start = i * scale, end = (i + 1) * scale;
        const pairs = [];
        let total = 0;
        for (let j = Math.floor(start); j < Math.min(Math.ceil(end), src); j++) {
          const w = Math.min(end, j + 1) - Math.max(start, j);
          pairs.push([j, w]);
          total += w;
        }
        out.push(pairs.map(([j, w]) => [j, w / total]));
      }
      return out;
    }

    // RGBA pixels (already on white) -> flat values as the input's [inputs.image] declares; the same steps
    // as mlgate.codecs.images.image_to_tensor.
    function imageToTensor(rgba, width, height, image) {
      const channels = image.color === "rgb" ? 3 : 1;
      const planes = [];
      for (let c = 0; c < channels; c++) planes.push(new Float64Array(width * height));
      for (let i = 0; i < width * height; i++) {
        const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
        if (channels === 1) planes[0][i] = 0.299 * r + 0.587 * g + 0.114 * b;
        else { planes[0][i] = r; planes[1][i] = g; planes[2][i] = b; }
      }
      const W = image.width, H = image.height;
      const rowWeights = areaWeights(height, H), colWeights = areaWeights(width, W);
      const [low, high] = image.value_range;
      const values = new Array(W * H * channels);
      for (let c = 0; c < channels; c++) {
        const plane = planes[c];
        const narrow = new Float64Array(height * W); // columns resized first
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < W; x++) {
            let sum = 0;
            for (const [j, w] of colWeights[x]) sum += plane[y * width + j] * w;
            narrow[y * W + x] = sum;
          }
        }
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            let sum = 0;
            for (const [j, w] of rowWeights[y]) sum += narrow[j * W + x] * w;
            let p = sum / 255;
            if (image.invert) p = 1 - p;
            const value = low + p * (high - low);
            const at = image.layout === "CHW" ? c * H * W + y * W + x : (y * W + x) * channels + c;
            values[at] = value;
          }
        }
      }
      return values;
    }

    const MAX_SIDE = 1024; // larger pictures are first shrunk by the browser, to keep this quick

    function pixelsOf(source, width, height) {
      const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
      const w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(source, 0, 0, w, h);
      return { rgba: ctx.getImageData(0, 0, w, h).data, width: w, height: h };
    }

    function showPreview(fieldset, input, values) {
      const image = input.image;
      const canvas = fieldset.querySelector("canvas.preview");
      const ctx = canvas.getContext("2d");
      const data = ctx.createImageData(image.width, image.height);
      const channels = image.color === "rgb" ? 3 : 1;
      const [low, high] = image.value_range;
      const H = image.height, W = image.width;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const px = [];
          for (let c = 0; c < channels; c++) {
            const at = image.layout === "CHW" ? c * H * W + y * W + x : (y * W + x) * channels + c;
            let p = high === low ? 0 : (values[at] - low) / (high - low);
            if (image.invert) p = 1 - p;
            px.push(Math.round(255 * p));
          }
          const o = 4 * (y * W + x);
          data.data[o] = px[0];
          data.data[o + 1] = px[channels === 3 ? 1 : 0];
          data.data[o + 2] = px[channels === 3 ? 2 : 0];
          data.data[o + 3] = 255;
        }
      }
      ctx.putImageData(data, 0, 0);
      const rows = [];
      const perRow = W * (image.layout === "CHW" ? 1 : channels);
      for (let i = 0; i < values.length; i += perRow) {
        rows.push(values.slice(i, i + perRow).map((v) => v.toFixed(2).padStart(6)).join(" "));
      }
      fieldset.querySelector(".image-values").textContent = rows.join("\n");
    }

    function useImage(fieldset, index, source, width, height, label) {
      const input = spec.inputs[index];
      const { rgba, width: w, height: h } = pixelsOf(source, width, height);
      let values = imageToTensor(rgba, w, h, input.image);
      values = values.map((v) => (isInteger(input.datatype) ? Math.round(v) : Math.round(v * 1e6) / 1e6));
      images.set(index, { values, source: label });
      fieldset.querySelector(".image-source").textContent = "Using " + label + ".";
      showPreview(fieldset, input, values);
      changed();
      if (spec.inputs.every((i) => i.kind === "image")) predict();
    }

    function setUpPad(fieldset, index) {
      const pad = fieldset.querySelector("canvas.pad");
      const ctx = pad.getContext("2d", { willReadFrequently: true });
      const clear = () => {
        ctx.fillStyle = "#ffffff";
        ctx.fillRect(0, 0, pad.width, pad.height);
      };
      clear();
      ctx.lineWidth = Math.round(pad.width / 9);
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#000000";
      let drawing = false;
      const at = (event) => {
        const box = pad.getBoundingClientRect();
        return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
      };
      pad.addEventListener("pointerdown", (event) => {
        drawing = true;
        pad.setPointerCapture(event.pointerId);
        const [x, y] = at(event);
        ctx.beginPath();
        ctx.moveTo(x, y);
        ctx.lineTo(x + 0.01, y);
        ctx.stroke();
      });
      pad.addEventListener("pointermove", (event) => {
        if (!drawing) return;
        const [x, y] = at(event);
        ctx.lineTo(x, y);
        ctx.stroke();
      });
      const finish = () => {
        if (!drawing) return;
        drawing = false;
        useImage(fieldset, index, pad, pad.width, pad.height, "the drawing");
      };
      pad.addEventListener("pointerup", finish);
      pad.addEventListener("pointercancel", finish);
      fieldset.querySelector(".clear-pad").addEventListener("click", () => {
        clear();
        images.delete(index);
        fieldset.querySelector(".image-source").textContent = "Draw with the mouse, or upload a picture.";
        changed();
      });
      fieldset.querySelector(".image-file").addEventListener("change", async (event) => {
        const file = event.target.files[0];
        if (!file) return;
        try {
          const bitmap = await createImageBitmap(file);
          useImage(fieldset, index, bitmap, bitmap.width, bitmap.height,
            `upload ${file.name} (${bitmap.width}×${bitmap.height})`);
        } catch (err) {
          showError(`${file.name} is not an image this browser can read.`);
        }
      });
    }

    function readImage(fieldset, index, input) {
      const got = images.get(index);
      if (!got) throw new FormError(`Draw something or upload a picture for ${input.name}.`);
      return { shape: input.image_shape, data: got.values };
    }

    // ---- the manifest's example row -----------------------------------------------------------------

    // Puts each input's example row (from the manifest, one row without the batch dimension) into its form;
    // inputs without one are left as they are.
    function fillExample() {
      spec.inputs.forEach((input, index) => {
        const row = input.example;
        if (row === null || row === undefined) return;
        const fieldset = form.querySelector(`fieldset[data-index="${index}"]`);
        if (input.kind === "table") {
          setExamples(fieldset, 1);
          const values = Array.isArray(row) ? row : [row];
          tableCells(fieldset).forEach((column, r) => {
            const field = column[0];
            if (field.type === "checkbox") field.checked = Boolean(values[r]);
            else field.value = String(values[r]);
          });
        } else if (input.kind === "text") {
          fieldset.querySelector("textarea.texts").value = String(Array.isArray(row) ? row[0] : row);
        } else if (input.kind === "json") {
          fieldset.querySelector("textarea.json").value = JSON.stringify([row]);
        } else if (input.kind === "image") {
          const values = [row].flat(Infinity);
          images.set(index, { values, source: "the example" });
          fieldset.querySelector(".image-source").textContent = "Using the model's example.";
          showPreview(fieldset, input, values);
        }
      });
      statusLine.textContent = "Filled in with the model's example. Press Predict.";
      statusLine.className = "";
      changed();
    }

    // ---- the request --------------------------------------------------------------------------------

    function buildRequest() {
      const inputs = spec.inputs.map((input, index) => {
        const fieldset = form.querySelector(`fieldset[data-index="${index}"]`);
        const read = { table: readTable, text: readTexts, json: readJson, image: readImage }[input.kind];
        const { shape, data } = input.kind === "image" ? read(fieldset, index, input) : read(fieldset, input);
        return { name: input.name, shape, datatype: input.datatype, data };
      });
      return { inputs };
    }

    function shellQuote(text) {
      return "'" + text.replace(/'/g, "'\\''") + "'";
    }

    function pythonLiteral(value) {
      if (value === null) return "None";
      if (value === true) return "True";
      if (value === false) return "False";
      if (Array.isArray(value)) return "[" + value.map(pythonLiteral).join(", ") + "]";
      if (typeof value === "object") {
        return "{" + Object.entries(value).map(([k, v]) => JSON.stringify(k) + ": " + pythonLiteral(v)).join(", ") + "}";
      }
      return JSON.stringify(value); // numbers, and strings (a JSON string is a valid Python string literal)
    }

    function updateSnippets(body) {
      const curl = document.getElementById("snippet-curl");
      const python = document.getElementById("snippet-python");
      if (!body) {
        curl.textContent = python.textContent = "# Fill in the form to see the request.";
        return;
      }
      // With a key, the snippets read it from $MLGATE_API_KEY: the secret itself is never shown.
      const keyed = Object.keys(keyHeaders(inferUrl)).length > 0;
      curl.textContent = [
        "curl -s " + shellQuote(inferUrl) + " \\",
        ...(keyed ? ['  -H "Authorization: Bearer $MLGATE_API_KEY" \\'] : []),
        "  -H 'Content-Type: application/json' \\",
        "  -d " + shellQuote(JSON.stringify(body)),
      ].join("\n");
      python.textContent = [
        "import json",
        ...(keyed ? ["import os"] : []),
        "import urllib.request",
        "",
        "body = " + pythonLiteral(body),
        "request = urllib.request.Request(",
        "    " + JSON.stringify(inferUrl) + ",",
        "    data=json.dumps(body).encode(),",
        keyed ? '    headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["MLGATE_API_KEY"]},'
          : '    headers={"Content-Type": "application/json"},',
        ")",
        "with urllib.request.urlopen(request) as response:",
        "    print(json.load(response))",
      ].join("\n");
    }

    function changed() {
      try {
        updateSnippets(buildRequest());
      } catch (err) {
        if (!(err instanceof FormError)) throw err;
        updateSnippets(null);
      }
    }

    // ---- the answer ---------------------------------------------------------------------------------

    function showError(message) {
      statusLine.textContent = message;
      statusLine.className = "error";
    }

    function rowOf(output, row) {
      const batch = output.shape[0] || 1;
      const width = output.data.length / batch;
      return output.data.slice(row * width, (row + 1) * width);
    }

    function labelOf(index) {
      const label = spec.labels[index];
      return label === undefined ? String(index) : label;
    }

    function showAnswer(body) {
      resultBox.replaceChildren();
      const byName = new Map(body.outputs.map((o) => [o.name, o]));
      const classOut = byName.get(spec.class_output);
      const probaOut = byName.get(spec.proba_output);
      const first = body.outputs[0];
      const rows = first ? first.shape[0] || 1 : 0;
      for (let r = 0; r < rows; r++) {
        const box = el("div", null, "prediction");
        box.dataset.example = String(r);
        if (rows > 1) box.appendChild(el("h3", "Example " + (r + 1)));
        const probs = probaOut ? rowOf(probaOut, r) : null;
        let predicted = classOut ? Number(rowOf(classOut, r)[0]) : null;
        if (predicted === null && probs) predicted = probs.indexOf(Math.max(...probs));
        if (predicted !== null) {
          const line = el("p", null, "predicted");
          line.append("Class ");
          line.appendChild(el("strong", labelOf(predicted), "predicted-label"));
          line.appendChild(el("span", ` (index ${predicted})`, "predicted-index"));
          if (probs && probs[predicted] !== undefined) {
            line.append(", probability ");
            line.appendChild(el("strong", Number(probs[predicted]).toFixed(4), "predicted-probability"));
          }
          box.appendChild(line);
        }
        if (probs) {
          const table = el("table", null, "probabilities");
          const head = table.createTHead().insertRow();
          ["class", "probability", ""].forEach((t) => head.appendChild(el("th", t)));
          const order = probs.map((p, i) => [Number(p), i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
          const tbody = table.createTBody();
          for (const [p, i] of order) {
            const tr = tbody.insertRow();
            tr.dataset.index = String(i);
            tr.appendChild(el("td", labelOf(i), "label"));
            tr.appendChild(el("td", p.toFixed(4), "probability"));
            const meter = document.createElement("meter");
            meter.min = 0;
            meter.max = 1;
            meter.value = p;
            tr.insertCell().appendChild(meter);
          }
          box.appendChild(table);
        }
        const others = body.outputs.filter((o) => o !== classOut && o !== probaOut);
        if (others.length) {
          const list = el("dl", null, "outputs");
          for (const output of others) {
            list.appendChild(el("dt", output.name));
            list.appendChild(el("dd", JSON.stringify(rowOf(output, r))));
          }
          box.appendChild(list);
        }
        resultBox.appendChild(box);
      }
    }

    async function predict() {
      let body;
      try {
        body = buildRequest();
      } catch (err) {
        if (err instanceof FormError) { showError(err.message); return; }
        throw err;
      }
      updateSnippets(body);
      const mine = ++sequence;
      statusLine.textContent = "Asking the model...";
      statusLine.className = "busy";
      const started = performance.now();
      let response, answer;
      try {
        if (window.mlgateApiKey) await window.mlgateApiKey.fresh(); // an admin session's token, renewed in time
        response = await fetch(inferUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json", ...keyHeaders(inferUrl) },
          body: JSON.stringify(body),
        });
        answer = await response.json();
      } catch (err) {
        if (mine === sequence) showError("The server did not answer: " + err.message);
        return;
      }
      const elapsed = performance.now() - started;
      if (mine !== sequence) return; // a newer request is on its way
      rawJson.textContent = JSON.stringify(answer, null, 2);
      latencyLine.textContent = `Latency ${elapsed.toFixed(1)} ms (round trip from this browser)` +
        (response.headers.get("x-request-id") ? ` · request id ${response.headers.get("x-request-id")}` : "");
      if (!response.ok) {
        resultBox.replaceChildren();
        if (response.status === 401 && window.mlgateApiKey && window.mlgateApiKey.viaSession()) {
          window.mlgateApiKey.sessionEnded();
          showError(`Error 401 ${answer.code || ""}: your admin session has ended; sign in again at /admin/ ` +
            "or enter an API key at the top of the page.");
          return;
        }
        showError(`Error ${response.status} ${answer.code || ""}: ${answer.error || "no detail"}` +
          (answer.field ? ` (at ${answer.field})` : "") +
          (response.status === 401 ? ". This model needs an API key: enter yours at the top of the page." : "") +
          (response.status === 403 ? ". Your API key may not use this model." : ""));
        return;
      }
      statusLine.textContent = `Answered by ${answer.model_name} version ${answer.model_version}.`;
      statusLine.className = "ok";
      showAnswer(answer);
    }

    // ---- wiring -------------------------------------------------------------------------------------

    spec.inputs.forEach((input, index) => {
      const fieldset = form.querySelector(`fieldset[data-index="${index}"]`);
      if (input.kind === "table") {
        fieldset.querySelector(".add-example").addEventListener("click", () => {
          setExamples(fieldset, tableCells(fieldset)[0].length + 1);
          changed();
        });
        fieldset.querySelector(".remove-example").addEventListener("click", () => {
          setExamples(fieldset, Math.max(1, tableCells(fieldset)[0].length - 1));
          changed();
        });
        fieldset.querySelector(".fill").addEventListener("click", () => {
          try {
            fillFromText(fieldset, input);
            statusLine.textContent = "Filled in. Press Predict.";
            statusLine.className = "";
            changed();
          } catch (err) {
            if (err instanceof FormError) showError(err.message);
            else throw err;
          }
        });
      } else if (input.kind === "image") {
        setUpPad(fieldset, index);
      }
    });
    const exampleButton = document.getElementById("fill-example");
    if (exampleButton) exampleButton.addEventListener("click", fillExample);
    form.addEventListener("input", changed);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      predict();
    });
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", async () => {
        const text = document.getElementById(button.dataset.target).textContent;
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = "Copied";
        } catch (err) {
          const range = document.createRange();
          range.selectNodeContents(document.getElementById(button.dataset.target));
          window.getSelection().removeAllRanges();
          window.getSelection().addRange(range);
          button.textContent = "Selected: press Ctrl+C";
        }
        setTimeout(() => { button.textContent = "Copy"; }, 2000);
      });
    }
    changed();
  }
})();
