// Command proxy is the only way out of .ci/fresh-root's network namespace:
// an HTTP forward proxy (plain requests for apt, CONNECT for HTTPS) that
// lets through only the package registries a fresh machine needs, and logs
// every request with its verdict. The namespace itself has no route out,
// so the host needs neither IP forwarding nor NAT.
//
//	go run .ci/fresh-root.d/proxy.go -listen 10.231.0.1:3128 -log proxy.log
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// allowed are the registries: Debian's archive (debootstrap's sources,
// apt-get install postgresql/curl/jq) and Go's module proxy and checksum
// database.
var allowed = []string{"deb.debian.org", "security.debian.org", "proxy.golang.org", "sum.golang.org"}

func main() {
	listen := flag.String("listen", "", "address to listen on (the host end of the namespace's link)")
	logPath := flag.String("log", "", "request log")
	flag.Parse()
	out := io.Writer(os.Stderr)
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		out = f
	}
	p := &proxy{log: log.New(out, "", log.LstdFlags|log.Lmicroseconds), transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: time.Minute}}
	log.Fatal(http.ListenAndServe(*listen, p))
}

type proxy struct {
	log       *log.Logger
	transport *http.Transport
}

func permitted(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return slices.Contains(allowed, strings.ToLower(host))
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if r.Method != http.MethodConnect && r.URL.Host != "" {
		target = r.URL.Host
	}
	if !permitted(target) {
		p.log.Printf("DENY %s %s", r.Method, r.RequestURI)
		http.Error(w, "fresh-root proxy: "+target+" is not a package registry", http.StatusForbidden)
		return
	}
	p.log.Printf("ALLOW %s %s", r.Method, r.RequestURI)
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	r.RequestURI = ""
	r.Header.Del("Proxy-Connection")
	resp, err := p.transport.RoundTrip(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := net.DialTimeout("tcp", r.Host, 30*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	fmt.Fprint(client, "HTTP/1.1 200 Connection established\r\n\r\n")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if buf.Reader.Buffered() > 0 {
			_, _ = io.CopyN(upstream, buf, int64(buf.Reader.Buffered()))
		}
		_, _ = io.Copy(upstream, client)
		if tc, ok := upstream.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, upstream)
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	wg.Wait()
	client.Close()
	upstream.Close()
}
