package domain

// The closed sets of values the product contract names. They are typed
// strings so that JSON stays plain text while the compiler keeps the kinds
// apart; Valid reports whether a value (typically converted from a request
// body) belongs to the set, and Decide rejects commands carrying any other.

// CustomerStatus is where a customer stands in its life cycle.
type CustomerStatus string

const (
	// StatusActive is a registered customer that has not churned (or was
	// reactivated).
	StatusActive CustomerStatus = "active"
	// StatusChurned is a customer marked as lost.
	StatusChurned CustomerStatus = "churned"
	// StatusErased is a customer whose personal data was erased; it accepts no
	// further command.
	StatusErased CustomerStatus = "erased"
)

// Role is a seat in a customer's team; each role has at most one member.
type Role string

const (
	RoleAccountManager Role = "account_manager"
	RoleSupport        Role = "support"
	RoleSales          Role = "sales"
)

// Roles lists every role in a stable order.
func Roles() []Role { return []Role{RoleAccountManager, RoleSupport, RoleSales} }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAccountManager, RoleSupport, RoleSales:
		return true
	}
	return false
}

// Channel is the medium of a contact, a complaint or a survey.
type Channel string

const (
	ChannelEmail   Channel = "email"
	ChannelPhone   Channel = "phone"
	ChannelChat    Channel = "chat"
	ChannelMeeting Channel = "meeting"
	ChannelVideo   Channel = "video"
	ChannelVisit   Channel = "visit"
	ChannelSocial  Channel = "social"
)

// Channels lists every channel in a stable order.
func Channels() []Channel {
	return []Channel{ChannelEmail, ChannelPhone, ChannelChat, ChannelMeeting, ChannelVideo, ChannelVisit, ChannelSocial}
}

// Valid reports whether ch is one of Channels.
func (ch Channel) Valid() bool {
	switch ch {
	case ChannelEmail, ChannelPhone, ChannelChat, ChannelMeeting, ChannelVideo, ChannelVisit, ChannelSocial:
		return true
	}
	return false
}

// Direction tells who started a contact.
type Direction string

const (
	DirectionInbound  Direction = "inbound"
	DirectionOutbound Direction = "outbound"
)

// Valid reports whether d is inbound or outbound.
func (d Direction) Valid() bool { return d == DirectionInbound || d == DirectionOutbound }

// Severity ranks a complaint; it selects the complaint's SLA targets.
type Severity string

const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity from least to most severe.
func Severities() []Severity {
	return []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// Valid reports whether s is one of Severities.
func (s Severity) Valid() bool {
	switch s {
	case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}

// ComplaintStatus is the latest step of a complaint.
type ComplaintStatus string

const (
	ComplaintStatusFiled        ComplaintStatus = "filed"
	ComplaintStatusAcknowledged ComplaintStatus = "acknowledged"
	ComplaintStatusEscalated    ComplaintStatus = "escalated"
	ComplaintStatusResolved     ComplaintStatus = "resolved"
	ComplaintStatusReopened     ComplaintStatus = "reopened"
)

// IsOpen reports whether a complaint in this status still awaits a
// resolution: every status but resolved.
func (s ComplaintStatus) IsOpen() bool {
	switch s {
	case ComplaintStatusFiled, ComplaintStatusAcknowledged, ComplaintStatusEscalated, ComplaintStatusReopened:
		return true
	}
	return false
}

// ValidTier reports whether t is a value tier: exactly A, B or C. Tier is a
// plain string in commands, events and state (rather than a typed enum)
// because it travels alongside the free-text classification labels.
func ValidTier(t string) bool { return t == "A" || t == "B" || t == "C" }
