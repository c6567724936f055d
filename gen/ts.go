package gen

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferrygw/ferry/wasm/assets"
)

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // JSON strings are JavaScript strings since ES2019
	return string(b)
}

// jsDoc writes a JSDoc comment of the given lines, indented by indent.
func jsDoc(b *strings.Builder, indent string, lines ...string) {
	fmt.Fprintf(b, "%s/**\n", indent)
	for _, l := range lines {
		for _, l := range strings.Split(l, "\n") {
			l = strings.ReplaceAll(strings.TrimRight(l, " \t\r"), "*/", "*\\/")
			if l == "" {
				fmt.Fprintf(b, "%s *\n", indent)
			} else {
				fmt.Fprintf(b, "%s * %s\n", indent, l)
			}
		}
	}
	fmt.Fprintf(b, "%s */\n", indent)
}

// serviceDoc is the doc comment of a service's method.
func serviceDoc(s Service) []string {
	var first string
	name := jsString(s.Name)
	switch s.Framing {
	case "lines":
		first = fmt.Sprintf("Opens service %s: newline-delimited UTF-8 messages of at most %d bytes.", name, s.MaxMessage)
	case "u32be":
		first = fmt.Sprintf("Opens service %s: messages of at most %d bytes, each after its length as a 4-byte big-endian integer.", name, s.MaxMessage)
	default:
		first = fmt.Sprintf("Opens a stream to service %s.", name)
	}
	if s.Public {
		first += " It is public: no credential is needed."
	}
	doc := []string{first}
	if d := strings.TrimSpace(s.Description); d != "" {
		doc = append(doc, "", d)
	}
	return doc
}

// tsModule writes the SDK's ES module.
func tsModule(c *Catalog, ferryJS string, live bool) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// %s\n//\n", Header)
	p("// A Ferry SDK: connect() resolves with a client that has one method per\n")
	p("// service of the gateway; ferry-sdk.d.ts has its types.\n//\n")
	p("%s\n", mapping(c, "// ", func(i Identifiers) string { return i.TypeScript }))
	p("import * as ferry from %s;\n\n", jsString(ferryJS))
	p("export { FerryError } from %s;\n\n", jsString(ferryJS))
	p("const tunnelPath = %s;\n", jsString(c.TunnelPath))
	if live {
		p("// Served by the gateway: its tunnel is on the origin this module came from.\n")
		p("const base = import.meta.url;\n\n")
	} else {
		p("// The default tunnel is on the page's own origin.\n")
		p("const base = globalThis.location?.href;\n\n")
	}
	p("/** The services of this SDK, as the JSON catalog lists them. */\n")
	p("export const services = Object.freeze([\n")
	for _, s := range c.Services {
		p("  Object.freeze({ name: %s, method: %s, framing: %s, maxMessage: %d, public: %v, description: %s }),\n",
			jsString(s.Name), jsString(s.Identifiers.TypeScript), jsString(s.Framing), s.MaxMessage, s.Public, jsString(s.Description))
	}
	p("]);\n\n")
	p("%s", tsRuntime)
	p("\nclass Client {\n  #gw;\n\n  constructor(gw) {\n    this.#gw = gw;\n    this.url = gw.url;\n  }\n\n")
	p("  dial(service) {\n    return this.#gw.dial(service);\n  }\n\n")
	p("  close() {\n    return this.#gw.close();\n  }\n")
	for _, s := range c.Services {
		p("\n")
		jsDoc(&b, "  ", serviceDoc(s)...)
		name := jsString(s.Name)
		switch s.Framing {
		case "lines":
			p("  async %s() {\n    return new Channel(await this.#gw.dial(%s), linesCodec, %d);\n  }\n", s.Identifiers.TypeScript, name, s.MaxMessage)
		case "u32be":
			p("  async %s() {\n    return new Channel(await this.#gw.dial(%s), u32beCodec, %d);\n  }\n", s.Identifiers.TypeScript, name, s.MaxMessage)
		default:
			p("  %s() {\n    return this.#gw.dial(%s);\n  }\n", s.Identifiers.TypeScript, name)
		}
	}
	p("}\n\n")
	p(`/**
 * Connects to the gateway and resolves with a client once the tunnel is
 * up; options are those of ferry.js's connect, plus url (default: this
 * SDK's origin with the path %s).
 */
export async function connect(options = {}) {
  const { url, ...rest } = options;
  return new Client(await ferry.connect(url ?? new URL(tunnelPath, base), rest));
}
`, c.TunnelPath)
	return []byte(b.String())
}

