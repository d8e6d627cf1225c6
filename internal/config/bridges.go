package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// Bridges are the telecom bridges mounted on the node's HTTP server
// (docs/bridges.md): TM Forum TMF642 alarms in and out, ONAP VES 7.x in.
// Each is off unless its section is present.
type Bridges struct {
	TMF642 *TMF642Bridge `yaml:"tmf642"`
	VES    *VESBridge    `yaml:"ves"`
}

// TMF642Bridge takes TMF642 Alarm Management v4 notifications in (our
// listener, and hubs registered with upstream OSSs) and delivers fault
// signals to listeners registered on our own hub.
type TMF642Bridge struct {
	// TokenFile holds the bearer token that callers of our listener and
	// hub endpoints present. Default: http.token_file. Relative to the
	// policy file.
	TokenFile string `yaml:"token_file"`
	// Service is the service token of a fault's subject when the alarm
	// names no affectedService. Default "tmf642".
	Service string `yaml:"service"`
	// Callback is the base URL at which upstream OSSs reach our listener,
	// e.g. "https://anfed.example.net/tmf-api/alarmManagement/v4". Default:
	// the HTTP server's own address.
	Callback string `yaml:"callback"`
	// Upstream are OSSs whose hub the node registers with.
	Upstream []TMF642Upstream `yaml:"upstream"`
	// Delivery bounds the retries of deliveries to our hub's listeners.
	Delivery TMF642Delivery `yaml:"delivery"`
}

// TMF642Upstream is an OSS exposing a TMF642 hub.
type TMF642Upstream struct {
	// URL is the OSS's TMF642 API base: the node POSTs {URL}/hub.
	URL string `yaml:"url"`
	// TokenFile holds the bearer token the OSS expects; "": none.
	TokenFile string `yaml:"token_file"`
	// Query is the hub registration's query filter, e.g.
	// "perceivedSeverity=CRITICAL,MAJOR"; "": every alarm.
	Query string `yaml:"query"`
}

// TMF642Delivery is the retry schedule of deliveries to our hub's
// listeners: exponential from Initial, doubling, capped at Max, with
// jitter; after MaxAttempts failed attempts a delivery is dead-lettered.
type TMF642Delivery struct {
	Initial     Duration `yaml:"initial"`      // default 1s
	Max         Duration `yaml:"max"`          // default 5m
	MaxAttempts int      `yaml:"max_attempts"` // default 20
	Timeout     Duration `yaml:"timeout"`      // one POST; default 10s
}

// WithDefaults fills in d's zero values.
func (d TMF642Delivery) WithDefaults() TMF642Delivery {
	if d.Initial == 0 {
		d.Initial = Duration(time.Second)
	}
	if d.Max == 0 {
		d.Max = Duration(5 * time.Minute)
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 20
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(10 * time.Second)
	}
	return d
}

// VESBridge takes ONAP VES 7.x events in (POST /eventListener/v7 and
// /eventListener/v7/eventBatch).
type VESBridge struct {
	// TokenFile holds a bearer token; User and PasswordFile HTTP basic
	// credentials, as VES collectors use. Either is accepted when both are
	// set; with neither, http.token_file's bearer token.
	TokenFile    string `yaml:"token_file"`
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	// Service is the service token of the signals' subjects. Default "ves".
	Service string `yaml:"service"`
	// AlarmType is the X.733 alarm type of faults (VES has none). Default
	// communicationsAlarm.
	AlarmType string `yaml:"alarm_type"`
	// KPIs are the measurement values watched: a measurement event whose
	// value crosses its threshold raises a performance-deviation, and
	// clears it when it is back.
	KPIs []VESKPI `yaml:"kpis"`
}

// VESKPI is one watched measurement value.
type VESKPI struct {
	// Field names the value: "<additionalMeasurements name>/<hashMap key>",
	// "additionalFields/<key>", or a numeric measurementFields member such
	// as "meanRequestLatency".
	Field     string  `yaml:"field"`
	KPI       string  `yaml:"kpi"`  // the signal's kpi, ^[a-z][a-z0-9_.-]{0,127}$
	Unit      string  `yaml:"unit"` // e.g. ms, Mbit/s
	Expected  float64 `yaml:"expected"`
	Threshold float64 `yaml:"threshold"`
	// Crossing is "above" (the value is bad above Threshold) or "below".
	Crossing string `yaml:"crossing"`
}

var kpiRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,127}$`)

var x733AlarmTypes = []string{"communicationsAlarm", "processingErrorAlarm", "environmentalAlarm", "qualityOfServiceAlarm",
	"equipmentAlarm", "integrityViolation", "operationalViolation", "physicalViolation", "securityServiceOrMechanismViolation", "timeDomainViolation"}

// bridges checks the bridges section.
func (c *checker) bridges(cfg *Config) {
	b := cfg.Bridges
	need := func(path string) {
		if cfg.HTTP.Listen == "" {
			c.add(path, "set http.listen (the bridges are served by the node's HTTP server), or remove "+path, "needs the HTTP server, but http.listen is empty")
		}
	}
	token := func(path, file string) {
		if file == "" {
			return
		}
		if _, err := ReadToken(relPath(cfg, file)); err != nil {
			c.add(path, tokenHint, "%v", err)
		}
	}
	if t := b.TMF642; t != nil {
		need("bridges.tmf642")
		token("bridges.tmf642.token_file", t.TokenFile)
		if t.TokenFile == "" && cfg.HTTP.TokenFile == "" {
			c.add("bridges.tmf642.token_file", tokenHint+"; or set http.token_file, which the bridge then uses", "required: the listener and hub endpoints take a bearer token")
		}
		if t.Callback != "" {
			c.httpURL("bridges.tmf642.callback", t.Callback, `the base URL at which upstream OSSs reach this node's listener, e.g. "https://anfed.example.net/tmf-api/alarmManagement/v4"`)
		}
		for i, u := range t.Upstream {
			base := fmt.Sprintf("bridges.tmf642.upstream[%d]", i)
			if u.URL == "" {
				c.add(base+".url", `the OSS's TMF642 API base, e.g. "https://oss.example.net/tmf-api/alarmManagement/v4"; the node POSTs {url}/hub`, "required")
			} else {
				c.httpURL(base+".url", u.URL, `the OSS's TMF642 API base, e.g. "https://oss.example.net/tmf-api/alarmManagement/v4"`)
			}
			token(base+".token_file", u.TokenFile)
			if _, err := url.ParseQuery(u.Query); err != nil {
				c.add(base+".query", `a TMF630 query string, e.g. "perceivedSeverity=CRITICAL,MAJOR"`, "invalid query %q: %v", u.Query, err)
			}
		}
		d := t.Delivery
		if d.Initial < 0 || d.Max < 0 || d.Timeout < 0 {
			c.add("bridges.tmf642.delivery", `e.g. initial: 1s, max: 5m, timeout: 10s`, "durations must be positive")
		}
		if d.Max != 0 && d.Initial > d.Max {
			c.add("bridges.tmf642.delivery.max", "max caps the backoff: make it at least initial", "max %v is below initial %v", d.Max, d.Initial)
		}
		if d.MaxAttempts < 0 {
			c.add("bridges.tmf642.delivery.max_attempts", "attempts before a delivery is dead-lettered, e.g. 20; 0: the default", "must be positive, got %d", d.MaxAttempts)
		}
	}
	if v := b.VES; v != nil {
		need("bridges.ves")
		token("bridges.ves.token_file", v.TokenFile)
		switch {
		case v.User != "" && v.PasswordFile == "":
			c.add("bridges.ves.password_file", "a file holding the basic-auth password of bridges.ves.user (at least 16 characters)", "required with user")
		case v.User == "" && v.PasswordFile != "":
			c.add("bridges.ves.user", "the basic-auth user name VES collectors send", "required with password_file")
		case v.PasswordFile != "":
			token("bridges.ves.password_file", v.PasswordFile)
		}
		if v.TokenFile == "" && v.User == "" && cfg.HTTP.TokenFile == "" {
			c.add("bridges.ves", "set token_file (bearer), user and password_file (basic, as VES collectors use), or http.token_file", "no credentials: the VES listener takes a bearer token or basic auth")
		}
		if v.AlarmType != "" && !slices.Contains(x733AlarmTypes, v.AlarmType) {
			c.add("bridges.ves.alarm_type", suggest(v.AlarmType, x733AlarmTypes, "X.733 alarm types"), "unknown alarm type %q", v.AlarmType)
		}
		seen := map[string]int{}
		for i, k := range v.KPIs {
			base := fmt.Sprintf("bridges.ves.kpis[%d]", i)
			if k.Field == "" {
				c.add(base+".field", `"<measurement name>/<hashMap key>", "additionalFields/<key>", or a measurementFields member such as "meanRequestLatency"`, "required")
			} else if j, dup := seen[k.Field]; dup {
				c.add(base+".field", "watch each field once", "duplicate field %q (also bridges.ves.kpis[%d])", k.Field, j)
			} else {
				seen[k.Field] = i
			}
			if !kpiRE.MatchString(k.KPI) {
				c.add(base+".kpi", `lowercase dotted, e.g. "latency.one-way.p95" (^[a-z][a-z0-9_.-]{0,127}$)`, "invalid kpi %q", k.KPI)
			}
			if k.Unit == "" {
				c.add(base+".unit", `e.g. "ms", "%", "Mbit/s"`, "required")
			}
			switch k.Crossing {
			case "above":
				if k.Threshold < k.Expected {
					c.add(base+".threshold", "with crossing: above, the threshold lies above the expected value", "threshold %v is below expected %v", k.Threshold, k.Expected)
				}
			case "below":
				if k.Threshold > k.Expected {
					c.add(base+".threshold", "with crossing: below, the threshold lies below the expected value", "threshold %v is above expected %v", k.Threshold, k.Expected)
				}
			default:
				c.add(base+".crossing", `"above" (bad when the value exceeds threshold) or "below" (bad when it falls under)`, "want above or below, got %q", k.Crossing)
			}
		}
	}
}

func (c *checker) httpURL(path, raw, hint string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add(path, hint, "invalid URL %q: want http:// or https:// with a host", raw)
	}
}

// relPath is p relative to the policy file's directory until Parse makes
// it absolute.
func relPath(cfg *Config, p string) string {
	if filepath.IsAbs(p) || cfg.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(cfg.File), p)
}

// resolvePaths makes the bridges' files absolute.
func (b *Bridges) resolvePaths(abs func(*string)) {
	if t := b.TMF642; t != nil {
		abs(&t.TokenFile)
		for i := range t.Upstream {
			abs(&t.Upstream[i].TokenFile)
		}
	}
	if v := b.VES; v != nil {
		abs(&v.TokenFile)
		abs(&v.PasswordFile)
	}
}
