// Package sla holds the complaint-handling targets by severity (PRODUCT.md:
// first response and resolution, configurable) that the complaint read
// model, the analytics and the churn-risk score all judge complaints by.
//
// It is a helper of the read models, not one: it has no projector and no
// tables. Targets are judged at query time, so changing them needs no
// rebuild.
package sla
