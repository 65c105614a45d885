package basicauth

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDummyHashCostsWhatUsersCost: an unknown user name is checked against a hash of the
// highest cost among the consumers' hashes, so it takes as long as a known name with a wrong
// password (a fixed cost would tell the names apart by timing).
func TestDummyHashCostsWhatUsersCost(t *testing.T) {
	hash := func(cost int) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cases := []struct {
		name  string
		users map[string]user
		want  int
	}{
		{name: "no users", users: map[string]user{}, want: bcrypt.DefaultCost},
		{name: "one cheap user", users: map[string]user{"a": {hash: hash(bcrypt.MinCost)}}, want: bcrypt.MinCost},
		{name: "the highest wins", users: map[string]user{"a": {hash: hash(bcrypt.MinCost)}, "b": {hash: hash(bcrypt.MinCost + 2)}}, want: bcrypt.MinCost + 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dummyCost(tc.users)
			if c != tc.want {
				t.Fatalf("dummy cost %d, want %d", c, tc.want)
			}
			if tc.want == bcrypt.DefaultCost {
				return // not generated here: slow under the race detector
			}
			got, err := bcrypt.Cost(dummyHash(c))
			if err != nil || got != c {
				t.Errorf("dummy hash cost %d (%v), want %d", got, err, c)
			}
		})
	}
}
