/**
 * The accept loop of a TCP listener, shared by the server's plain HTTP side
 * (`Deno.listen`) and the proxy's front (`tcp_socket.ts`).
 *
 * @module
 */

/** The pause after a failed `accept`; it doubles with each failure in a row. */
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 1000;

/** A TCP listener: `Deno.TcpListener` or a `TcpListener` of `tcp_socket.ts`. */
export interface AcceptingListener<Conn> {
  /** The next connection; throws once the listener is closed, or when accepting failed. */
  accept(): Promise<Conn>;
}

/** What the loop does with an accepted connection before handing it on. */
export interface AcceptedConn {
  /** Sets TCP_NODELAY; throws if the connection was reset already. */
  setNoDelay(on: boolean): void;
  /** Closes the connection. */
  close(): void;
}

/**
 * Accepts connections on `listener` until `stopping()` is true and the
 * listener is closed, and hands each to `serve` with TCP_NODELAY set (heads
 * and bodies are separate writes, and Nagle would hold a body back for an
 * ACK). A connection reset before it could be served is closed and skipped.
 * A failed accept (out of descriptors, say) goes to `failed` and is tried
 * again after a pause: the connections being served still end and free some.
 */
export async function acceptEach<Conn extends AcceptedConn>(
  listener: AcceptingListener<Conn>,
  stopping: () => boolean,
  serve: (conn: Conn) => void,
  failed: (error: unknown) => void,
): Promise<void> {
  let retryMs = FIRST_RETRY_MS;
  while (!stopping()) {
    let conn: Conn;
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
