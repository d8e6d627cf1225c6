package config

import (
	"net/url"
)

// Telemetry is what the node exports about itself beyond /metrics.
type Telemetry struct {
	// OTLP exports OpenTelemetry spans of what the node did with each
	// signal that carries a traceparent (docs/operations.md#tracing).
	// nil: off.
	OTLP *OTLP `yaml:"otlp,omitempty"`
}

// OTLP is an OTLP/HTTP collector.
type OTLP struct {
	// Endpoint is the collector's traces URL, e.g.
	// http://127.0.0.1:4318/v1/traces (spans are posted there in OTLP's
	// JSON encoding).
	Endpoint string `yaml:"endpoint"`
}

// OTLPEndpoint is telemetry.otlp.endpoint ("": off).
func (t Telemetry) OTLPEndpoint() string {
	if t.OTLP == nil {
		return ""
	}
	return t.OTLP.Endpoint
}

func (c *checker) telemetry(t Telemetry) {
	if t.OTLP == nil {
		return
	}
	u, err := url.Parse(t.OTLP.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add("telemetry.otlp.endpoint", "an OTLP/HTTP collector's traces URL, such as http://127.0.0.1:4318/v1/traces; remove telemetry.otlp to export no spans",
			"%q is not an http or https URL", t.OTLP.Endpoint)
	}
}
