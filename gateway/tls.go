package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// certReloader serves a certificate from files and loads it again when
// either file's modification time changes, so a renewed certificate is
// served without a restart (no file watcher: the check runs on each TLS
// handshake and costs two stat calls).
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
	lastErr error
	log     *slog.Logger
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) get() (*tls.Certificate, error) {
	cs, err := os.Stat(r.certFile)
	if err != nil {
		return r.keep(err)
	}
	ks, err := os.Stat(r.keyFile)
	if err != nil {
		return r.keep(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && cs.ModTime().Equal(r.certMod) && ks.ModTime().Equal(r.keyMod) {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// A half-written pair (certificate renewed, key not yet): keep
		// serving the old one and try again on the next handshake.
		if r.cert != nil {
			if r.lastErr == nil || r.lastErr.Error() != err.Error() {
				r.log.Warn("tls: keeping the previous certificate", "error", err.Error())
			}
			r.lastErr = err
			return r.cert, nil
		}
		return nil, fmt.Errorf("tls: %w", err)
	}
	if r.cert != nil {
		r.log.Info("tls: loaded the new certificate", "file", r.certFile)
	}
	r.cert, r.certMod, r.keyMod, r.lastErr = &cert, cs.ModTime(), ks.ModTime(), nil
	return r.cert, nil
}

func (r *certReloader) keep(err error) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil {
		return r.cert, nil
	}
	return nil, fmt.Errorf("tls: %w", err)
}

// TLSConfig returns the TLS settings for [server] tls_cert and tls_key,
// or nil when they are not set.
func (s *Server) TLSConfig() (*tls.Config, error) {
	c := &s.config().Server
	if c.TLSCert == "" {
		return nil, nil
	}
	for _, f := range []struct{ key, path string }{{"server.tls_cert", c.TLSCert}, {"server.tls_key", c.TLSKey}} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	r, err := newCertReloader(c.TLSCert, c.TLSKey, s.log)
	if err != nil {
		return nil, fmt.Errorf("server.tls_cert and server.tls_key: %w", err)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"}, // WebSocket needs HTTP/1.1
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.get() },
	}, nil
}

// SelfSigned makes a certificate for local use, valid for localhost,
// 127.0.0.1, ::1 and hosts, for 90 days, and returns it with the hex
// SHA-256 fingerprint that clients pin with -pin.
func SelfSigned(hosts ...string) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ferry self-signed"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, hex.EncodeToString(sum[:]), nil
}
