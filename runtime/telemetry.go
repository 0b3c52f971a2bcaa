package runtime

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats/opentelemetry"
)

// WithMeterProvider exports the connection's metrics to mp through
// grpc-go's OpenTelemetry plugin (google.golang.org/grpc/stats/opentelemetry):
// grpc-go's per-call metrics (grpc.client.attempt.*, grpc.client.call.*),
// those of its non-per-call metrics that are on by default (the others
// take WithOpenTelemetry with MetricsOptions.Metrics), and lbclient's
// lbclient.lb.* and lbclient.hedge.* metrics, which are registered with
// grpc-go's metrics registry and recorded through the channel's metrics
// recorder like grpc-go's own. The README lists lbclient's metrics.
//
// It is WithOpenTelemetry with only a MeterProvider; of the two, the later
// option sets the meter provider. A user's own grpc.WithStatsHandler
// (through WithDialOptions) keeps working beside it.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *options) error {
		if mp == nil {
			return errors.New("lbclient: WithMeterProvider: nil MeterProvider")
		}
		if o.otel == nil {
			o.otel = &opentelemetry.Options{}
		}
		o.otel.MetricsOptions.MeterProvider = mp
		return nil
	})
}

// WithOpenTelemetry instruments the connection with grpc-go's OpenTelemetry
// plugin configured by opts: metrics as WithMeterProvider describes, and,
// when opts.TraceOptions has a TracerProvider and a TextMapPropagator,
// grpc-go's tracing. It replaces what an earlier WithMeterProvider or
// WithOpenTelemetry set.
//
// The plugin's interceptors are placed outside lbclient's own, so that a
// hedged call is one call to the plugin: one grpc.client.call.duration,
// and one "Sent." span whose hedged attempts are "Attempt." spans beside
// each other, numbered by previous-rpc-attempts, as grpc-go's own retry
// attempts are.
func WithOpenTelemetry(opts opentelemetry.Options) Option {
	return optionFunc(func(o *options) error {
		mp, tp, prop := opts.MetricsOptions.MeterProvider, opts.TraceOptions.TracerProvider, opts.TraceOptions.TextMapPropagator
		switch {
		case mp == nil && tp == nil:
			return errors.New("lbclient: WithOpenTelemetry: neither MetricsOptions.MeterProvider nor TraceOptions.TracerProvider is set: nothing to export")
		case (tp == nil) != (prop == nil):
			return errors.New("lbclient: WithOpenTelemetry: TraceOptions needs both a TracerProvider and a TextMapPropagator")
		}
		o.otel = &opts
		return nil
	})
}

// telemetryDialOptions returns the dial options of the OpenTelemetry plugin,
// if an option asked for it. They go before lbclient's interceptors, so
// that the plugin's interceptors wrap them (see WithOpenTelemetry).
func (o *options) telemetryDialOptions() []grpc.DialOption {
	if o.otel == nil {
		return nil
	}
	return []grpc.DialOption{opentelemetry.DialOption(*o.otel)}
}
