package graphapi

import (
	"testing"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

func FuzzGraphFilter(f *testing.F) {
	for _, s := range []string{"mail eq 'a@b.c'", "startsWith(displayName,'A')", "proxyAddresses/any(p:p eq 'SMTP:x')",
		"assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)", "not(a eq 1)", "x/$count ne 0",
		"userType in ('Guest')", "((", "'", "a eq ''''", "onPremisesSyncEnabled eq null or mail ge 'm'"} {
		f.Add(s)
	}
	o := &tenant.Object{ID: "id", Kind: tenant.KindUser, Mail: "a@b.c", DisplayName: "Ada", ProxyAddresses: []string{"SMTP:a@b.c"},
		AssignedLicenses: []tenant.License{{SkuID: tenant.SkuEnterprisePack}}}
	obj := userEntity.project(&gview{o: o}, selection(userEntity.propNames()), false)
	f.Fuzz(func(t *testing.T, filter string) {
		e, _, err := parseFilter(filter, userEntity.typ, userEntity.propNames())
		if (e == nil) == (err == nil) {
			t.Fatalf("%q: expression %v and error %v", filter, e, err)
		}
		if e != nil {
			e.eval(obj, nil)
		}
	})
}
