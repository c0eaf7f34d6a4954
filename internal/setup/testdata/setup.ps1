# worker setup --script: the least-privileged identity of exo-worker for tenant contoso.onmicrosoft.com.
# Review it, then run it in PowerShell 7 with the modules Microsoft.Graph.Applications and
# ExchangeOnlineManagement installed. It signs you in twice (Graph, then Exchange Online).
# Requested permissions (declared by the jobs meu-richtext, address-audit, identity-audit, license-audit, meu-audit):
#   Microsoft Graph: Domain.Read.All, Group.Read.All, OrgContact.Read.All, Organization.Read.All, User.Read.All
#   Office 365 Exchange Online: Exchange.ManageAsApp
#   Get-AcceptedDomain (read)
#   Get-MailUser (read)
#   Get-Mailbox (read)
#   Get-RemoteDomain (read)
#   Set-MailUser with only Identity, UseMapiRichTextFormat, UsePreferMessageFormat
#   writes only inside: (IsDirSynced -eq 'True') -and (RecipientTypeDetails -eq 'MailUser')
$ErrorActionPreference = 'Stop'
Connect-MgGraph -TenantId 'contoso.onmicrosoft.com' -Scopes 'Application.ReadWrite.All','AppRoleAssignment.ReadWrite.All' -UseDeviceCode -NoWelcome
$cert = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new('exo-worker.crt')  # thumbprint B2A4ABF75480FA9C8A6D9911CAB4CDD2F7D4C6C1
$graphSp = Get-MgServicePrincipal -Filter "appId eq '00000003-0000-0000-c000-000000000000'"
$exoSp = Get-MgServicePrincipal -Filter "appId eq '00000002-0000-0ff1-ce00-000000000000'"
function Get-AppRoleId($sp, $value) { ($sp.AppRoles | Where-Object { $_.Value -eq $value -and $_.AllowedMemberTypes -contains 'Application' }).Id }

# [app.create exo-worker]
$app = New-MgApplication -DisplayName 'exo-worker' -SignInAudience AzureADMyOrg -Tags 'exo-worker-setup' `
  -KeyCredentials @(@{ Type = 'AsymmetricX509Cert'; Usage = 'Verify'; Key = $cert.RawData; DisplayName = 'CN=exo-worker' }) `
  -RequiredResourceAccess @(
    @{ ResourceAppId = '00000003-0000-0000-c000-000000000000'; ResourceAccess = @(
      @{ Id = (Get-AppRoleId $graphSp 'Domain.Read.All'); Type = 'Role' },
      @{ Id = (Get-AppRoleId $graphSp 'Group.Read.All'); Type = 'Role' },
      @{ Id = (Get-AppRoleId $graphSp 'OrgContact.Read.All'); Type = 'Role' },
      @{ Id = (Get-AppRoleId $graphSp 'Organization.Read.All'); Type = 'Role' },
      @{ Id = (Get-AppRoleId $graphSp 'User.Read.All'); Type = 'Role' }) },
    @{ ResourceAppId = '00000002-0000-0ff1-ce00-000000000000'; ResourceAccess = @(
      @{ Id = (Get-AppRoleId $exoSp 'Exchange.ManageAsApp'); Type = 'Role' }) })

# [sp.create exo-worker]
$sp = New-MgServicePrincipal -AppId $app.AppId

# [grant.add Microsoft Graph/Domain.Read.All]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $graphSp.Id -PrincipalId $sp.Id -ResourceId $graphSp.Id -AppRoleId (Get-AppRoleId $graphSp 'Domain.Read.All') | Out-Null

# [grant.add Microsoft Graph/Group.Read.All]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $graphSp.Id -PrincipalId $sp.Id -ResourceId $graphSp.Id -AppRoleId (Get-AppRoleId $graphSp 'Group.Read.All') | Out-Null

# [grant.add Microsoft Graph/OrgContact.Read.All]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $graphSp.Id -PrincipalId $sp.Id -ResourceId $graphSp.Id -AppRoleId (Get-AppRoleId $graphSp 'OrgContact.Read.All') | Out-Null

# [grant.add Microsoft Graph/Organization.Read.All]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $graphSp.Id -PrincipalId $sp.Id -ResourceId $graphSp.Id -AppRoleId (Get-AppRoleId $graphSp 'Organization.Read.All') | Out-Null

# [grant.add Microsoft Graph/User.Read.All]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $graphSp.Id -PrincipalId $sp.Id -ResourceId $graphSp.Id -AppRoleId (Get-AppRoleId $graphSp 'User.Read.All') | Out-Null

# [grant.add Office 365 Exchange Online/Exchange.ManageAsApp]
New-MgServicePrincipalAppRoleAssignedTo -ServicePrincipalId $exoSp.Id -PrincipalId $sp.Id -ResourceId $exoSp.Id -AppRoleId (Get-AppRoleId $exoSp 'Exchange.ManageAsApp') | Out-Null

Connect-ExchangeOnline -Organization 'contoso.onmicrosoft.com' -Device -ShowBanner:$false

# [exo.sp.create exo-worker]
New-ServicePrincipal -AppId $app.AppId -ObjectId $sp.Id -DisplayName 'exo-worker'

# [role.create exo-worker Mail Recipients]
New-ManagementRole -Name 'exo-worker Mail Recipients' -Parent 'Mail Recipients' | Out-Null

# [role.trim exo-worker Mail Recipients]
Get-ManagementRoleEntry 'exo-worker Mail Recipients\*' | Where-Object { $_.Name -notin @('Get-MailUser','Get-Mailbox','Set-MailUser') } | ForEach-Object {
  Remove-ManagementRoleEntry -Identity "exo-worker Mail Recipients\$($_.Name)" -Confirm:$false }

# [role.params exo-worker Mail Recipients\Set-MailUser]
Set-ManagementRoleEntry -Identity 'exo-worker Mail Recipients\Set-MailUser' -Parameters 'Identity','UseMapiRichTextFormat','UsePreferMessageFormat'

# [role.create exo-worker View-Only Configuration]
New-ManagementRole -Name 'exo-worker View-Only Configuration' -Parent 'View-Only Configuration' | Out-Null

# [role.trim exo-worker View-Only Configuration]
Get-ManagementRoleEntry 'exo-worker View-Only Configuration\*' | Where-Object { $_.Name -notin @('Get-AcceptedDomain','Get-RemoteDomain') } | ForEach-Object {
  Remove-ManagementRoleEntry -Identity "exo-worker View-Only Configuration\$($_.Name)" -Confirm:$false }

# [scope.create exo-worker write scope]
New-ManagementScope -Name 'exo-worker write scope' -RecipientRestrictionFilter '(IsDirSynced -eq ''True'') -and (RecipientTypeDetails -eq ''MailUser'')' | Out-Null

# [group.create exo-worker]
New-RoleGroup -Name 'exo-worker' -Roles 'exo-worker Mail Recipients','exo-worker View-Only Configuration' -CustomRecipientWriteScope 'exo-worker write scope' -Description 'Created by worker setup: the exo-worker app''s Exchange permissions. Remove with worker setup --remove.' | Out-Null

# [group.member exo-worker]
Add-RoleGroupMember -Identity 'exo-worker' -Member $sp.Id

"App (client) id: $($app.AppId)  enterprise app object id: $($sp.Id)"
# Put the app id in worker.yaml (auth.client_id) and run: worker doctor --config worker.yaml
