package auth

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Error is a failed token request, in one line: who asked (tenant, client, method), Entra's answer (AADSTS
// code and description, without the trace lines) and what to check. The azidentity error stays reachable
// with errors.As/Unwrap (it carries the raw response), but Error() never prints its HTTP dump.
type Error struct {
	Tenant    string
	ClientID  string
	Method    string
	Authority string
	// Code is the AADSTS error code (7000215 for a wrong secret), 0 when the authority did not answer one.
	Code int
	// OAuthError is the OAuth "error" value (invalid_client, unauthorized_client...), if any.
	OAuthError string
	// Description is Entra's error_description without the Trace ID / Correlation ID / Timestamp lines, or
	// the reason the request failed (network, TLS, token file).
	Description string
	// Hint says what to check, in configuration terms.
	Hint string
	// Rejected is true when the authority answered and refused (as opposed to: could not be reached).
	Rejected bool
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	who := "client " + e.ClientID
	if e.ClientID == "" {
		who = "the system-assigned identity"
	}
	switch {
	case e.Method == "managed-identity":
		fmt.Fprintf(&b, "auth: managed identity (%s) got no token: %s", strings.TrimPrefix(who, "client "), e.Description)
	case e.Rejected:
		fmt.Fprintf(&b, "auth: tenant %s rejected %s: %s", e.Tenant, who, e.Description)
	default:
		fmt.Fprintf(&b, "auth: no token for %s in tenant %s from %s: %s", who, e.Tenant, e.Authority, e.Description)
	}
	if e.Hint != "" {
		if d := strings.TrimSpace(e.Description); d != "" && !strings.HasSuffix(d, ".") {
			b.WriteString(".")
		}
		b.WriteString(" ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Describe returns the one-line explanation of a token error (an *Error anywhere in err's chain), or
// err.Error() for anything else.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}

// entraErrorBody is Entra's OAuth error answer, and App Service's managed identity error answer.
type entraErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	// App Service / managed identity endpoints.
	Message string `json:"message"`
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

func newError(id identity, err error) *Error {
	e := &Error{Tenant: id.tenant, ClientID: id.clientID, Method: id.method, Authority: id.authority, Err: err}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil {
		e.Rejected = true
		body, _ := runtime.Payload(afe.RawResponse) // Payload buffers the body, so azidentity's Error() still works
		var eb entraErrorBody
		if json.Unmarshal(body, &eb) == nil && (eb.ErrorDescription != "" || eb.Message != "") {
			e.OAuthError = eb.Error
			e.Description = cleanDescription(eb.ErrorDescription)
			if e.Description == "" {
				e.Description = cleanDescription(eb.Message)
			}
			if len(eb.ErrorCodes) > 0 {
				e.Code = eb.ErrorCodes[0]
			}
		} else {
			e.Description = fmt.Sprintf("HTTP %d from %s", afe.RawResponse.StatusCode, requestURL(afe))
			if s := strings.TrimSpace(string(body)); s != "" && len(s) < 300 {
				e.Description += ": " + s
			}
		}
	} else {
		e.Description = cleanAzidentityMessage(err)
	}
	if e.Code == 0 {
		if m := aadstsRE.FindStringSubmatch(e.Description); m != nil {
			e.Code, _ = strconv.Atoi(m[1])
		}
	}
	e.Hint = hint(e, err)
	return e
}

func requestURL(afe *azidentity.AuthenticationFailedError) string {
	if r := afe.RawResponse.Request; r != nil && r.URL != nil {
		return r.URL.Scheme + "://" + r.URL.Host + r.URL.Path
	}
	return "the authority"
}

// cleanDescription keeps Entra's message and drops the trace lines it appends ("\r\nTrace ID: ...").
func cleanDescription(s string) string {
	for _, cut := range []string{"\r\n", "\n", " Trace ID:"} {
		if i := strings.Index(s, cut); i >= 0 {
			s = s[:i]
		}
	}
	return strings.TrimSpace(s)
}

// cleanAzidentityMessage is an azidentity error without the credential name prefix and the troubleshooting
// link, e.g. "no such file or directory" for a missing token file.
func cleanAzidentityMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "To troubleshoot, visit"); i >= 0 {
		msg = msg[:i]
	}
	for _, p := range []string{"ClientSecretCredential: ", "ClientCertificateCredential: ", "WorkloadIdentityCredential: ",
		"ClientAssertionCredential: ", "ManagedIdentityCredential: "} {
		msg = strings.Replace(msg, p, "", 1)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return strings.TrimSuffix(strings.TrimSpace(msg), ".")
}

// hint says what to check for the failures people meet, in configuration terms.
func hint(e *Error, err error) string {
	switch e.Code {
	case 7000215:
		return "Check auth.client_secret_file (or WORKER_AUTH_CLIENT_SECRET): it must hold the secret's Value (not its Secret ID) of a secret of this app registration that has not expired."
	case 7000222:
		return "The client secret has expired: create a new one under Certificates & secrets of the app registration and update auth.client_secret_file."
	case 700016:
		return "Check auth.client_id and tenant.id: the app registration must exist in this tenant, and tenant.cloud must be the tenant's cloud."
	case 90002:
		return "Check tenant.id (the tenant GUID or its initial domain) and tenant.cloud."
	case 50059:
		return "Set tenant.id to the tenant GUID or its initial domain (not common or organizations)."
	case 700027:
		return "Upload the certificate of auth.certificate_file (its public part) to the app registration under Certificates & secrets, or point auth.certificate_file at the certificate that is registered."
	case 700024:
		return "Check this machine's clock: the client assertion's time range is checked against Entra's."
	case 7000218:
		return "Set auth.method and its credential (auth.certificate_file, auth.client_secret_file or auth.token_file)."
	case 500011, 65001:
		return "The app has no permission for this API in the tenant: add Office 365 Exchange Online > Exchange.ManageAsApp (and the Graph read permissions) and grant admin consent."
	case 700211, 700212, 700213, 70021:
		return "Check the app registration's federated credential: issuer, subject (system:serviceaccount:<namespace>:<service account>) and audience api://AzureADTokenExchange must match the token in auth.token_file."
	}
	var uerr x509.UnknownAuthorityError
	var cerr x509.CertificateInvalidError
	var herr x509.HostnameError
	switch {
	case errors.As(err, &uerr) || errors.As(err, &cerr) || strings.Contains(e.Description, "certificate signed by unknown authority"):
		return "The authority's TLS certificate is not trusted: if a proxy or a private endpoint presents its own CA, set tenant.ca_file to that CA."
	case errors.As(err, &herr):
		return "The authority's TLS certificate does not name its host: check tenant.endpoints.authority."
	}
	var nerr net.Error
	var oerr *net.OpError
	if errors.As(err, &nerr) || errors.As(err, &oerr) || strings.Contains(e.Description, "connection refused") || strings.Contains(e.Description, "no such host") {
		return "Check that the authority is reachable from here (tenant.cloud, tenant.endpoints.authority, HTTPS_PROXY)."
	}
	if e.Method == "workload-identity" && strings.Contains(e.Description, "token file") {
		return "Check auth.token_file (AZURE_FEDERATED_TOKEN_FILE): the federated token must be mounted there."
	}
	return ""
}
