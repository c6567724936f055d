package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/client"
	"github.com/ferrygw/ferry/gateway"
	"github.com/ferrygw/ferry/gateway/config"
)

func writePair(t *testing.T, cert tls.Certificate, certFile, keyFile string, mod time.Time) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.Chtimes(certFile, mod, mod)
	os.Chtimes(keyFile, mod, mod)
}

// TestTLS: a client pinning the right fingerprint connects, a wrong pin is
// refused, and a certificate replaced on disk is served without a restart.
func TestTLS(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA, fpA, err := gateway.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	certB, fpB, _ := gateway.SelfSigned()
	writePair(t, certA, certFile, keyFile, time.Now().Add(-time.Hour))

	cfg, err := config.Parse(filepath.Join(dir, "gw.toml"), []byte(fmt.Sprintf(baseConfig("[server]\ntls_cert = %q\ntls_key = %q\n"), certFile, keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := srv.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { srv.Serve(tls.NewListener(ln, tlsCfg)); close(done) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
		<-done
	}()
	url := "wss://" + ln.Addr().String() + "/tunnel"
	dialPinned := func(fp string) error {
		pinned, err := client.PinnedTLS(fp)
		if err != nil {
			return err
		}
		s, err := client.Connect(context.Background(), url, &client.Options{Native: client.NativeOptions{TLSConfig: pinned}})
		if err != nil {
			return err
		}
		roundTripEcho(t, s)
		return s.Close()
	}
	if err := dialPinned(fpA); err != nil {
		t.Fatalf("right pin: %v", err)
	}
	if err := dialPinned(fpB); err == nil || !strings.Contains(err.Error(), "does not match the pin") {
		t.Fatalf("wrong pin: %v", err)
	}
	// Replace the certificate on disk: the next handshake serves it.
	writePair(t, certB, certFile, keyFile, time.Now())
	if err := dialPinned(fpB); err != nil {
		t.Fatalf("new certificate after replacement: %v", err)
	}
	if err := dialPinned(fpA); err == nil {
		t.Fatal("old certificate still served after replacement")
	}
	// Without a pin or CA the self-signed certificate is not trusted.
	if _, err := client.Connect(context.Background(), url, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("no pin: %v", err)
	}
}
