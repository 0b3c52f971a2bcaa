package hostport

import "testing"

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		wantErr string
	}{
		{addr: "10.0.0.1:8443"},
		{addr: "[::1]:8443"},
		{addr: "orders.internal:https"},
		{addr: "a", wantErr: `address "a": want host:port`},
		{addr: "a:", wantErr: `address "a:": want host:port`},
		{addr: "::1:80", wantErr: `address "::1:80": want host:port`},
		{addr: ":80", wantErr: `address ":80" has no host`},
		{addr: "", wantErr: `address "": want host:port`},
	} {
		err := Check(tc.addr)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Check(%q): %v", tc.addr, err)
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("Check(%q) = %v, want %q", tc.addr, err, tc.wantErr)
		}
	}
}
