package setup

import (
	"fmt"
	"regexp"
	"strings"
)

// Script renders the steps a first `worker setup` performs as a PowerShell script (Microsoft Graph
// PowerShell and ExchangeOnlineManagement), for admins who will not hand a tool their admin sign-in. Each
// step is marked `# [op subject]`, in the order and with the names Apply uses, and the golden test checks
// that Apply against an empty tenant performs exactly the marked steps. certFile is the public certificate
// (.cer/.crt, no private key) the script uploads; graphScopes are the delegated Graph scopes to sign in with.
func Script(d Desired, certFile string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	step := func(op, subject string) { w("\n# [%s %s]", op, subject) }
	q := psQuote

	w("# worker setup --script: the least-privileged identity of exo-worker for tenant %s.", d.Tenant)
	w("# Review it, then run it in PowerShell 7 with the modules Microsoft.Graph.Applications and")
	w("# ExchangeOnlineManagement installed. It signs you in twice (Graph, then Exchange Online).")
	w("# Requested permissions (declared by the jobs %s):", strings.Join(d.Req.Jobs, ", "))
	if len(d.Req.GraphRoles) > 0 {
		w("#   Microsoft Graph: %s", strings.Join(d.Req.GraphRoles, ", "))
	}
	if len(d.Req.ExchangeRoles) > 0 {
		w("#   Office 365 Exchange Online: %s", strings.Join(d.Req.ExchangeRoles, ", "))
	}
	for _, c := range d.Req.CmdletNames() {
		if ps := d.Req.Cmdlets[c]; ps != nil {
			w("#   %s with only %s", c, strings.Join(ps, ", "))
		} else {
			w("#   %s (read)", c)
		}
	}
	if d.Req.WriteFilter != "" {
		w("#   writes only inside: %s", d.Req.WriteFilter)
	}
	w("$ErrorActionPreference = 'Stop'")
	w("Connect-MgGraph -TenantId %s -Scopes 'Application.ReadWrite.All','AppRoleAssignment.ReadWrite.All' -UseDeviceCode -NoWelcome", q(d.Tenant))
	w("$cert = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new(%s)  # thumbprint %s", q(certFile), Thumbprint(d.CertDER))
	w("$graphSp = Get-MgServicePrincipal -Filter \"appId eq '%s'\"", GraphResourceAppID)
	w("$exoSp = Get-MgServicePrincipal -Filter \"appId eq '%s'\"", ExchangeResourceAppID)
	w("function Get-AppRoleId($sp, $value) { ($sp.AppRoles | Where-Object { $_.Value -eq $value -and $_.AllowedMemberTypes -contains 'Application' }).Id }")

	step(OpAppCreate, d.Name)
	var access []string
	for _, x := range []struct {
		sp, appID string
		values    []string
	}{{"$graphSp", GraphResourceAppID, d.Req.GraphRoles}, {"$exoSp", ExchangeResourceAppID, d.Req.ExchangeRoles}} {
		if len(x.values) == 0 {
			continue
		}
		var ra []string
		for _, v := range x.values {
			ra = append(ra, fmt.Sprintf("@{ Id = (Get-AppRoleId %s %s); Type = 'Role' }", x.sp, q(v)))
		}
		access = append(access, fmt.Sprintf("@{ ResourceAppId = '%s'; ResourceAccess = @(\n      %s) }", x.appID, strings.Join(ra, ",\n      ")))
	}
	w("$app = New-MgApplication -DisplayName %s -SignInAudience AzureADMyOrg -Tags %s `", q(d.Name), q(SetupTag))
	w("  -KeyCredentials @(@{ Type = 'AsymmetricX509Cert'; Usage = 'Verify'; Key = $cert.RawData; DisplayName = %s }) `", q("CN="+d.Name))
	w("  -RequiredResourceAccess @(\n    %s)", strings.Join(access, ",\n    "))

	step(OpSPCreate, d.Name)
	w("$sp = New-MgServicePrincipal -AppId $app.AppId")

	for _, x := range []struct {
		name, sp string
		values   []string
	}{{"Microsoft Graph", "$graphSp", d.Req.GraphRoles}, {"Office 365 Exchange Online", "$exoSp", d.Req.ExchangeRoles}} {
		for _, v := range x.values {
			step(OpGrantAdd, x.name+"/"+v)
			w("New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId %s.Id -PrincipalId $sp.Id -ResourceId %s.Id -AppRoleId (Get-AppRoleId %s %s) | Out-Null", x.sp, x.sp, x.sp, q(v))
		}
	}
	if len(d.Req.Cmdlets) == 0 {
		return b.String()
	}

	w("\nConnect-ExchangeOnline -Organization %s -Device -ShowBanner:$false", q(d.Tenant))
	step(OpEXOSPCreate, d.Name)
	w("New-ServicePrincipal -AppId $app.AppId -ObjectId $sp.Id -DisplayName %s", q(d.Name))
	for _, role := range d.Roles {
		step(OpRoleCreate, role.Name)
		w("New-ManagementRole -Name %s -Parent %s | Out-Null", q(role.Name), q(role.Parent))
		step(OpRoleTrim, role.Name)
		keep := make([]string, 0, len(role.Cmdlets))
		for _, c := range role.CmdletNames() {
			keep = append(keep, q(c))
		}
		w("Get-ManagementRoleEntry %s | Where-Object { $_.Name -notin @(%s) } | ForEach-Object {", q(role.Name+`\*`), strings.Join(keep, ","))
		w("  Remove-ManagementRoleEntry -Identity \"%s\\$($_.Name)\" -Confirm:$false }", psEscapeDouble(role.Name))
		for _, c := range role.CmdletNames() {
			ps := role.Cmdlets[c]
			if ps == nil {
				continue
			}
			step(OpRoleParams, role.Name+`\`+c)
			qs := make([]string, len(ps))
			for i, p := range ps {
				qs[i] = q(p)
			}
			w("Set-ManagementRoleEntry -Identity %s -Parameters %s", q(role.Name+`\`+c), strings.Join(qs, ","))
		}
	}
	scopeArg := ""
	if d.Req.Writes() {
		step(OpScopeCreate, d.ScopeName)
		w("New-ManagementScope -Name %s -RecipientRestrictionFilter %s | Out-Null", q(d.ScopeName), q(d.Req.WriteFilter))
		scopeArg = " -CustomRecipientWriteScope " + q(d.ScopeName)
	}
	step(OpGroupCreate, d.Name)
	roles := make([]string, len(d.Roles))
	for i, r := range d.Roles {
		roles[i] = q(r.Name)
	}
	w("New-RoleGroup -Name %s -Roles %s%s -Description %s | Out-Null", q(d.Name), strings.Join(roles, ","), scopeArg,
		q("Created by worker setup: the exo-worker app's Exchange permissions. Remove with worker setup --remove."))
	step(OpGroupMember, d.Name)
	w("Add-RoleGroupMember -Identity %s -Member $sp.Id", q(d.Name))
	w("\n\"App (client) id: $($app.AppId)  enterprise app object id: $($sp.Id)\"")
	w("# Put the app id in worker.yaml (auth.client_id) and run: worker doctor --config worker.yaml")
	return b.String()
}

// psQuote renders s as a single-quoted PowerShell string (a quote is doubled inside).
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// psEscapeDouble escapes s for a double-quoted PowerShell string.
func psEscapeDouble(s string) string {
	return strings.NewReplacer("`", "``", `"`, "`\"", "$", "`$").Replace(s)
}

// scriptMarker finds the step markers of a script.
var scriptMarker = regexp.MustCompile(`(?m)^# \[([a-z.]+) (.*)\]$`)

// ScriptSteps returns the (op, subject) pairs a script marks, in order.
func ScriptSteps(script string) [][2]string {
	var out [][2]string
	for _, m := range scriptMarker.FindAllStringSubmatch(script, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}
