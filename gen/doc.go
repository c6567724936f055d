// Package gen is Ferry's SDK generator: a gateway config's services in,
// typed client SDKs out. FromConfig (or ParseCatalog, for the catalog a
// running gateway serves) gives a Catalog; Generate writes it as
// TypeScript (an ES module on top of the browser client, ferry.js, with
// its .d.ts), as a Go package (on top of package client and package
// framing) or as the JSON catalog, the input of generators for other
// languages (docs/SDK.md).
//
// gen reads package config and knows nothing of serving: the gateway calls
// it to serve /ferry/sdk.js live, and `ferry gen` to write files. Output is
// deterministic: sorted, without timestamps or paths.
package gen
