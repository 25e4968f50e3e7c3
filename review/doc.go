// Package review is faultline's design review: a rule engine that reads a model.System and reports
// the findings an experienced distributed-systems engineer would write — single points of failure,
// shared databases, missing timeouts and breakers, retry amplification, inverted timeout budgets,
// deep and chatty synchronous chains, missing telemetry, unencrypted edges — each with the rule,
// a message with the concrete numbers, the evidence (source file and line) and the fix.
//
// Rules live one family per file (availability.go, resilience.go, decoupling.go, ...) and register
// themselves; Rules lists them. Review runs them under a Config (.faultline.yaml) that can disable
// rules, change severities and thresholds, and ignore a finding for a subject with a reason.
package review
