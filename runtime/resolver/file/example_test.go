package file_test

import (
	"fmt"

	"google.golang.org/grpc/experimental/balancer/weight"

	"github.com/lbclient/lbclient/runtime/resolver/file"
)

func ExampleParse() {
	const name = "/etc/lbclient/orders.json"
	st, err := file.Parse(name, []byte(`{"endpoints": [
		{"address": "10.0.0.1:8443", "weight": 3, "zone": "us-east1-b"},
		{"address": "10.0.0.2:8443"}
	]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range st.Endpoints {
		fmt.Printf("%s weight %d zone %q\n", e.Addresses[0].Addr, weight.FromEndpoint(e).Weight, file.Zone(e))
	}

	// A file cut short while it was written.
	_, err = file.Parse(name, []byte("{\"endpoints\": [\n  {\"address\": \"10.0.0.1:8443\"},\n  {\"addr"))
	fmt.Println(err)
	// Output:
	// 10.0.0.1:8443 weight 3 zone "us-east1-b"
	// 10.0.0.2:8443 weight 0 zone ""
	// file resolver: /etc/lbclient/orders.json:3:9: unexpected end of JSON input
}
