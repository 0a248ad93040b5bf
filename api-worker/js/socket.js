// The JS half of the Worker's TCP streams (src/socket.rs): one socket from
// `connect()` with its reader and writer taken once, for its whole life.
// A read is one call from wasm, and its outcome comes back through the one
// callback the stream was made with; a write is one call. workers-rs'
// Socket takes and releases a stream lock and reads the result's fields
// through Reflect on every operation, and a promise awaited from wasm costs
// two fresh closures each time.
import { connect } from "cloudflare:sockets";

export class Tcp {
  /**
   * Starts connecting to `hostname:port`, with TLS when `tls`; throws on a
   * bad address. Nothing waits for the connection: bytes written before it
   * is open are sent once it is, and a refused connection fails the first
   * read. Every read's outcome goes to `onRead(chunk, error)`: a chunk, or
   * undefined at the end of the stream, or an error.
   */
  constructor(hostname, port, tls, onRead) {
    this.socket = connect({ hostname, port }, { secureTransport: tls ? "on" : "off" });
    this.reader = this.socket.readable.getReader();
    this.writer = this.socket.writable.getWriter();
    this.onRead = onRead;
    this.socket.opened.catch((error) => {
      this.failure ??= new Error(`cannot connect: ${error?.message ?? error}`);
    });
  }

  /**
   * Reads the next bytes received, for `onRead`, never before this returns.
   * A write that failed, or a connection that could not be made, fails it.
   */
  read() {
    if (this.failure !== undefined) {
      // A write already failed: say so now rather than wait for bytes.
      Promise.resolve().then(() => this.deliver(undefined, this.failure));
      return;
    }
    this.reader.read().then(
      ({ value, done }) => {
        if (this.failure !== undefined) this.deliver(undefined, this.failure);
        else this.deliver(done ? undefined : value, undefined);
      },
      // A refused connection also fails `opened`, whose handler (above)
      // keeps a clearer message; wait for it to have run.
      (error) => {
        const fail = () => this.deliver(undefined, this.failure ?? error);
        this.socket.opened.then(fail, fail);
      },
    );
  }

  /** Hands an outcome to wasm unless the stream was closed meanwhile. */
  deliver(chunk, error) {
    this.onRead?.(chunk, error);
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

  /**
   * Closes both directions; failures (already closed) are of no interest.
   * `onRead` is not called after this: wasm frees it.
   */
  close() {
    this.onRead = undefined;
    this.socket.close().catch(() => {});
  }
}
