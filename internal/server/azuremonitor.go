package server

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// azureSchemaID identifies the Azure Monitor common alert schema; an action
// group sends it only with "Enable the common alert schema" on.
const azureSchemaID = "azureMonitorCommonAlertSchema"

type azPayload struct {
	SchemaID string  `json:"schemaId"`
	Data     *azData `json:"data"`
}

type azData struct {
	// Essentials is kept generic so every field, including ones Azure adds
	// later, can be matched by its name.
	Essentials       map[string]json.RawMessage `json:"essentials"`
	AlertContext     json.RawMessage            `json:"alertContext"`
	CustomProperties map[string]json.RawMessage `json:"customProperties"`
}

// azConditions is the part of alertContext that metric alerts and log search
// alerts (v2) share: conditions with dimensions. Other alert types have a
// different alertContext, which then contributes no dimensions.
type azConditions struct {
	Condition struct {
		AllOf []struct {
			Dimensions []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"dimensions"`
		} `json:"allOf"`
	} `json:"condition"`
}

// parseAzureMonitor decodes one Azure Monitor alert (the common schema sends
// one alert per request). monitorCondition "Fired" fires, "Resolved" does not.
func parseAzureMonitor(body []byte) ([]alert, error) {
	var p azPayload
	if err := unmarshalJSON(body, &p, false); err != nil {
		return nil, err
	}
	if p.SchemaID != azureSchemaID {
		return nil, fmt.Errorf("%w: schemaId is %q, expected %q; enable the common alert schema on the action group's webhook", errBadPayload, clip(printable(p.SchemaID), 60), azureSchemaID)
	}
	if p.Data == nil || p.Data.Essentials == nil {
		return nil, fmt.Errorf("%w: no data.essentials object", errBadPayload)
	}
	vals := map[string][]string{}
	for k, raw := range p.Data.Essentials {
		if vs := jsonStrings(raw); len(vs) > 0 {
			vals[k] = vs
		}
	}
	for k, raw := range p.Data.CustomProperties {
		if vs := jsonStrings(raw); len(vs) > 0 {
			vals["customProperties."+k] = vs
		}
	}
	if len(p.Data.AlertContext) > 0 {
		var c azConditions
		// Not every alert type has conditions; a context of another shape
		// is not an error, it just names no dimensions.
		if json.Unmarshal(p.Data.AlertContext, &c) == nil {
			for _, cond := range c.Condition.AllOf {
				for _, d := range cond.Dimensions {
					if d.Name == "" {
						continue
					}
					k := "dimensions." + d.Name
					vals[k] = append(vals[k], d.Value)
				}
			}
		}
	}
	var firing bool
	cond := first(vals["monitorCondition"])
	switch cond {
	case "Fired":
		firing = true
	case "Resolved":
	default:
		return nil, fmt.Errorf("%w: data.essentials.monitorCondition is %q; Azure Monitor sends \"Fired\" or \"Resolved\"", errBadPayload, clip(printable(cond), 20))
	}
	return []alert{{firing: firing, name: first(vals["alertRule"]), values: vals}}, nil
}

// jsonStrings reads a string, a number, a bool or an array of those as text
// values; objects and null give none.
func jsonStrings(raw json.RawMessage) []string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	add := func(x any) {
		switch t := x.(type) {
		case string:
			out = append(out, t)
		case float64:
			out = append(out, strconv.FormatFloat(t, 'f', -1, 64))
		case bool:
			out = append(out, strconv.FormatBool(t))
		}
	}
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			add(x)
		}
	} else {
		add(v)
	}
	return out
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
