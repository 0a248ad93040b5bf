// The JS half of the Worker's TCP streams (src/socket.rs): one socket from
// `connect()` with its reader and writer taken once, for its whole life.
// Each read is then one call from wasm and one promise, each write one call,
// where workers-rs' Socket takes and releases a stream lock and reads the
// result's fields through Reflect on every operation.
import { connect } from "cloudflare:sockets";

export class Tcp {
  /** Opens `hostname:port`, with TLS when `tls`. Throws on a bad address. */
  constructor(hostname, port, tls) {
    this.socket = connect({ hostname, port }, { secureTransport: tls ? "on" : "off" });
    this.reader = this.socket.readable.getReader();
    this.writer = this.socket.writable.getWriter();
  }

  /** Resolves once connected; rejects if the connection was refused. */
  opened() {
    return this.socket.opened;
  }

  /**
   * The next bytes received, or undefined at the end of the stream.
   * Rejects with the error of a write that failed since the last read.
   */
  async read() {
    if (this.failure !== undefined) throw this.failure;
    const { value, done } = await this.reader.read();
    return done ? undefined : value;
  }

  /**
   * Queues `bytes` on the socket (a view of wasm memory, copied before this
   * returns, as the memory is reused once the call is over) without waiting
   * for them to be sent; a failure is kept for the next read, which a
   * request/reply protocol always makes.
   */
  write(bytes) {
    this.writer.write(bytes.slice()).catch((error) => {
      this.failure ??= error;
    });
  }

  /** Closes both directions; failures (already closed) are of no interest. */
  close() {
    this.socket.close().catch(() => {});
  }
}
