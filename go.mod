module github.com/ferrygw/ferry

go 1.26

require go.uber.org/goleak v1.3.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/hashicorp/yamux v0.1.2
	github.com/klauspost/compress v1.20.4
)

require github.com/golang-jwt/jwt/v5 v5.3.1
