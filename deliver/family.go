package deliver

import (
	"fmt"
	"net/netip"
)

// Family is the address family a relayer connects over, as Postfix's
// inet_protocols: a host whose IPv6 has no route, or whose IPv4 address is
// on block lists, uses one only.
type Family int

const (
	FamilyAll  Family = iota // IPv4 and IPv6, in the order DNS gave them
	FamilyIPv4               // IPv4 addresses only
	FamilyIPv6               // IPv6 addresses only
)

// ParseFamily reads "all", "ipv4" or "ipv6".
func ParseFamily(s string) (Family, error) {
	switch s {
	case "all", "":
		return FamilyAll, nil
	case "ipv4":
		return FamilyIPv4, nil
	case "ipv6":
		return FamilyIPv6, nil
	}
	return 0, fmt.Errorf("address family %q: want all, ipv4 or ipv6", s)
}

// usable keeps the addresses of addrs that o may connect to: of o.Family,
// and of o.Bind's family when Bind is set (an IPv4 source cannot reach an
// IPv6 address). The order is kept.
func (o Options) usable(addrs []netip.Addr) []netip.Addr {
	want := o.Family
	if o.Bind.IsValid() {
		if o.Bind.Unmap().Is4() {
			if want == FamilyIPv6 {
				return nil
			}
			want = FamilyIPv4
		} else {
			if want == FamilyIPv4 {
				return nil
			}
			want = FamilyIPv6
		}
	}
	if want == FamilyAll {
		return addrs
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Unmap().Is4() == (want == FamilyIPv4) {
			out = append(out, a)
		}
	}
	return out
}

// familyName says which addresses o may use, for "no ... address" errors.
func (o Options) familyName() string {
	switch {
	case o.Bind.IsValid():
		fam := "IPv6"
		if o.Bind.Unmap().Is4() {
			fam = "IPv4"
		}
		if (o.Family == FamilyIPv4 && fam == "IPv6") || (o.Family == FamilyIPv6 && fam == "IPv4") {
			return "usable (the bind address " + o.Bind.String() + " is " + fam + ", the address family another)"
		}
		return fam + " (bind address " + o.Bind.String() + ")"
	case o.Family == FamilyIPv4:
		return "IPv4"
	case o.Family == FamilyIPv6:
		return "IPv6"
	}
	return "usable"
}
