package setup

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Default public clients for the admin's device-code sign-in: Microsoft's own first-party apps that every
// tenant knows, so setup needs no app of its own before it has made one. Graph: "Microsoft Graph Command
// Line Tools" (Connect-MgGraph's client; it may ask for any delegated Graph scope). Exchange: "Microsoft
// Exchange REST API Based Powershell" (the ExchangeOnlineManagement module's client). A tenant that blocks
// them, or an admin who prefers their own public client, passes --graph-client-id / --exchange-client-id.
const (
	DefaultGraphClientID    = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
	DefaultExchangeClientID = "fb78d390-0c51-40cd-8e17-fdbfab77341b"
)

// GraphScopes are the delegated scopes setup asks the admin for: create apps and grant app roles
// (graph-docs-contrib application-post-applications, serviceprincipal-post-approleassignedto).
func GraphScopes(graphResource string) []string {
	return []string{graphResource + "/Application.ReadWrite.All", graphResource + "/AppRoleAssignment.ReadWrite.All"}
}

// SignInOptions configure the admin's device-code sign-in.
type SignInOptions struct {
	Tenant    string
	Authority string // azcore authority host with trailing slash
	// CustomAuthority disables instance discovery (an overridden authority such as the simulator).
	CustomAuthority bool
	ClientID        string
	HTTPClient      *http.Client
	// Prompt receives the sign-in instructions (the verification URL and the code).
	Prompt io.Writer
	// Label names what the sign-in is for ("Microsoft Graph", "Exchange Online") in the prompt.
	Label string
}

// DeviceCode returns a device-code credential for the admin; the first GetToken prints the code to enter
// at the verification URL and waits for the sign-in (Entra gives 15 minutes).
func DeviceCode(o SignInOptions) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{
		ClientOptions:            policy.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: o.Authority}, Transport: o.HTTPClient},
		TenantID:                 o.Tenant,
		ClientID:                 o.ClientID,
		DisableInstanceDiscovery: o.CustomAuthority,
		UserPrompt: func(_ context.Context, m azidentity.DeviceCodeMessage) error {
			if o.Prompt != nil {
				fmt.Fprintf(o.Prompt, "Sign in as an admin for %s: open %s and enter the code %s\n", o.Label, m.VerificationURL, m.UserCode)
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("device-code sign-in for %s: %w", o.Label, err)
	}
	return cred, nil
}
