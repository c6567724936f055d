package clientconfig

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway/config"
)

const exampleFile = "../client.toml"

// TestExampleFile: the annotated client.toml parses, documents every key
// (set, or shown in a comment), and states the client's defaults.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	f, err := Load(exampleFile)
	if err != nil {
		t.Fatalf("%s:\n%v", exampleFile, err)
	}
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(keys, "profiles") {
		if !regexp.MustCompile(`(?m)^(# )?(\[` + k + `[.\]]|` + k + ` = )`).Match(data) {
			t.Errorf("%s does not document the key %s", exampleFile, k)
		}
	}
	top, err := f.Select("")
	if err != nil {
		t.Fatal(err)
	}
	if top.Timeout != client.DefaultTimeout || top.Wait != 30*time.Second || top.Once {
		t.Errorf("%s: timeout %s, wait %s, once %v; want the defaults 15s, 30s, false", exampleFile, top.Timeout, top.Wait, top.Once)
	}
	if len(top.Forwards) != 2 || top.Forwards[0] != (Forward{Listen: "127.0.0.1:5432", Service: "postgres"}) || top.Forwards[1] != (Forward{Listen: "127.0.0.1:6379", Service: "redis"}) {
		t.Errorf("forwards %+v", top.Forwards)
	}
	if want, _ := filepath.Abs(filepath.Join("..", "alice.token")); !strings.HasSuffix(top.TokenFile, "alice.token") || filepath.Clean(top.TokenFile) != filepath.Clean(filepath.Join("..", "alice.token")) && top.TokenFile != want {
		t.Errorf("token_file %q is not taken against the file's folder", top.TokenFile)
	}
	st, err := f.Select("staging")
	if err != nil {
		t.Fatal(err)
	}
	if st.Gateway != "wss://staging.example.com/tunnel" || st.Wait != time.Minute || st.Timeout != 15*time.Second ||
		len(st.Forwards) != 1 || st.Forwards[0].Service != "redis" || st.Expose["web"] != "127.0.0.1:3000" {
		t.Errorf("staging merged: %+v", st)
	}
}

// TestParse: good and bad files; every problem of a file is reported at
// once, with file:line:col and key, in file order.
func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		errs      []string // each a part of one error, in order; none for a good file
	}{
		{"minimal", "gateway = \"ws://127.0.0.1:8080/tunnel\"\n[forward]\n7000 = \"echo\"\n", nil},
		{"public bind", "gateway = \"ws://h/tunnel\"\n[forward]\n\"0.0.0.0:7000\" = \"echo\"\n", nil},
		{"syntax", "gateway = \"ws://h/tunnel\n", []string{"f.toml:1:"}},
		{"unknown key", "gateway = \"ws://h/tunnel\"\ntimeuot = \"5s\"\n", []string{`f.toml:2:1: timeuot: unknown key`}},
		{"bad values", `gateway = "http://h/tunnel"
timeout = "5"
wait = "0s"
once = "yes"
proxy = "socks5://p:1"
headers = ["X-A: b", "nocolon"]
`, []string{
			`f.toml:1:11: gateway: "http://h/tunnel": want ws:// or wss://`,
			`f.toml:2:11: timeout: invalid duration "5": a number needs a unit`,
			`f.toml:3:8: wait: want a positive duration`,
			`f.toml:4:8: once: want true or false, not a string`,
			`f.toml:5:9: proxy: "socks5://p:1": want an http:// or https:// URL`,
			`headers[1]: want "Name: value"`,
		}},
		{"bad forwards", `gateway = "ws://h/tunnel"
[forward]
"70000" = "redis"
"6379" = "Redis"
"x:y:z" = "pg"
"1" = 5
`, []string{
			`f.toml:3:1: forward."70000": port "70000" is not a port number`,
			`f.toml:4:10: forward."6379": "Redis" is not a service name`,
			`f.toml:5:1: forward."x:y:z": listen address "x:y:z" is not host:port`,
			`f.toml:6:7: forward."1": want a service name (a string), not a number`,
		}},
		{"tls with ws", "gateway = \"ws://h/tunnel\"\npin = \"ab\"\n", []string{`f.toml:2:7: pin: pin with a ws:// gateway`}},
		{"tls with ws in a profile", "gateway = \"wss://h/tunnel\"\nca = \"ca.pem\"\n[profiles.dev]\ngateway = \"ws://127.0.0.1/tunnel\"\n", []string{`profiles.dev.ca: ca with a ws:// gateway`}},
		{"token twice", "token = \"a\"\ntoken_file = \"t\"\n", []string{`f.toml:1:9: token: token and token_file: give one`}},
		{"bad profile", `gateway = "wss://h/tunnel"
[profiles.a]
wait = 3
[profiles.a.forward]
"6379" = "bad name"
[profiles.a.profiles.b]
`, []string{
			`f.toml:3:8: profiles.a.wait: want a string, not a number`,
			`f.toml:5:10: profiles.a.forward."6379": "bad name" is not a service name`,
			`f.toml:6:2: profiles.a.profiles: profiles do not nest`,
		}},
		{"bad expose", "[expose]\nWeb = \"127.0.0.1:3000\"\napi = \"3000\"\n", []string{`f.toml:2:1: expose.Web: "Web" is not a service name`, `f.toml:3:7: expose.api: want the local address host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("f.toml", []byte(tt.src))
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("a good file: %v", err)
				}
				return
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v, want config.Errors", err)
			}
			if len(es) != len(tt.errs) {
				t.Fatalf("%d errors, want %d:\n%v", len(es), len(tt.errs), err)
			}
			for i, want := range tt.errs {
				if !strings.Contains(es[i].Error(), want) {
					t.Errorf("error %d = %q, want it to contain %q", i, es[i].Error(), want)
				}
			}
		})
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	f, err := Parse("f.toml", []byte("[profiles.a]\ngateway = \"ws://h/tunnel\"\n[profiles.b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, want string }{
		{"", "f.toml: gateway: no gateway"},
		{"a", "f.toml: profiles.a.forward: nothing to forward"},
		{"c", `f.toml: no profile "c": it has a, b`},
	} {
		if _, err := f.Select(tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Select(%q) = %v, want %q", tt.name, err, tt.want)
		}
	}
}
