/**
 * The event-loop data path of tcpmux against a raw TCP peer that writes and
 * reads frames in pieces of its own choosing: frames split anywhere (inside
 * a header, inside a body), many frames per read, and a reader slow enough
 * that gathered sends go out in part and go on later.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { listen } from "../../mod.ts";
import type { Association } from "../../mod.ts";
import { encodeHello } from "../../transport/tcpmux.ts";

const ignore = needs("read", "net");

/** A raw TCP peer of a tcpmux listener, after the hello exchange (8 streams each way). */
async function rawPeer(): Promise<
  { conn: Deno.Conn; server: Association; close(): Promise<void> }
> {
  const listener = listen("tcpmux", "127.0.0.1", 0, { maxMessageSize: 100_000 });
  const accepted = listener.accept();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  await conn.write(encodeHello(8, 8));
  await readExactly(conn, 8);
  const server = await accepted;
  return {
    conn,
    server,
    async close() {
      conn.close();
      await server.close();
      await listener.close();
    },
  };
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  for (let got = 0; got < length;) {
    const n = await conn.read(out.subarray(got));
    if (n === null) throw new Error(`peer closed after ${got} of ${length} bytes`);
    got += n;
  }
  return out;
}

/** A deterministic byte pattern for message `i` of `length` bytes. */
function body(i: number, length: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(length).map((_, j) => (i * 7 + j * 13) & 0xff);
}

/** Lengths from 0 B to 200 KB (over the 100 KB limit: those arrive cut and marked). */
const LENGTHS = Array.from({ length: 300 }, (_, i) => (i * i * 2311) % 200_000);

Deno.test(
  "tcpmux event loop: frames written in odd pieces arrive whole, in order, cut where too long",
  {
    ignore,
  },
  async () => {
    const peer = await rawPeer();
    try {
      const frames: Uint8Array[] = LENGTHS.map((length, i) => {
        const frame = new Uint8Array(8 + length);
        const view = new DataView(frame.buffer);
        view.setUint16(0, i % 8);
        view.setUint32(4, length);
        frame.set(body(i, length), 8);
        return frame;
      });
      const wire = new Uint8Array(frames.reduce((sum, f) => sum + f.byteLength, 0));
      frames.reduce((at, f) => (wire.set(f, at), at + f.byteLength), 0);
      const writing = (async () => {
        // Pieces of 1 to 70,000 bytes: splits fall inside headers and bodies alike.
        for (let at = 0, k = 1; at < wire.byteLength; k++) {
          const piece = Math.min(wire.byteLength - at, 1 + (k * k * 7919) % 70_000);
          // write may take less than it is given.
          at += await peer.conn.write(wire.subarray(at, at + piece));
        }
      })();
      const reading = (async () => {
        for (const [i, length] of LENGTHS.entries()) {
          const message = await peer.server.receive();
          assert.ok(message, `association ended before message ${i}`);
          assert.equal(message.stream, i % 8);
          const kept = Math.min(length, 100_000);
          assert.equal(message.data.byteLength, kept, `message ${i}`);
          assert.deepEqual(message.data, body(i, length).subarray(0, kept), `message ${i} bytes`);
          assert.equal(message.truncated, length > kept ? true : undefined);
        }
      })();
      await Promise.all([writing, reading]);
    } finally {
      await peer.close();
    }
  },
);

/** Large frames among small ones, whose bodies are copied beside their headers (up to 4,096 bytes). */
const MIXED_LENGTHS = LENGTHS.flatMap((length, i) => [length, (i * 37) % 4097, 4096, 4097, 1]);

Deno.test(
  "tcpmux event loop: a batch of large and small frames larger than the socket buffers reaches a slow reader whole",
  {
    ignore,
  },
  async () => {
    const peer = await rawPeer();
    try {
      const messages = MIXED_LENGTHS.map((length, i) => ({ stream: i % 8, data: body(i, length) }));
      const sent = peer.server.sendBatch(messages);
      for (const [i, length] of MIXED_LENGTHS.entries()) {
        const header = new DataView((await readExactly(peer.conn, 8)).buffer);
        assert.equal(header.getUint16(0), i % 8);
        assert.equal(header.getUint32(4), length, `frame ${i} length`);
        assert.deepEqual(await readExactly(peer.conn, length), body(i, length), `frame ${i} bytes`);
        // A slow reader: the sender's gathered sendmsg goes out in part, and goes on.
        if (i % 250 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await sent;
    } finally {
      await peer.close();
    }
  },
);