// tsRuntime is the framing of message channels, the same in every
// generated module. docs/SDK.md gives the rules byte by byte.
//
//go:embed runtime.js
var tsRuntime string

// tsTypes writes the SDK's .d.ts.
func tsTypes(c *Catalog) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// %s\n//\n// Types of ferry-sdk.js.\n//\n", Header)
	p("%s\n", mapping(c, "// ", func(i Identifiers) string { return i.TypeScript }))
	p(`import type { ConnectOptions as FerryConnectOptions, FerrySocket, Gateway } from "./ferry.js";

export { FerryError } from "./ferry.js";
export type { FerrySocket, Gateway, State, Status } from "./ferry.js";

export interface ConnectOptions extends FerryConnectOptions {
  /**
   * The tunnel's ws:, wss:, http: or https: URL, absolute or relative to
   * the page; the default is this SDK's origin with the path %s.
   */
  url?: string | URL;
}

/**
 * Whole messages over one stream, for services with framing "lines"
 * (string) or "u32be" (Uint8Array). Messages are never split or merged.
 * The socket is read only when a message is asked for, so a consumer that
 * stops reading stops the service. A received message over maxMessage,
 * a line that is not UTF-8, or a stream ending inside a u32be message ends
 * the channel with a FerryError.
 */
export interface MessageChannel<In, Out = In> {
  readonly service: string;
  /** The stream the messages travel on. */
  readonly socket: FerrySocket;
  /** The largest message in bytes, without the "\n" or the length. */
  readonly maxMessage: number;
  /** The socket's closed. */
  readonly closed: Promise<void>;
  /**
   * Sends one message; rejects with a FerryError, sending nothing, for a
   * message over maxMessage or (lines) one that contains "\n".
   */
  send(message: Out): Promise<void>;
  /** The next message, or null once the service has ended the stream. */
  receive(): Promise<In | null>;
  /** The messages until the service ends the stream; one reader at a time. */
  messages(): AsyncGenerator<In, void, undefined>;
  /** Half-closes: the service reads end of file and may still answer. */
  closeWrite(): Promise<void>;
  /** Closes both directions. */
  close(): Promise<void>;
}

/** A "lines" service: UTF-8 text, one message per line. */
export type LinesChannel = MessageChannel<string>;

/** A "u32be" service: byte messages, each after a 4-byte length. */
export type U32BEChannel = MessageChannel<Uint8Array, ArrayBufferView | ArrayBuffer>;

/** A service as the JSON catalog lists it. */
export interface ServiceInfo {
  readonly name: string;
  readonly method: string;
  readonly framing: "raw" | "lines" | "u32be";
  readonly maxMessage: number;
  readonly public: boolean;
  readonly description: string;
}

/** The services of this SDK. */
export declare const services: readonly ServiceInfo[];

/** A gateway connection with one method per service. */
export interface Client extends Gateway {
`, c.TunnelPath)
	for i, s := range c.Services {
		if i > 0 {
			p("\n")
		}
		jsDoc(&b, "  ", serviceDoc(s)...)
		switch s.Framing {
		case "lines":
			p("  %s(): Promise<LinesChannel>;\n", s.Identifiers.TypeScript)
		case "u32be":
			p("  %s(): Promise<U32BEChannel>;\n", s.Identifiers.TypeScript)
		default:
			p("  %s(): Promise<FerrySocket>;\n", s.Identifiers.TypeScript)
		}
	}
	p(`}

/**
 * Connects to the gateway and resolves with a client once the tunnel is
 * up; rejects with a FerryError when the first attempt fails.
 */
export declare function connect(options?: ConnectOptions): Promise<Client>;
`)
	return []byte(b.String())
}

// ferryTypes is the browser client's ferry.d.ts, marked as a copy, so that
// the output folder type-checks on its own.
func ferryTypes() []byte {
	return []byte("// " + Header + "\n// A copy of the Ferry browser client's ferry.d.ts, for the types of ferry-sdk.d.ts.\n\n" + assets.FerryDTS)
}
