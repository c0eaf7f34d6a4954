package setup

import (
	"context"
	"fmt"
	"net/http"
)

// Remove deletes what setup created for d, in the order Exchange requires (role group, which drops its
// assignments; roles; scope; the Exchange service principal) and then the app registration, which takes its
// service principal and grants with it. It touches only objects with setup's names, and an app registration
// only when it carries setup's tag; what is already gone is skipped, so a second --remove does nothing.
func (rn *Runner) Remove(ctx context.Context, d Desired) (*Outcome, error) {
	r := &run{Runner: rn, d: d, out: &Outcome{RoleGroup: d.Name, Roles: d.RoleNames(), Scope: d.ScopeName}}
	app, err := r.findApp(ctx)
	if err != nil {
		return r.out, err
	}
	if app != nil {
		r.out.AppID, r.out.AppObjectID = app.AppID, app.ID
	}
	if r.EXO != nil {
		var grp exoRoleGroup
		if ok, err := r.get(ctx, "Get-RoleGroup", d.Name, &grp); err != nil {
			return r.out, fmt.Errorf("look for role group %q: %w", d.Name, err)
		} else if ok {
			err := r.step(ctx, OpGroupRemove, d.Name, fmt.Sprintf("remove role group %q (and its role assignments)", d.Name),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Remove-RoleGroup", map[string]any{"Identity": d.Name, "BypassSecurityGroupManagerCheck": true, "Confirm": false}, nil)
				})
			if err != nil {
				return r.out, err
			}
		}
		for _, role := range d.Roles {
			var cur exoRole
			if ok, err := r.get(ctx, "Get-ManagementRole", role.Name, &cur); err != nil {
				return r.out, fmt.Errorf("look for management role %q: %w", role.Name, err)
			} else if !ok {
				continue
			}
			err := r.step(ctx, OpRoleRemove, role.Name, fmt.Sprintf("remove management role %q", role.Name),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Remove-ManagementRole", map[string]any{"Identity": role.Name, "Confirm": false}, nil)
				})
			if err != nil {
				return r.out, err
			}
		}
		var sc exoScope
		if ok, err := r.get(ctx, "Get-ManagementScope", d.ScopeName, &sc); err != nil {
			return r.out, fmt.Errorf("look for management scope %q: %w", d.ScopeName, err)
		} else if ok {
			err := r.step(ctx, OpScopeRemove, d.ScopeName, fmt.Sprintf("remove management scope %q", d.ScopeName),
				func(ctx context.Context) (string, error) {
					return "", r.invoke(ctx, "Remove-ManagementScope", map[string]any{"Identity": d.ScopeName, "Confirm": false}, nil)
				})
			if err != nil {
				return r.out, err
			}
		}
		if app != nil {
			var esp exoServicePrincipal
			if ok, err := r.get(ctx, "Get-ServicePrincipal", app.AppID, &esp); err != nil {
				return r.out, fmt.Errorf("look for the Exchange service principal: %w", err)
			} else if ok {
				err := r.step(ctx, OpEXOSPRemove, d.Name, fmt.Sprintf("remove the Exchange service principal of app %s", app.AppID),
					func(ctx context.Context) (string, error) {
						return "", r.invoke(ctx, "Remove-ServicePrincipal", map[string]any{"Identity": app.AppID, "Confirm": false}, nil)
					})
				if err != nil {
					return r.out, err
				}
			}
		}
	}
	if app != nil {
		err := r.step(ctx, OpAppRemove, d.Name, fmt.Sprintf("delete app registration %q (%s) with its service principal and grants; Entra keeps it restorable for 30 days", d.Name, app.AppID),
			func(ctx context.Context) (string, error) {
				return app.ID, r.Graph.do(ctx, http.MethodDelete, "/applications/"+app.ID, nil, nil)
			})
		if err != nil {
			return r.out, err
		}
	}
	return r.out, nil
}
