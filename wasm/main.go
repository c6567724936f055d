//go:build js && wasm

package main

import (
	"syscall/js"
)

// registerName is the global function that ferry.js sets before it runs
// this program: main calls it with the API and gets back the FerryError
// class, for errors.
const registerName = "__ferryRegister"

func main() {
	register := js.Global().Get(registerName)
	if register.Type() != js.TypeFunction {
		js.Global().Get("console").Call("error", "client.wasm: load it with ferry.js ("+registerName+" is not set)")
		return
	}
	a := newAPI()
	a.errorClass = register.Invoke(a.object())
	// The functions handed to JavaScript live as long as the program,
	// which runs until the page goes away.
	select {}
}
