/**
 * A site of HTML pages with many embedded resources each, of every kind
 * the prefetcher knows (img src/srcset, stylesheets with url() and @import,
 * icons, preload/modulepreload, scripts, video poster/source, audio, iframe),
 * plus a page script that reports what loaded (read by the browser test).
 * Used by the proxy tests and by `bench thesis` (browser request patterns).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { prng, sha256Hex as sha256 } from "../common.ts";

/** A file of the site: URL path, bytes, and whether an HTML page embeds it. */
export interface SiteFile {
  path: string;
  size: number;
  sha256: string;
}

/** A page and the resources it embeds (directly and through its CSS). */
export interface SitePage {
  path: string;
  resources: string[];
}

/** A generated site. */
export interface Site {
  root: string;
  files: SiteFile[];
  pages: SitePage[];
}

/** A 1×1 PNG, so images decode in a browser. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

/**
 * Writes `pageCount` pages into `root` (default: a new temp directory); each embeds between
 * `minResources` (10) and `maxResources` (40) resources. Images are valid PNGs padded to random sizes (a
 * trailing chunk after IEND is ignored by decoders), so a browser loads them.
 */
export async function makeSite(
  pageCount: number,
  options: { minResources?: number; maxResources?: number; seed?: number; root?: string } = {},
): Promise<Site> {
  const min = options.minResources ?? 10;
  const max = options.maxResources ?? 40;
  const seed = options.seed ?? 7;
  const root = options.root ?? await Deno.makeTempDir({ prefix: "flowsched-site-" });
  const random = prng(seed);
  const files = new Map<string, Uint8Array>();
  const text = (s: string) => new TextEncoder().encode(s);
  const padded = (base: Uint8Array, size: number, fill: (i: number) => number) => {
    const out = new Uint8Array(Math.max(size, base.byteLength));
    out.set(base);
    for (let i = base.byteLength; i < out.byteLength; i++) out[i] = fill(i);
    return out;
  };
  const randomSize = () => Math.floor(Math.exp(random() * Math.log(256 * 1024)));
  const pages: SitePage[] = [];

  // Shared resources: a stylesheet with @import and url(), fonts, an icon.
  files.set("/shared/base.css", text(`@import "theme.css";\nbody { margin: 0 }\n`));
  files.set(
    "/shared/theme.css",
    text(`body { background: url("../img/shared-bg.png") }\n/* url(never.png) */\n`),
  );
  files.set("/img/shared-bg.png", padded(PNG, randomSize(), () => 0));
  files.set("/favicon.ico", padded(PNG, 2000, () => 0));

  for (let p = 0; p < pageCount; p++) {
    const count = min + Math.floor(random() * (max - min + 1)); // embedded, CSS-borne included
    const resources = new Set<string>([
      "/shared/base.css",
      "/shared/theme.css",
      "/img/shared-bg.png",
      "/favicon.ico",
    ]);
    const body: string[] = [];
    const head: string[] = [
      `<link rel="icon" href="/favicon.ico">`,
      `<link rel="stylesheet" href="/shared/base.css">`,
    ];
    const css = `/p${p}/page.css`;
    const cssImage = `/p${p}/img/css-bg.png`;
    files.set(css, text(`.hero { background-image: url('img/css-bg.png') }\n`));
    files.set(cssImage, padded(PNG, randomSize(), (i) => i & 0xff));
    head.push(`<link rel="stylesheet" href="page.css">`);
    resources.add(css).add(cssImage);
    let n = 0;
    while (resources.size < count) {
      const kind = n % 6;
      const name = `/p${p}/r${n}`;
      n++;
      if (kind === 0 || kind === 1) {
        const path = `${name}.png`;
        files.set(path, padded(PNG, randomSize(), (i) => (i * 7) & 0xff));
        body.push(`<img src="r${n - 1}.png" alt="">`);
        resources.add(path);
      } else if (kind === 2) {
        const a = `${name}-1x.png`, b = `${name}-2x.png`;
        files.set(a, padded(PNG, randomSize(), () => 1));
        files.set(b, padded(PNG, randomSize(), () => 2));
        body.push(`<img src="${a}" srcset="${a} 1x, ${b} 2x" alt="">`);
        resources.add(a).add(b);
      } else if (kind === 3) {
        const path = `${name}.js`;
        files.set(
          path,
          text(
            `window.__loaded = (window.__loaded || 0) + 1; // ${
              "x".repeat(randomSize() % 20000)
            }\n`,
          ),
        );
        body.push(`<script src="${path}"></script>`);
        resources.add(path);
      } else if (kind === 4) {
        const path = `${name}.css`;
        files.set(path, text(`.c${n} { color: red } /* ${"y".repeat(randomSize() % 20000)} */\n`));
        head.push(
          `<link rel="preload" as="style" href="${path}"><link rel="stylesheet" href="${path}">`,
        );
        resources.add(path);
      } else {
        const poster = `${name}-poster.png`;
        files.set(poster, padded(PNG, randomSize(), () => 3));
        body.push(`<video poster="${poster}" preload="none"></video>`);
        resources.add(poster);
      }
    }
    const path = `/p${p}/index.html`;
    const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>page ${p}</title>
${head.join("\n")}
</head><body>
<h1 class="hero">Page ${p}</h1>
${body.join("\n")}
<script>
window.addEventListener("load", () => {
  const loaded = performance.getEntriesByType("resource")
    .map((e) => ({ path: new URL(e.name).pathname, status: e.responseStatus }));
  const broken = [...document.images].filter((img) => !img.complete || img.naturalWidth === 0)
    .map((img) => new URL(img.currentSrc || img.src).pathname);
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify({ loaded, broken, scripts: window.__loaded || 0 });
  document.body.append(out);
});
</script>
</body></html>
`;
    files.set(path, text(html));
    pages.push({ path, resources: [...resources] });
  }

  const list: SiteFile[] = [];
  for (const [path, data] of files) {
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeFile(join(root, path), data);
    list.push({ path, size: data.byteLength, sha256: sha256(data) });
  }
  return { root, files: list, pages };
}
