package policy

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"api", true},
		{"a", true},
		{"team-a.api-2", true},
		{strings.Repeat("a", 253), true},
		{strings.Repeat("a", 254), false},
		{"", false},
		{"-api", false},
		{"api-", false},
		{".api", false},
		{"Api", false},
		{"api_v2", false},
		{"api v2", false},
		{"ápi", false},
	}
	for _, tt := range tests {
		if got := validName(tt.name); got != tt.want {
			t.Errorf("validName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
