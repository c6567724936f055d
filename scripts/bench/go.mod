module github.com/ferrygw/ferry/scripts/bench

go 1.26

require (
	github.com/coder/websocket v1.8.15
	github.com/ferrygw/ferry v0.0.0
	github.com/gorilla/websocket v1.5.3
	github.com/lxzan/gws v1.8.9
)

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
)

replace github.com/ferrygw/ferry => ../..
