# exo-worker: on-premises Active Directory fixes for tenant contoso.onmicrosoft.com
# Generated 2026-11-27 06:00:00Z by the audits address-audit, meu-audit: 8 finding(s), 6 with an AD command below.
#
# HOW TO USE. Read every command. Each one ends in -WhatIf, so running this script as it is changes
# nothing: it prints what each command would do. Delete -WhatIf from the commands you approve, run the
# script again in a session with the ActiveDirectory module and the right to write these attributes,
# then let Entra Connect sync (Start-ADSyncSyncCycle -PolicyType Delta on the sync server) and rerun the audit.
#
# WHICH OBJECT. The cloud knows objects by their Entra id, which AD does not have. Users are addressed by
# their objectGUID, decoded from the cloud's onPremisesImmutableId: that is right when Entra Connect's
# sourceAnchor is objectGUID or ms-DS-ConsistencyGuid (the defaults; Entra Connect fills ms-DS-ConsistencyGuid
# from objectGUID). If your sourceAnchor is another attribute, or objects moved between forests, check each
# GUID with Get-ADUser -Identity <GUID> before deleting -WhatIf. Users whose immutable id is not a GUID are
# addressed by sAMAccountName, groups by objectSid or sAMAccountName, contacts by an LDAP search on mail.
#
# Findings that no AD attribute fixes (licences, mail routing) are listed as comments only.
#Requires -Modules ActiveDirectory

# [high] address-duplicate: Same SMTP address on two objects (or twice on one)
# Jöns Müller <jons@contoso.com> (Entra id 11111111-0000-4000-8000-000000000002)
# o'brien@contoso.com is also an address of "Sales, EMEA"
# Object found by sAMAccountName (onPremisesImmutableId is not a GUID).
Set-ADUser -Identity 'jmuller' -Remove @{proxyAddresses='smtp:o''brien@contoso.com'} -WhatIf

# [high] address-onmicrosoft-primary: Primary address is an onmicrosoft.com address
# Seán O’Brien <sean@contoso.onmicrosoft.com> (Entra id 11111111-0000-4000-8000-000000000001)
# the primary SMTP address is sean@contoso.onmicrosoft.com
# Object found by objectGUID decoded from onPremisesImmutableId.
Set-ADUser -Identity '03020100-0504-0706-0809-0a0b0c0d0e0f' -Replace @{mail='seán.o’’brien@contoso.com'} -WhatIf

# [high] license-exchange-on-mailuser: Exchange licence on a user who is still a mail user
# Zoë Ivanova <zoe@contoso.com> (Entra id 11111111-0000-4000-8000-000000000004)
# EXCHANGE_S_STANDARD is assigned (since 2026-03-01) but Exchange Online still shows a mail user
# No AD attribute fixes this. Remove the licence (or the Exchange plan) until the mailbox has been migrated, or migrate the mailbox now. Licences are not an AD attribute: change them in Entra, or in the AD group that drives group-based licensing.

# [high] meu-target-missing: Mail user without targetAddress
# Line Break (Entra id 11111111-0000-4000-8000-000000000005)
# ExternalEmailAddress (targetAddress) is empty: line two
# Not scripted: the value contains line breaks or control characters; change it by hand.

# [high] sync-conflict-proxy: Duplicate proxy address quarantined by Entra
# Sales, "EMEA" (Entra id 22222222-0000-4000-8000-000000000001)
# sales@contoso.com is already an address of another object
# Object found by objectSid from Graph onPremisesSecurityIdentifier.
Set-ADGroup -Identity 'S-1-5-21-1004336348-1177238915-682003330-1105' -Remove @{proxyAddresses='smtp:sales@contoso.com'} -WhatIf

# [high] upn-unverified-suffix: UPN suffix is not a verified domain
# =cmd|' /C calc'!A0 (Entra id 11111111-0000-4000-8000-000000000003)
# the on-premises UPN weird(name)*@contoso.local ends in contoso.local
# Object found by an LDAP search on the on-premises UPN.
Get-ADUser -LDAPFilter '(userPrincipalName=weird\28name\29\2a\5c@contoso.local)' | Set-ADUser -Replace @{userPrincipalName='weird.name@contoso.com'} -WhatIf

# [medium] address-primary-not-mail: Primary SMTP address differs from mail
# DL-Finance (Entra id 22222222-0000-4000-8000-000000000002)
# mail is old@contoso.com but the primary SMTP address is dl@contoso.com
# Object found by sAMAccountName.
Set-ADGroup -Identity 'dl-finance' -Replace @{mail=' dl@contoso.com'} -WhatIf

# [medium] address-primary-not-mail: Primary SMTP address differs from mail
# Ann (Fabrikam) (Entra id 33333333-0000-4000-8000-000000000001)
# mail is ann.old@fabrikam.com but the primary SMTP address is ann@fabrikam.com
# Object found by an LDAP search on mail (Graph shows no on-premises key for contacts).
Get-ADObject -LDAPFilter '(&(objectClass=contact)(mail=ann.old@fabrikam.com))' | Set-ADObject -Replace @{mail='ann@fabrikam.com'} -WhatIf

