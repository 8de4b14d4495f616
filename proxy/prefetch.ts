/**
 * Prefetch: HTML is parsed as it streams in (htmlparser2), and the
 * same-origin resources it embeds are requested at once, as one batch per
 * arriving chunk (usually one batch per page), so the server can schedule
 * them together. Fetched CSS is scanned for `url()` and `@import` (second
 * level). Resources already cached or in flight are skipped; each is
 * requested once.
 *
 * Embedded means: img src/srcset, link rel=stylesheet/icon/preload/
 * modulepreload (and apple-touch-icon, shortcut icon), script src,
 * video/audio/source/track src, video poster, source srcset, iframe src,
 * embed src, object data, input type=image src, url() in style elements and
 * style attributes. Links (`<a href>`) are not followed.
 *
 * @module
 */

import { Parser } from "htmlparser2";
import type { Logger } from "../cli/log.ts";
import { cacheKey } from "./cache.ts";
import type { BodySink, Fetcher } from "./fetcher.ts";
import type { ProxyStats } from "./stats.ts";

/** Resources found in HTML are depth 1; in CSS fetched at depth 1, depth 2, and so on. */
const MAX_DEPTH = 3;
/** CSS larger than this is not scanned. */
const MAX_CSS = 2 * 1024 * 1024;

const LINK_RELS = new Set([
  "stylesheet",
  "icon",
  "shortcut",
  "apple-touch-icon",
  "preload",
  "modulepreload",
]);

/**
 * A sink that parses HTML as it arrives and reports the embedded resource
 * URLs (resolved against `base`, not yet filtered by origin) found in each
 * chunk.
 */
export function htmlResourceSink(base: URL, onBatch: (urls: URL[]) => void): BodySink {
  let current = base;
  let batch: URL[] = [];
  let inStyle = false;
  let styleText = "";
  const add = (value: string | undefined) => {
    if (!value) return;
    try {
      batch.push(new URL(value.trim(), current));
    } catch { /* not a URL */ }
  };
  const addSrcset = (value: string | undefined) => {
    if (!value) return;
    for (const candidate of value.split(",")) add(candidate.trim().split(/\s+/)[0]);
  };
  const parser = new Parser({
    onopentag(name, a) {
      switch (name) {
        case "base":
          if (a.href) {
            try {
              current = new URL(a.href, base);
            } catch { /* ignored */ }
          }
          break;
        case "img":
          add(a.src);
          addSrcset(a.srcset);
          break;
        case "link": {
          const rels = (a.rel ?? "").toLowerCase().split(/\s+/);
          if (rels.some((rel) => LINK_RELS.has(rel))) add(a.href);
          break;
        }
        case "script":
        case "iframe":
        case "embed":
        case "track":
        case "audio":
          add(a.src);
          break;
        case "video":
          add(a.src);
          add(a.poster);
          break;
        case "source":
          add(a.src);
          addSrcset(a.srcset);
          break;
        case "object":
          add(a.data);
          break;
        case "input":
          if ((a.type ?? "").toLowerCase() === "image") add(a.src);
          break;
        case "style":
          inStyle = true;
          styleText = "";
          break;
      }
      if (a.style) { for (const url of cssUrls(a.style)) add(url); }
    },
    ontext(text) {
      if (inStyle) styleText += text;
    },
    onclosetag(name) {
      if (name === "style") {
        inStyle = false;
        for (const url of cssUrls(styleText)) add(url);
      }
    },
  }, { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true });
  const decoder = new TextDecoder();
  const flush = () => {
    if (batch.length > 0) {
      const found = batch;
      batch = [];
      onBatch(found);
    }
  };
  return {
    write(chunk) {
      parser.write(decoder.decode(chunk, { stream: true }));
      flush();
    },
    end() {
      parser.write(decoder.decode());
      parser.end();
      flush();
    },
  };
}

/** The `url(...)` and `@import "..."` references in CSS text, unresolved. */
export function cssUrls(css: string): string[] {
  const urls: string[] = [];
  const text = css.replace(/\/\*[\s\S]*?\*\//g, "");
  for (const match of text.matchAll(/url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)/gi)) {
    const url = match[1] ?? match[2] ?? match[3];
    if (url && !url.startsWith("data:")) urls.push(url);
  }
  for (const match of text.matchAll(/@import\s+(?:"([^"]*)"|'([^']*)')/gi)) {
    urls.push(match[1] ?? match[2]);
  }
  return urls;
}

/** A sink collecting CSS text; on end it reports the URLs in it. */
export function cssResourceSink(base: URL, onBatch: (urls: URL[]) => void): BodySink {
  const decoder = new TextDecoder();
  let text = "";
  let tooLarge = false;
  return {
    write(chunk) {
      if (tooLarge) return;
      text += decoder.decode(chunk, { stream: true });
      if (text.length > MAX_CSS) tooLarge = true;
    },
    end() {
      if (tooLarge) return;
      text += decoder.decode();
      const urls: URL[] = [];
      for (const url of cssUrls(text)) {
        try {
          urls.push(new URL(url, base));
        } catch { /* not a URL */ }
      }
      if (urls.length > 0) onBatch(urls);
    },
  };
}

/** Prefetcher options. */
export interface PrefetcherOptions {
  stats: ProxyStats;
  log: Logger;
  /** Whether cache `key` is known complete right now (no I/O). */
  cached: (key: string) => boolean;
}

/** Turns parsed pages into prefetch batches. */
export class Prefetcher {
  /** The origin pages are resolved against (the upstream is one site). */
  static readonly ORIGIN = "http://flowsched.invalid";
  readonly #options: PrefetcherOptions;
  #fetcher: Fetcher | undefined;

  constructor(options: PrefetcherOptions) {
    this.#options = options;
  }

  /** Connects the fetcher that prefetches go through (it also feeds this parser). */
  attach(fetcher: Fetcher): void {
    this.#fetcher = fetcher;
  }

  /** The sink for a 200 response of `path` at `depth`, by content type. */
  inspect(path: string, contentType: string, depth: number): BodySink | undefined {
    if (depth >= MAX_DEPTH) return undefined;
    const type = contentType.split(";")[0].trim().toLowerCase();
    const base = new URL(path, Prefetcher.ORIGIN);
    const batch = (urls: URL[]) => this.#batch(path, urls, depth + 1);
    if (type === "text/html" || type === "application/xhtml+xml") {
      return htmlResourceSink(base, batch);
    }
    if (type === "text/css") return cssResourceSink(base, batch);
    return undefined;
  }

  #batch(from: string, urls: URL[], depth: number) {
    const fetcher = this.#fetcher;
    if (!fetcher) return;
    const keys = new Set<string>();
    for (const url of urls) {
      // Same origin only, and only what the cache can hold.
      if (url.origin !== Prefetcher.ORIGIN || url.search) continue;
      const key = cacheKey(url.pathname);
      if (!key || keys.has(key)) continue;
      if (this.#options.cached(key) || fetcher.busy(key)) continue;
      keys.add(key);
    }
    if (keys.size === 0) return;
    this.#options.log.debug("prefetch batch", { from, depth, count: keys.size });
    for (const key of keys) {
      fetcher.fill(key, { prefetch: true, depth }).catch((error) => {
        this.#options.log.warn("prefetch failed", { path: key, error: String(error) });
      });
    }
  }
}
