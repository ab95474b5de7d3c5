package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
)

// Targets decides which addresses webhooks may reach. Private, loopback,
// link-local, unspecified, multicast and shared (CGNAT) addresses are
// refused unless a prefix of Allow contains them (tests allow loopback).
type Targets struct {
	Allow []netip.Prefix
}

// ErrTargetRefused is matched (errors.Is) by the error of a refused URL or
// address.
var ErrTargetRefused = errors.New("webhooks: target refused")

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// CheckAddr refuses an address webhooks must not reach.
func (t Targets) CheckAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	if slices.ContainsFunc(t.Allow, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		return nil
	}
	switch {
	case !addr.IsValid(), addr.IsUnspecified(), addr.IsLoopback(), addr.IsPrivate(),
		addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast(),
		addr.IsMulticast(), sharedAddressSpace.Contains(addr), addr == netip.IPv4Unspecified():
		return fmt.Errorf("%w: %s is a private, loopback or link-local address", ErrTargetRefused, addr)
	}
	return nil
}

// CheckURL checks a subscription's URL when it is given: http or https,
// a host, no credentials, and every address the host resolves to allowed.
// The dialer checks again on every connection (DNS may change).
func (t Targets) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%w: not a URL", ErrTargetRefused)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: the scheme must be http or https", ErrTargetRefused)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: no host", ErrTargetRefused)
	case u.User != nil:
		return fmt.Errorf("%w: credentials in the URL", ErrTargetRefused)
	case u.Fragment != "":
		return fmt.Errorf("%w: a fragment", ErrTargetRefused)
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		return t.CheckAddr(addr)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: %s does not resolve", ErrTargetRefused, host)
	}
	for _, a := range addrs {
		if err := t.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// control is the dialer's Control: it runs after the name is resolved,
// on the very address about to be connected, so that a name that
// resolves to a public address when subscribed and to a private one later
// (DNS rebinding) is still refused.
func (t Targets) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrTargetRefused, address)
	}
	return t.CheckAddr(ap.Addr())
}
