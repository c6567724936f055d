const encoder = new TextEncoder();

function tooLarge(service, n, max) {
  return new ferry.FerryError(`ferry: ${service}: received a message of ${n} bytes or more, over max_message (${max})`);
}

function broken(service, what) {
  return new ferry.FerryError(`ferry: ${service}: ${what}`);
}

// A codec finds messages in received bytes and frames messages to send.
// take returns null when it needs more bytes, or [message, next offset];
// it throws on a message over max or bytes that break the framing.
const linesCodec = {
  decoder: new TextDecoder("utf-8", { fatal: true }),
  take(service, buf, start, end, max, eof) {
    const nl = buf.subarray(start, end).indexOf(10);
    let stop, next;
    if (nl >= 0) {
      stop = start + nl;
      next = stop + 1;
      if (stop > start && buf[stop - 1] === 13) stop--;
    } else if (eof && end > start) {
      stop = next = end; // a last line without "\n"
    } else {
      // Room for max bytes and a "\r" while the "\n" is still to come.
      if (end - start > max + 1) throw tooLarge(service, end - start, max);
      return null;
    }
    if (stop - start > max) throw tooLarge(service, stop - start, max);
    let text;
    try {
      text = this.decoder.decode(buf.subarray(start, stop));
    } catch {
      throw broken(service, "received a line that is not UTF-8");
    }
    return [text, next];
  },
  frame(service, msg, max) {
    if (typeof msg !== "string") throw new TypeError(`ferry: ${service}: send takes a string`);
    if (msg.includes("\n")) throw broken(service, 'a message may not contain "\\n"');
    if (typeof msg.isWellFormed === "function" && !msg.isWellFormed()) {
      throw broken(service, "the message has a lone surrogate: it is not Unicode text");
    }
    const bytes = encoder.encode(msg + "\n");
    if (bytes.length - 1 > max) throw broken(service, `a message of ${bytes.length - 1} bytes is over max_message (${max})`);
    return bytes;
  },
};

const u32beCodec = {
  take(service, buf, start, end, max, eof) {
    if (end - start < 4) {
      if (eof && end > start) throw broken(service, "the stream ended inside a message");
      return null;
    }
    const n = new DataView(buf.buffer, buf.byteOffset + start, 4).getUint32(0);
    if (n > max) throw tooLarge(service, n, max);
    if (end - start - 4 < n) {
      if (eof) throw broken(service, "the stream ended inside a message");
      return null;
    }
    return [buf.slice(start + 4, start + 4 + n), start + 4 + n];
  },
  frame(service, msg, max) {
    let body;
    if (msg instanceof Uint8Array) body = msg;
    else if (ArrayBuffer.isView(msg)) body = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    else if (msg instanceof ArrayBuffer) body = new Uint8Array(msg);
    else throw new TypeError(`ferry: ${service}: send takes a Uint8Array, another ArrayBufferView or an ArrayBuffer`);
    if (body.length > max) throw broken(service, `a message of ${body.length} bytes is over max_message (${max})`);
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length);
    out.set(body, 4);
    return out;
  },
};

// Channel carries whole messages over a socket. It reads the socket only
// when asked for a message, so a consumer that stops reading stops the
// service (Web Streams backpressure); it holds at most one message and
// one read's worth of bytes.
class Channel {
  #codec;
  #reader = null;
  #writer = null;
  #buf = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #eof = false;
  #error = null;
  #iterating = false;

  constructor(socket, codec, max) {
    this.socket = socket;
    this.service = socket.service;
    this.maxMessage = max;
    this.closed = socket.closed;
    this.#codec = codec;
  }

  async send(msg) {
    const bytes = this.#codec.frame(this.service, msg, this.maxMessage);
    this.#writer ??= this.socket.writable.getWriter();
    await this.#writer.write(bytes);
  }

  async receive() {
    if (this.#error) throw this.#error;
    try {
      for (;;) {
        const got = this.#codec.take(this.service, this.#buf, this.#start, this.#end, this.maxMessage, this.#eof);
        if (got !== null) {
          this.#start = got[1];
          return got[0];
        }
        if (this.#eof) return null;
        await this.#fill();
      }
    } catch (err) {
      this.#error = err;
      this.socket.close().catch(() => {});
      throw err;
    }
  }

  async #fill() {
    this.#reader ??= this.socket.readable.getReader();
    const { value, done } = await this.#reader.read();
    if (done) {
      this.#eof = true;
      return;
    }
    if (this.#buf.length - this.#end < value.length) {
      // Move what is pending to the front, growing only when it must.
      const pending = this.#end - this.#start;
      const need = pending + value.length;
      const next = need > this.#buf.length ? new Uint8Array(Math.max(need, 2 * this.#buf.length)) : this.#buf;
      next.set(this.#buf.subarray(this.#start, this.#end), 0);
      this.#buf = next;
      this.#start = 0;
      this.#end = pending;
    }
    this.#buf.set(value, this.#end);
    this.#end += value.length;
  }

  async *messages() {
    if (this.#iterating) throw new TypeError(`ferry: ${this.service}: messages() is already being read`);
    this.#iterating = true;
    try {
      for (;;) {
        const msg = await this.receive();
        if (msg === null) return;
        yield msg;
      }
    } finally {
      this.#iterating = false;
    }
  }

  async closeWrite() {
    this.#writer ??= this.socket.writable.getWriter();
    await this.#writer.close();
  }

  close() {
    return this.socket.close();
  }
}
