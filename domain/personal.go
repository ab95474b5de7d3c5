package domain

import (
	"reflect"
	"slices"
)

// PersonalData is implemented by pointers to the events that carry personal
// or free-text data. PersonalFields returns pointers to those string fields
// inside the event, so that an infrastructure codec can encrypt them in place
// before storing and decrypt them after loading (crypto-shredding: once a
// customer's key is destroyed, the fields are unreadable in every copy of the
// log). The codec needs no knowledge of the event types.
//
// Personal: name, email, phone, company, each tag, contact summary,
// follow-up note, complaint description, acknowledgement note, escalation
// reason, resolution, reopening reason, survey comment, churn and
// reactivation reasons. Not personal, because figures and audits depend on
// them: ids, dates, enums, categories, scores, classification, the names of
// staff (by, member, assignee, to) and the erasure reason.
type PersonalData interface {
	Event
	PersonalFields() []*string
}

func (e *CustomerRegistered) PersonalFields() []*string {
	fields := []*string{&e.Name, &e.Email, &e.Phone, &e.Company}
	for i := range e.Tags {
		fields = append(fields, &e.Tags[i])
	}
	return fields
}

func (e *CustomerProfileUpdated) PersonalFields() []*string {
	var fields []*string
	for _, f := range []*string{e.Name, e.Email, e.Phone, e.Company} {
		if f != nil {
			fields = append(fields, f)
		}
	}
	if e.Tags != nil {
		for i := range *e.Tags {
			fields = append(fields, &(*e.Tags)[i])
		}
	}
	return fields
}

func (e *ContactLogged) PersonalFields() []*string         { return []*string{&e.Summary} }
func (e *FollowUpScheduled) PersonalFields() []*string     { return []*string{&e.Note} }
func (e *ComplaintFiled) PersonalFields() []*string        { return []*string{&e.Description} }
func (e *ComplaintAcknowledged) PersonalFields() []*string { return []*string{&e.Note} }
func (e *ComplaintEscalated) PersonalFields() []*string    { return []*string{&e.Reason} }
func (e *ComplaintResolved) PersonalFields() []*string     { return []*string{&e.Resolution} }
func (e *ComplaintReopened) PersonalFields() []*string     { return []*string{&e.Reason} }
func (e *SurveyRecorded) PersonalFields() []*string        { return []*string{&e.Comment} }
func (e *CustomerChurned) PersonalFields() []*string       { return []*string{&e.Reason} }
func (e *CustomerReactivated) PersonalFields() []*string   { return []*string{&e.Reason} }

// detachPersonal gives the event its own copies of the containers that hold
// personal fields, so that writing through PersonalFields cannot reach memory
// shared with another copy of the event.
func (e *CustomerRegistered) detachPersonal() { e.Tags = slices.Clone(e.Tags) }

func (e *CustomerProfileUpdated) detachPersonal() {
	clone := func(s *string) *string {
		if s == nil {
			return nil
		}
		c := *s
		return &c
	}
	e.Name, e.Email, e.Phone, e.Company = clone(e.Name), clone(e.Email), clone(e.Phone), clone(e.Company)
	if e.Tags != nil {
		tags := slices.Clone(*e.Tags)
		e.Tags = &tags
	}
}

// RewritePersonalFields returns a copy of e whose personal fields were each
// replaced by rewrite(field) — an encryption, a decryption, or a placeholder
// once a key is shredded. e itself (and any memory it shares, such as a tag
// list) is left untouched, which matters because events may be cached or
// still held by the command that produced them. Events without personal data
// come back unchanged. The copy is a value event like those Decide returns.
func RewritePersonalFields(e Event, rewrite func(string) (string, error)) (Event, error) {
	e = valueOf(e)
	if e == nil {
		return nil, nil
	}
	copyPtr := reflect.New(reflect.TypeOf(e))
	copyPtr.Elem().Set(reflect.ValueOf(e))
	personal, ok := copyPtr.Interface().(PersonalData)
	if !ok {
		return e, nil
	}
	if d, ok := personal.(interface{ detachPersonal() }); ok {
		d.detachPersonal()
	}
	for _, field := range personal.PersonalFields() {
		rewritten, err := rewrite(*field)
		if err != nil {
			return nil, err
		}
		*field = rewritten
	}
	return copyPtr.Elem().Interface().(Event), nil
}
