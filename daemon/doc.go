// Package daemon is tollgated's configuration (flags and the --config YAML file, shared
// with `tollgated webhook`), its logger and its version. The node daemon's parts live in
// the packages below it: gate (the decision engine and pre-verification), policystore
// (the policy set in force, watched), metrics (Prometheus metrics and health endpoints),
// evidence, audit, ctrd, registry, policydir and admission. cmd/tollgated wires them.
package daemon
