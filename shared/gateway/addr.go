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

// parseRange reads an address (a range of one) or a CIDR range.
func parseRange(entry string) (netip.Prefix, error) {
	entry = strings.TrimSpace(entry)
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(entry)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
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
