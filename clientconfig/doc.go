// Package clientconfig reads the client config of `ferry forward -config
// FILE [PROFILE]`: the gateway URL, the credential, TLS and proxy
// settings, timeouts, the forwards (listen = service) and, for reverse
// tunnels, the exposes (service = local address), at the top level and in
// named profiles that inherit the top level. It decodes strictly (an
// unknown key is an error), checks every value, and reports every problem
// at once, each as a gateway/config Error: file:line:col: key: message.
// client.toml at the repository root documents every key.
package clientconfig
