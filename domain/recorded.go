package domain

import (
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// AlreadyRecordedError says that what a command creates is already in the
// customer's history: the command was decided before, and this is a retry
// of it. Every id a command creates derives from its command id (the
// client's Idempotency-Key), so the same id again can only be the same
// command, however many other commands came in between.
//
// It is not a rejection (not an *Error): the command succeeded the first
// time, so the application answers that first outcome and appends nothing.
// Deciding it as a conflict would turn a retry into a 409; deciding it as
// new would append the same event twice.
type AlreadyRecordedError struct {
	// Kind is what the id names: customer, contact, survey, follow-up or
	// complaint.
	Kind string
	ID   uuid.UUID
}

func (e *AlreadyRecordedError) Error() string {
	return fmt.Sprintf("domain: %s %s is already recorded (a retried command)", e.Kind, e.ID)
}

func alreadyRecorded(kind string, id uuid.UUID) error {
	return &AlreadyRecordedError{Kind: kind, ID: id}
}

// recordedIDs are the ids of the contacts and surveys a customer has, which
// the state keeps nowhere else (complaints and follow-ups are in their
// lists, the customer's own id is ID).
type recordedIDs struct {
	contacts, surveys idSet
}

// idSet is a persistent set of ids: with returns a new set and leaves the
// old one intact, sharing all but one path of a 16-way trie over the id's
// bits, so that Evolve keeps its rule that a state is a value (a cached
// state may be evolved along two paths) while a fold of n contacts stays
// O(n log n) rather than copying the set at every event.
type idSet struct {
	root *idNode
}

// idNode is a leaf (children nil) holding at most idLeafSize ids, or an
// inner node whose children split the ids by their next 4 bits.
type idNode struct {
	children *[16]*idNode
	ids      []uuid.UUID
}

const (
	idLeafSize = 8
	// idNibbles is the depth at which every bit of an id is used: ids that
	// still share a leaf there are equal.
	idNibbles = 2 * len(uuid.UUID{})
)

func nibble(id uuid.UUID, depth int) int {
	b := id[depth/2]
	if depth%2 == 0 {
		return int(b >> 4)
	}
	return int(b & 0x0f)
}

// has reports whether id is in the set.
func (s idSet) has(id uuid.UUID) bool {
	n := s.root
	for depth := 0; n != nil; depth++ {
		if n.children == nil {
			return slices.Contains(n.ids, id)
		}
		n = n.children[nibble(id, depth)]
	}
	return false
}

// with returns the set with id added; s is unchanged.
func (s idSet) with(id uuid.UUID) idSet {
	if s.has(id) {
		return s
	}
	return idSet{root: insertID(s.root, id, 0)}
}

// insertID returns a copy of the path to id's leaf with id added; nothing
// reachable from n is written.
func insertID(n *idNode, id uuid.UUID, depth int) *idNode {
	switch {
	case n == nil:
		return &idNode{ids: []uuid.UUID{id}}
	case n.children == nil:
		ids := make([]uuid.UUID, len(n.ids), len(n.ids)+1)
		copy(ids, n.ids)
		return buildIDNode(append(ids, id), depth)
	}
	children := *n.children
	k := nibble(id, depth)
	children[k] = insertID(children[k], id, depth+1)
	return &idNode{children: &children}
}

// buildIDNode makes a fresh node of ids (which it may keep), splitting a
// full leaf.
func buildIDNode(ids []uuid.UUID, depth int) *idNode {
	if len(ids) <= idLeafSize || depth >= idNibbles {
		return &idNode{ids: ids}
	}
	var groups [16][]uuid.UUID
	for _, id := range ids {
		k := nibble(id, depth)
		groups[k] = append(groups[k], id)
	}
	children := new([16]*idNode)
	for k, g := range groups {
		if len(g) > 0 {
			children[k] = buildIDNode(g, depth+1)
		}
	}
	return &idNode{children: children}
}
