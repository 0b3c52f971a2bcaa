package targets

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestScheme(t *testing.T) {
	for _, tc := range []struct {
		target   string
		scheme   string
		explicit bool
	}{
		{"localhost:50051", "dns", false},
		{"greeter.internal", "dns", false},
		{"dns:///greeter.internal:443", "dns", true},
		{"unix:relative.sock", "unix", true},
		{"static:///a:1", "static", true},
		{"consul:///greeter", "consul", true},
		{"%zz", "dns", false},
	} {
		if s, e := Scheme(tc.target); s != tc.scheme || e != tc.explicit {
			t.Errorf("Scheme(%q) = %q, %v; want %q, %v", tc.target, s, e, tc.scheme, tc.explicit)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   string // "" for valid
	}{
		{"localhost:50051", ""},
		{"dns:greeter.internal:443", ""},
		{"dns:///greeter_1.internal.:443", ""},
		{"dns:///fe80::1%25eth0", ""},
		{"dns:///[fe80::1%25eth0]:443", ""},
		{"consul:///anything at all", ""},
		{"unix-abstract:name", ""},
		{"file:///etc/lbclient/orders.json", ""},
		{"file:orders.json", "file targets take an absolute path and no host: write file:///absolute/path.json"},
		{"file://host/orders.json", "file targets take an absolute path and no host: write file:///absolute/path.json"},
		{"", "empty target"},
		{"dns:///-greeter:443", `"-greeter" is not a valid host name`},
		{"dns:///a..b:443", `"a..b" is not a valid host name`},
		{"dns:///greeter:80:80", `"greeter:80:80" is not host or host:port`},
		{"dns:///greeter:8 0", `port "8 0" of "greeter:8 0" is neither a number nor a service name`},
		{"unix://host/path", `unix targets take no authority, and this one has "host": write unix:///absolute/path or unix:relative/path`},
		{"static:///a:1, ,b:2", `address 2 of "a:1, ,b:2" is empty`},
		{"static:///a:1,b:x y", `address "b:x y": port "x y" is neither a number nor a service name`},
	} {
		err := Check(tc.target)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%q): %v, want nil", tc.target, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("Check(%q) = %v, want %q", tc.target, err, tc.want)
		}
	}
}
