package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxAllowedIPs bounds an allowlist.
const MaxAllowedIPs = 100

// checkAllowlist returns an EInvalid error for field unless each entry of
// list is an IP address or a CIDR range (203.0.113.0/24, 2001:db8::/32).
func checkAllowlist(field string, list []string) error {
	if len(list) > MaxAllowedIPs {
		return invalidParam(field, "%s holds at most %d addresses or ranges", field, MaxAllowedIPs)
	}
	for i, entry := range list {
		if _, err := parseRange(entry); err != nil {
			return invalidParam(fmt.Sprintf("%s[%d]", field, i), "%q is not an IP address or a CIDR range such as 203.0.113.0/24", entry)
		}
	}
	return nil
}

// parseRange reads an address (a range of one) or a CIDR range; an IPv4
// range written as IPv6 (::ffff:198.51.100.0/120) is read as the IPv4
// one, as client addresses are. An address with a zone is refused.
func parseRange(entry string) (netip.Prefix, error) {
	entry = strings.TrimSpace(entry)
	var p netip.Prefix
	if strings.Contains(entry, "/") {
		var err error
		if p, err = netip.ParsePrefix(entry); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("an address with a zone: %q", entry)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if !p.IsValid() || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not a range: %q", entry)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("a mapped range wider than IPv4")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ShowAddr returns a client address as the allowlists read it (an IPv4
// address written as IPv6 as the IPv4 one).
func ShowAddr(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return addr
}

// AddrAllowed reports whether the client address addr is in list; an
// empty list allows every address. An IPv4 address written as IPv6
// (::ffff:203.0.113.7) is taken as the IPv4 one.
func AddrAllowed(list []string, addr string) bool {
	if len(list) == 0 {
		return true
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, entry := range list {
		if p, err := parseRange(entry); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}
