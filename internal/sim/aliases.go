package sim

import (
	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/exoapi"
	"github.com/exo-worker/worker/internal/sim/faults"
	"github.com/exo-worker/worker/internal/sim/graphapi"
	"github.com/exo-worker/worker/internal/sim/reqlog"
	"github.com/exo-worker/worker/internal/sim/tenant"
)

// The facade re-exports the sub-packages' names its callers use, so they keep writing sim.Object,
// sim.Faults, sim.Entry... The definitions and their documentation live in the sub-packages.

type (
	Credentials  = entra.Credentials
	Faults       = faults.Faults
	FaultStats   = faults.FaultStats
	Entry        = reqlog.Entry
	RequestLog   = reqlog.RequestLog
	GraphFault   = graphapi.GraphFault
	GraphRequest = graphapi.GraphRequest

	Tenant         = tenant.Tenant
	Object         = tenant.Object
	ObjectKind     = tenant.ObjectKind
	Scenario       = tenant.Scenario
	DefectMix      = tenant.DefectMix
	LicensingMix   = tenant.LicensingMix
	Expected       = tenant.Expected
	Trap           = tenant.Trap
	AcceptedDomain = tenant.AcceptedDomain
	License        = tenant.License
	Plan           = tenant.Plan
	GraphExtras    = tenant.GraphExtras
	GraphDomain    = tenant.GraphDomain
	SubscribedSKU  = tenant.SubscribedSKU
	DeltaExpiry    = tenant.DeltaExpiry
)

// Error-detail encodings of the EXO admin API (Options.DetailEncoding).
const (
	DetailPipe = exoapi.DetailPipe
	DetailJSON = exoapi.DetailJSON
	DetailAuto = exoapi.DetailAuto
)

// Object kinds, recipient type details, rich-text values, SKUs and plans of the tenant model.
const (
	KindUser    = tenant.KindUser
	KindGroup   = tenant.KindGroup
	KindContact = tenant.KindContact

	RTDMailUser                     = tenant.RTDMailUser
	RTDGuestMailUser                = tenant.RTDGuestMailUser
	RTDUserMailbox                  = tenant.RTDUserMailbox
	RTDMailContact                  = tenant.RTDMailContact
	RTDMailUniversalDistributionGrp = tenant.RTDMailUniversalDistributionGrp
	RTDMailUniversalSecurityGroup   = tenant.RTDMailUniversalSecurityGroup

	RichTextUseDefault = tenant.RichTextUseDefault
	RichTextAlways     = tenant.RichTextAlways
	RichTextNever      = tenant.RichTextNever

	SkuEnterprisePack      = tenant.SkuEnterprisePack
	SkuEMSPremium          = tenant.SkuEMSPremium
	SkuExchangeStandard    = tenant.SkuExchangeStandard
	PlanExchangeEnterprise = tenant.PlanExchangeEnterprise
	PlanExchangeStandard   = tenant.PlanExchangeStandard
	PlanExchangeFoundation = tenant.PlanExchangeFoundation
)

// Constructors and helpers of the tenant model.
var (
	DefaultScenario       = tenant.DefaultScenario
	DefaultDefects        = tenant.DefaultDefects
	DefaultLicensing      = tenant.DefaultLicensing
	NewTenant             = tenant.NewTenant
	OnPremisesDN          = tenant.OnPremisesDN
	OnPremisesSID         = tenant.OnPremisesSID
	DeltaExpiries         = tenant.DeltaExpiries
	DefaultSubscribedSKUs = tenant.DefaultSubscribedSKUs
)
