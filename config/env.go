package config

import (
	"reflect"
	"strconv"
	"strings"
)

// Environment overrides. Every scalar setting outside jobs: and exceptions: has a variable named WORKER_ plus
// its field path in upper case with "." and "-" turned into "_":
//
//	tenant.id                  WORKER_TENANT_ID
//	tenant.cloud               WORKER_TENANT_CLOUD
//	tenant.endpoints.authority WORKER_TENANT_ENDPOINTS_AUTHORITY (and _GRAPH, _EXCHANGE)
//	tenant.ca_file             WORKER_TENANT_CA_FILE
//	tenant.dns_server          WORKER_TENANT_DNS_SERVER
//	auth.method                WORKER_AUTH_METHOD
//	auth.client_id             WORKER_AUTH_CLIENT_ID
//	auth.client_secret_file    WORKER_AUTH_CLIENT_SECRET_FILE
//	exo.max_concurrency        WORKER_EXO_MAX_CONCURRENCY
//	store.path                 WORKER_STORE_PATH
//	server.listen              WORKER_SERVER_LISTEN
//	log.level                  WORKER_LOG_LEVEL
//
// and so on. A variable wins over the file; an empty variable counts as unset. Two variables carry secrets
// and have no file key: WORKER_AUTH_CLIENT_SECRET and WORKER_AUTH_CERTIFICATE_PASSWORD; WORKER_STORE_DSN
// (the PostgreSQL connection string, which may hold a password) is kept as a secret too, never printed. With
// auth.method workload-identity, the variables the Azure workload identity webhook injects fill what is still
// empty: AZURE_FEDERATED_TOKEN_FILE (auth.token_file), AZURE_CLIENT_ID (auth.client_id), AZURE_TENANT_ID
// (tenant.id). Jobs and exceptions are set in the file only: their keys are names chosen by the operator,
// which do not map back from a variable name unambiguously.

const (
	envPrefix       = "WORKER_"
	envClientSecret = "WORKER_AUTH_CLIENT_SECRET"
	envCertPassword = "WORKER_AUTH_CERTIFICATE_PASSWORD"
	envStoreDSN     = "WORKER_STORE_DSN"
)

// EnvName is the environment variable that overrides the setting at path (e.g. "tenant.cloud").
func EnvName(path string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// applyEnv applies the WORKER_* overrides of env (KEY=value entries; later entries win, like os.Environ).
func applyEnv(c *Config, env []string, d *decoder) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && v != "" {
			vars[k] = v
		}
	}
	// WORKER_STORE_DSN may carry a password: it becomes a Secret, not the printable store.dsn.
	storeDSN, hasStoreDSN := vars[envStoreDSN]
	delete(vars, envStoreDSN)
	setEnvFields(reflect.ValueOf(c).Elem(), "", vars, c.env, d)
	if hasStoreDSN {
		c.Store.SecretDSN = NewSecret(storeDSN)
		c.env["store.dsn"] = envStoreDSN
	}
	if v, ok := vars[envClientSecret]; ok {
		c.Auth.ClientSecret = NewSecret(v)
		c.env["auth.client_secret"] = envClientSecret
	}
	if v, ok := vars[envCertPassword]; ok {
		c.Auth.CertificatePassword = NewSecret(v)
		c.env["auth.certificate_password"] = envCertPassword
	}
	if strings.EqualFold(strings.TrimSpace(c.Auth.Method), MethodWorkloadIdentity) {
		fill := func(field *string, path, name string) {
			if *field == "" && vars[name] != "" {
				*field = vars[name]
				c.env[path] = name
			}
		}
		fill(&c.Auth.TokenFile, "auth.token_file", "AZURE_FEDERATED_TOKEN_FILE")
		fill(&c.Auth.ClientID, "auth.client_id", "AZURE_CLIENT_ID")
		fill(&c.Tenant.ID, "tenant.id", "AZURE_TENANT_ID")
	}
}

// setEnvFields walks the struct v and sets every scalar field whose variable is present.
func setEnvFields(v reflect.Value, path string, vars, set map[string]string, d *decoder) {
	t := v.Type()
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		fp := join(path, name)
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Struct:
			if _, isDate := fv.Interface().(Date); !isDate {
				setEnvFields(fv, fp, vars, set, d)
			}
			continue
		case reflect.Map, reflect.Slice, reflect.Pointer:
			continue
		}
		envName := EnvName(fp)
		raw, ok := vars[envName]
		if !ok {
			continue
		}
		if err := setScalar(fv, raw); err != nil {
			d.addf(fp, 0, "%s=%q is not %s", envName, raw, kindName(fv.Kind()))
			continue
		}
		set[fp] = envName
	}
}

func setScalar(v reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	}
	return nil
}
