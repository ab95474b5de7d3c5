// Package integration is Rapport's public event contract: the integration
// events that leave the service through the change feed, webhooks and
// brokers. Each is a versioned, documented projection of one domain event
// that carries no personal data — ids, types, times, classification, team,
// channels, severities, scores — so that nothing which left the system ever
// needs erasing (PRODUCT.md, "Change feed and webhooks").
//
// The mapping is one table (mapping.go), keyed by domain event type. Its
// tests fail when a domain event has no mapping, and when any field the
// domain marks personal (PersonalFields) could reach an integration event.
// The package is pure: standard library, uuid and the domain only.
package integration
