/**
 * The accept loop of a TCP listener from `Deno.listen`, shared by the
 * server's plain HTTP side and the proxy's front.
 *
 * @module
 */

/** The pause after a failed `accept`; it doubles with each failure in a row. */
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 1000;

/**
 * Accepts connections on `listener` until `stopping()` is true and the
 * listener is closed, and hands each to `serve` with TCP_NODELAY set (heads
 * and bodies are separate writes, and Nagle would hold a body back for an
 * ACK). A connection reset before it could be served is closed and skipped.
 * A failed accept (out of descriptors, say) goes to `failed` and is tried
 * again after a pause: the connections being served still end and free some.
 */
export async function acceptEach(
  listener: Deno.TcpListener,
  stopping: () => boolean,
  serve: (conn: Deno.TcpConn) => void,
  failed: (error: unknown) => void,
): Promise<void> {
  let retryMs = FIRST_RETRY_MS;
  while (!stopping()) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (stopping()) return;
      failed(error);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      continue;
    }
    retryMs = FIRST_RETRY_MS;
    if (stopping()) {
      conn.close();
      return;
    }
    try {
      conn.setNoDelay(true);
    } catch {
      conn.close();
      continue;
    }
    serve(conn);
  }
}
